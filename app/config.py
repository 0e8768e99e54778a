"""Run configs and method presets. A default lives in exactly one place: the component dataclasses.

Presets only choose components (and the few hyperparameters that define a method); they never restate
defaults. Every preset is exercised by a test.
"""

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig, IdentityEncodingConfig
from fieldforge.fields.field import FieldConfig
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig
from fieldforge.fields.networks.cam import CAMConfig
from fieldforge.fields.networks.rbf import RBFConfig
from fieldforge.fields.encodings.coarse_to_fine import CoarseToFineFourierConfig
from fieldforge.fields.encodings.sape import SAPEConfig
from fieldforge.fields.fresh import FreshConfig
from fieldforge.fields.networks.pins import PINsConfig
from fieldforge.fields.networks.siren import SirenConfig


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam with a learning-rate schedule."""

    lr: float = 1e-3
    """Peak learning rate."""
    schedule: Literal["exponential", "cosine", "constant"] = "exponential"
    """Decay from ``lr`` to ``lr·final_lr_ratio`` over training."""
    final_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-15
    """Adam ε (instant-ngp uses 1e-15 so tiny gradients of rarely-hit grid cells still move)."""
    weight_decay: float = 0.0


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


IMAGE_METHODS: dict[str, MethodPreset] = {
    "mlp": MethodPreset(
        FieldConfig(encoding=IdentityEncodingConfig()),
        "ReLU MLP on raw coordinates: the spectral-bias baseline",
    ),
    "pe": MethodPreset(
        FieldConfig(encoding=FrequencyEncodingConfig(n_frequencies=8)),
        "NeRF positional encoding, 8 octaves (BARF's image setting) + ReLU MLP",
    ),
    "ff": MethodPreset(
        FieldConfig(encoding=FourierEncodingConfig(sigma=10.0, n_features=256)),
        "Gaussian Fourier features σ=10, 256 frequencies (Tancik et al., natural images) + ReLU MLP",
    ),
    "ngp": MethodPreset(
        FieldConfig(
            encoding=HashGridEncodingConfig(log2_table_size=14, max_resolution=512),
            network=MLPConfig(width=64, n_hidden_layers=2),
        ),
        "instant-ngp hash grid (16 levels × 2, 2^14 rows/level, 16→512; ≈ ff's parameter count) + 2×64 ReLU MLP, lr 1e-2",
        OptimizerConfig(lr=1e-2),
    ),
    "cam": MethodPreset(
        FieldConfig(encoding=FourierEncodingConfig(sigma=10.0, n_features=256), network=CAMConfig()),
        "Fourier features σ=10 + CAM-modulated 3×256 MLP (32×32 scalar γ/β grids, layer norm, grid lr ×10)",
    ),
    "rbf": MethodPreset(
        FieldConfig(encoding=HashGridEncodingConfig(log2_table_size=14, max_resolution=512), network=RBFConfig()),
        "GNF: hash grid (16×2, 2^14 rows/level, 16→512) + 64 Gaussian RBF kernels + linear read-out, lr 1e-2",
        OptimizerConfig(lr=1e-2),
    ),
    "c2f": MethodPreset(
        FieldConfig(encoding=CoarseToFineFourierConfig(sigma=10.0, n_features=256, include_input=True)),
        "Fourier features σ=10 opened low→high by BARF's cosine window over the first 40% of training + ReLU MLP",
    ),
    "pins": MethodPreset(
        FieldConfig(encoding=FourierEncodingConfig(sigma=10.0, n_features=256), network=PINsConfig(width=160)),
        "PINs: Fourier features σ=10 split into 4 bands, 4 residual levels of 2×160 opened progressively (≈ ff's parameters)",
    ),
    "sape": MethodPreset(
        FieldConfig(encoding=SAPEConfig(sigma=20.0, n_features=256)),
        "SAPE: Fourier features σ=20 (the paper's), unmasked per 128² grid cell while the local loss > 1e-3 + ReLU MLP",
    ),
    "siren": MethodPreset(
        FieldConfig(encoding=IdentityEncodingConfig(), network=SirenConfig()),
        "SIREN 3×256, ω₀=30, on coordinates in [-1,1], lr 1e-4 (Sitzmann et al.)",
        OptimizerConfig(lr=1e-4),
    ),
}


@dataclass(frozen=True)
class ImageTrainConfig:
    """Fit a neural field to one image."""

    data: Path = Path("")
    """Image file (PNG, JPEG, TIFF, EXR)."""
    method: str = "ff"
    """Method preset; --field.* options override it."""
    field: FieldConfig = dataclasses.field(default_factory=lambda: IMAGE_METHODS["ff"].field)
    optim: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    trainer: Annotated[TrainerConfig, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=TrainerConfig)
    loss: Literal["mse", "l1"] = "mse"
    """Per-pixel loss on the stored (sRGB-encoded for PNG/JPEG) values."""
    max_pixels: int = 64_000_000
    """Refuse images with more pixels than this (after --downscale) unless --fit-budget."""
    downscale: int = 1
    """Integer box-filter downscale factor applied on load."""
    fit_budget: bool = False
    """Downscale images over --max-pixels until they fit instead of refusing them."""
    resume: Path | None = None
    """Continue the run in this directory from its newest checkpoint (its saved config is used)."""
    fresh: bool = False
    """Pick the encoding's frequency hyperparameter (FF σ, PE top octave, SIREN ω₀) with FreSh before training."""
    fresh_search: FreshConfig = dataclasses.field(default_factory=FreshConfig)
    """FreSh candidates and settings (used with --fresh)."""


def image_train_config(method: str) -> ImageTrainConfig:
    """Default image-training config for a method preset."""
    if method not in IMAGE_METHODS:
        raise KeyError(method)
    preset = IMAGE_METHODS[method]
    return replace(ImageTrainConfig(), method=method, field=preset.field, optim=preset.optim)
