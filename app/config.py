"""The configs every task shares: optimizer, trainer, method presets, and the field as the CLI shows it.

A default lives in exactly one place: the component dataclasses. Task configs and their presets live in
their task's module (``fieldforge.app.tasks.<task>``); presets only choose components (and the few
hyperparameters that define a method), never restate defaults. Every preset is exercised by a test.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fieldforge.fields.field import FieldConfig, Head
from fieldforge.fields.radiance import RadianceHeadConfig


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam with a learning-rate schedule."""

    lr: float = 1e-3
    """Peak learning rate."""
    schedule: Literal["exponential", "cosine", "constant"] = "exponential"
    """Decay from lr to lr·final-lr-ratio over training (per stage)."""
    final_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam β₁, β₂ (instant-ngp: 0.9, 0.99)."""
    eps: float = 1e-15
    """Adam ε (instant-ngp uses 1e-15 so tiny gradients of rarely-hit grid cells still move)."""
    weight_decay: float = 0.0
    """L2 weight decay of every parameter group that sets none of its own."""


@dataclass(frozen=True)
class TrainerConfig:
    """Training loop, logging and checkpoints."""

    steps: int = 2000
    """Number of optimizer steps."""
    batch_size: int = 65536
    """Samples (pixels, rays, points) per step."""
    seed: int = 0
    """Seed of the initialization and the sampler."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto' uses CUDA when present."""
    mixed_precision: bool = True
    """bf16 autocast on CUDA (ignored on CPU)."""
    eval_every: int = 500
    """Evaluate on the full target every N steps (0: only at the end)."""
    checkpoint_every: int = 500
    """Write a checkpoint every N steps (and always at the end)."""
    keep_checkpoints: int = 3
    """Number of newest checkpoints to keep."""
    log_every: int = 25
    """Append a training record to metrics.jsonl every N steps."""
    output_dir: Path = Path("outputs")
    """Where run directories are created."""
    name: str | None = None
    """Run directory name (default: <task>-<timestamp>)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass(frozen=True)
class MethodPreset:
    """A named method: its field and, where the method prescribes one, its optimizer."""

    field: FieldConfig
    description: str
    optim: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)


@dataclass(frozen=True)
class TaskFieldConfig(FieldConfig):
    """A neural field: which encoding and which network (the task sets the output head)."""

    head: Annotated[Head, tyro.conf.Suppress] = "rgb"
    radiance: Annotated[RadianceHeadConfig, tyro.conf.Suppress] = dataclasses.field(default_factory=RadianceHeadConfig)


@dataclass(frozen=True)
class RadianceFieldConfig(FieldConfig):
    """A radiance field: position encoding and network, then the density and view-dependent colour head."""

    head: Annotated[Head, tyro.conf.Suppress] = "radiance"


def task_field(config: FieldConfig, kind: type[FieldConfig] = TaskFieldConfig) -> FieldConfig:
    """``config`` as the field type a task's CLI shows (same values; options the task decides are hidden)."""
    return kind(**{f.name: getattr(config, f.name) for f in dataclasses.fields(FieldConfig)})
