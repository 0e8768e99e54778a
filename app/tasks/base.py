"""What a task is: one module with its run config and presets, its trainer ``Task``, its model builder and
its summary line, described to the rest of the application by a ``TaskDefinition``.

The composition root (``fieldforge.app.train``), the run loader (``fieldforge.app.loader``), the CLI's
``train <task>`` commands and FreSh all go through this interface; none of them knows a concrete task.
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from fieldforge.app.config import MethodPreset
from fieldforge.app.runs import RunDir
from fieldforge.app.trainer import Stage, Task
from fieldforge.data.errors import InputError
from fieldforge.data.transforms import Similarity


@dataclass(frozen=True)
class TaskContext:
    """Where a task is built: its device, its rank among ``world_size`` processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    def seed(self, seed: int) -> int:
        """Each rank draws its own samples."""
        return seed + 1_000_003 * self.rank


class TaskDefinition:
    """Base of every task. Subclasses set the class attributes and implement the methods that raise."""

    name: ClassVar[str]
    """``fieldforge train <name>``."""
    config_type: ClassVar[type]
    """The run config dataclass (its type tag in config.yaml says which task a run is)."""
    methods: ClassVar[dict[str, MethodPreset]]
    data_hint: ClassVar[str]
    """What ``--data`` takes, for messages."""
    default: ClassVar[str]
    """The default method (on every device today; ``default_method`` may choose per device)."""
    extra_help: ClassVar[str] = ""
    """Options of this task handled before parsing (shown in ``--help``)."""
    info_file: ClassVar[str] = "data.json"
    """The run's record of its input (sizes, normalization, cameras): what loading the model needs."""

    # -- configs -----------------------------------------------------------------------------------
    def default_method(self, device: torch.device) -> str:
        return self.default

    def preset_config(self, method: str) -> Any:
        """The run config of a method preset (device-independent; the research presets)."""
        raise NotImplementedError

    def sized_for(self, config: Any, device: torch.device) -> Any:
        """The config with the sizes that reach good quality fastest on ``device`` (the default method only)."""
        return config

    def default_config(self, method: str | None = None, device: torch.device | None = None) -> Any:
        """A user's defaults: the device's default method with its device sizes, or a named preset as published."""
        device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if method is None:
            return self.sized_for(self.preset_config(self.default_method(device)), device)
        if method not in self.methods:
            raise InputError(None, f"unknown --method {method!r} for task {self.name}; choose one of: {', '.join(self.methods)}")
        return self.preset_config(method)

    def adjust_from_argv(self, config: Any, argv: list[str]) -> Any:
        """Defaults that depend on an option before parsing (e.g. SDF's ``--target`` picks the head)."""
        return config

    def with_steps(self, config: Any, steps: int) -> Any:
        return replace(config, trainer=replace(config.trainer, steps=steps))

    def stages(self, config: Any) -> list[Stage]:
        return [Stage("train", config.trainer.steps)]

    # -- training ----------------------------------------------------------------------------------
    def prepare(self, config: Any) -> Any:
        """Read and validate the input (``InputError`` before anything is written); returns what training needs."""
        raise NotImplementedError

    def run_info(self, config: Any, prepared: Any) -> dict:
        """The JSON record of the input written to ``info_file``."""
        raise NotImplementedError

    def build_model(self, config: Any, info: dict) -> nn.Module:
        """The untrained model of ``config`` (seeded by the caller) for an input described by ``info``."""
        raise NotImplementedError

    def build_task(self, config: Any, model: nn.Module, prepared: Any, ctx: TaskContext) -> Task:
        raise NotImplementedError

    def select_fresh(self, config: Any, prepared: Any, info: dict, device: torch.device) -> tuple[Any, Any, str]:
        """FreSh: ``(chosen FieldConfig, FreshResult, what the spectra were taken of)``."""
        raise InputError(None, f"--fresh is not available for task {self.name}")

    def describe(self, config: Any, prepared: Any, model: nn.Module, device: torch.device) -> str:
        """The line printed before training."""
        raise NotImplementedError

    def finish(self, run: RunDir, task: Task, config: Any, prepared: Any, metrics: dict) -> None:
        """Write the final renders (after the final evaluation)."""

    def summary_line(self, config: Any, metrics: dict, path: Path) -> str:
        raise NotImplementedError

    # -- loading -----------------------------------------------------------------------------------
    def read_info(self, run: RunDir) -> dict:
        path = run.path / self.info_file
        if not path.is_file():
            raise InputError(run.path, f"run has no {self.info_file} (the record of its input); was it written by 'fieldforge train {self.name}'?")
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(path, f"unreadable ({e})") from None

    def reference_surface(self, config: Any, info: dict) -> Any:
        """The training input as a unit-frame ``PointCloud`` for scoring and colouring meshes, if the task has
        one and the file is still there unchanged (``None`` otherwise)."""
        return None

    def frame(self, info: dict) -> Similarity | None:
        """The transform from the user's coordinates to the model's (``None``: they are the same)."""
        return None


def summary_parts(metrics: dict, keys: tuple[tuple[str, str], ...]) -> list[str]:
    """Formatted ``metrics[key]`` for the keys present, then the step count and time."""
    parts = [fmt.format(metrics[key]) for key, fmt in keys if key in metrics]
    if "train_seconds" in metrics:
        parts.append(f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s")
    return parts
