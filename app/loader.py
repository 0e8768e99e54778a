"""``load_run``: a trained run as its task, config, model on a device, and the way back to the user's frame.

Every exporter, ``info``, the viewer and the distiller load runs through this one function. The run's
kind is its config's type tag (``config.yaml``); nothing in a run directory is executed: the config is
YAML of known dataclasses only, weights are safetensors.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fieldforge.app.checkpoint import load_weights
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks import task_for_config
from fieldforge.app.tasks.base import TaskDefinition
from fieldforge.data.errors import InputError
from fieldforge.data.transforms import Similarity


@dataclass
class LoadedRun:
    run: RunDir
    task: TaskDefinition
    config: Any
    model: nn.Module
    """The trained model in eval mode, on the requested device."""
    step: int
    info: dict
    """The run's record of its input (``data.json`` / ``capture.json``)."""
    frame: Similarity | None
    """User coordinates → model coordinates (``frame.invert`` maps exports back); ``None``: identical."""

    @property
    def kind(self) -> str:
        """The task name: ``image``, ``sdf``, ``nerf``, …"""
        return self.task.name


def choose_checkpoint(run: RunDir, step: int | None) -> tuple[int, Path]:
    ckpts = dict(run.checkpoints())
    if not ckpts:
        raise InputError(run.path, "run has no checkpoint yet")
    chosen = max(ckpts) if step is None else step
    if chosen not in ckpts:
        raise InputError(run.path, f"no checkpoint at step {step} (have {sorted(ckpts)})")
    return chosen, ckpts[chosen]


def load_run(path: str | Path, step: int | None = None, device: str | torch.device = "cpu", kinds: tuple[str, ...] | None = None) -> LoadedRun:
    """Load a run's model from its newest checkpoint (or ``step``); ``kinds`` restricts the accepted tasks."""
    run = RunDir.open(path)
    config = run.read_config()
    task = task_for_config(config)
    if kinds is not None and task.name not in kinds:
        raise InputError(run.path, f"this is a {task.name} run; this command takes {' or '.join(kinds)} runs")
    info = task.read_info(run)
    chosen, ckpt = choose_checkpoint(run, step)
    model = task.build_model(config, info)
    load_weights(ckpt, model, total_steps=config.trainer.steps)
    return LoadedRun(run, task, config, model.to(device).eval(), chosen, info, task.frame(info))
