"""The task registry: name → module, imported on first use. A new task is one module in this folder plus
one entry here. Each module defines ``TASK``, a ``TaskDefinition`` (``fieldforge.app.tasks.base``).
"""

from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fieldforge.app.tasks.base import TaskDefinition


@dataclass(frozen=True)
class TaskEntry:
    module: str
    summary: str
    """One line for ``fieldforge train`` (kept here so listing the tasks imports none of them)."""


TASKS: dict[str, TaskEntry] = {
    "image": TaskEntry("fieldforge.app.tasks.image", "Fit a neural field to an image (PNG/JPEG/TIFF/EXR)."),
    "sdf": TaskEntry("fieldforge.app.tasks.sdf", "Fit a signed distance / occupancy field to a point cloud or mesh."),
    "nerf": TaskEntry("fieldforge.app.tasks.nerf", "Train a radiance field on a multi-view capture (nerfstudio/Blender/LLFF/COLMAP)."),
}


VARIANTS: tuple[str, ...] = ("fieldforge.app.tasks.distill",)
"""Modules whose ``task_for_config(config)`` claims configs that extend a task's (distilled runs), or ``None``."""


def get_task(name: str) -> "TaskDefinition":
    from fieldforge.data.errors import InputError

    if name not in TASKS:
        raise InputError(None, f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return import_module(TASKS[name].module).TASK


def task_for_config(config: Any) -> "TaskDefinition":
    """The task whose run config ``config`` is (a run's kind comes from its config's type alone)."""
    from fieldforge.data.errors import InputError

    for name in TASKS:
        task = get_task(name)
        if type(config) is task.config_type:
            return task
    for module in VARIANTS:
        variant = import_module(module).task_for_config(config)
        if variant is not None:
            return variant
    raise InputError(None, f"no task trains a {type(config).__name__}")


__all__ = ["TASKS", "TaskEntry", "get_task", "task_for_config"]
