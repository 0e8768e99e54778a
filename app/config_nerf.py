"""NeRF run config and method presets (``NERF_METHODS``).

Presets choose the field (encoding, network, radiance head) and, where the method prescribes them, the
optimizer; defaults stay in the component dataclasses. Sampling for every method is the same
occupancy-grid marcher (nerfacc-style), so methods differ only in the field.
"""

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fieldforge.app.config import MethodPreset, OptimizerConfig, TrainerConfig
from fieldforge.data.captures.capture import CaptureOptions
from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig
from fieldforge.fields.field import FieldConfig
from fieldforge.fields.fresh import NerfFreshConfig
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.radiance import RadianceHeadConfig


@dataclass(frozen=True)
class RenderConfig:
    """Ray marching with an occupancy grid, early termination and backgrounds."""

    steps_per_ray: int = 1024
    """Marching step = scene-box diagonal / steps_per_ray (nerfacc's lego setting ≈ 1039)."""
    grid_resolution: int = 64
    """Occupancy grid cells per axis (instant-ngp: 128; 64 keeps the warm-up sweeps affordable on a CPU)."""
    grid_update_every: int = 16
    """Update the occupancy grid every N steps (instant-ngp)."""
    grid_warmup_steps: int = 256
    """Before this step every grid cell is re-evaluated at each update; afterwards half of them."""
    grid_update_fraction: float = 0.5
    """After warm-up, each update evaluates this fraction of the cells (half uniform, half occupied)."""
    grid_decay: float = 0.95
    """Running-max decay of the cells' opacity estimate."""
    grid_threshold: float = 0.01
    """A cell is occupied when σ·step exceeds min(mean, threshold)."""
    early_stop_eps: float = 1e-4
    """Stop marching a ray once its transmittance is below this (0 disables the density pre-pass)."""
    alpha_thre: float = 0.0
    """Drop samples with opacity below this (0 keeps all)."""
    near_plane: float = 0.0
    """Minimum distance from the camera."""
    random_background: bool = True
    """Train RGBA captures against a random background colour per ray (learns transparency properly)."""
    target_samples: int = 1 << 16
    """Adapt the number of rays per step so each step has about this many samples (0: fixed --batch-size rays);
    a step never renders more than 4× this many samples (the rays past the budget are dropped)."""
    max_rays: int = 1 << 15
    """Upper bound of the adaptive ray count."""
    contraction: bool = False
    """Unbounded scenes: contract space outside the box (mip-NeRF 360) and sample linearly then in disparity."""
    contraction_steps: int = 512
    """Samples per ray before skipping, in contracted scenes."""
    chunk: int = 8192
    """Rays per chunk when rendering whole images."""


@dataclass(frozen=True)
class NerfTrainConfig:
    """Train a radiance field on a multi-view capture."""

    data: Path = Path("")
    """Capture: a directory or transforms file (nerfstudio, Blender, LLFF, COLMAP)."""
    format: Literal["auto", "nerfstudio", "blender", "llff", "colmap"] = "auto"
    """Capture format ('auto' detects it)."""
    method: str = "ngp"
    """Method preset; --field.* options override it."""
    field: FieldConfig = dataclasses.field(default_factory=lambda: NERF_METHODS["ngp"].field)
    optim: OptimizerConfig = dataclasses.field(default_factory=lambda: NERF_METHODS["ngp"].optim)
    trainer: Annotated[TrainerConfig, tyro.conf.OmitArgPrefixes] = dataclasses.field(
        default_factory=lambda: TrainerConfig(steps=3000, batch_size=4096, eval_every=1000, checkpoint_every=1000)
    )
    """--batch-size is the initial number of rays per step (adapted to --render.target-samples)."""
    capture: CaptureOptions = dataclasses.field(default_factory=CaptureOptions)
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)
    loss: Literal["mse", "smooth_l1"] = "mse"
    """Photometric loss per ray."""
    eval_views: int = 4
    """Periodic evaluations render the first N test views (the final one renders all)."""
    resume: Path | None = None
    """Continue the run in this directory from its newest checkpoint (its saved config is used)."""
    fresh: bool = False
    """Pick the encoding's frequency hyperparameter (FF σ, PE top octave, SIREN ω₀, hash-grid finest resolution) with
    FreSh before training: spectra of the untrained candidates vs a few training views rendered at init."""
    fresh_search: NerfFreshConfig = dataclasses.field(default_factory=NerfFreshConfig)
    """FreSh candidates and settings (used with --fresh)."""


_NGP_OPTIM = OptimizerConfig(lr=1e-2, final_lr_ratio=0.03, warmup_steps=100, eps=1e-15, weight_decay=1e-6)
"""instant-ngp / nerfacc: Adam lr 1e-2, ε 1e-15, small weight decay, decayed about 30× over training."""


def _ngp_field() -> FieldConfig:
    from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig

    return FieldConfig(
        encoding=HashGridEncodingConfig(),
        network=MLPConfig(width=64, n_hidden_layers=1),
        head="radiance",
        radiance=RadianceHeadConfig(density_bias=-1.0),  # nerfacc: σ = trunc_exp(raw − 1)
    )


NERF_METHODS: dict[str, MethodPreset] = {
    "nerf": MethodPreset(
        FieldConfig(
            encoding=FrequencyEncodingConfig(n_frequencies=10),
            network=MLPConfig(width=256, n_hidden_layers=8, skips=(4,)),
            head="radiance",
            radiance=RadianceHeadConfig(
                density_activation="softplus",  # nerfstudio's vanilla NeRF; ReLU can start (and stay) empty
                geo_feat_dim=256,
                direction_encoding=FrequencyEncodingConfig(n_frequencies=4),
                color_network=MLPConfig(width=128, n_hidden_layers=1),
            ),
        ),
        "NeRF (Mildenhall et al. 2020): 10-octave PE, 8×256 MLP with a skip at 4, 4-octave view PE; occupancy-grid sampling",
        OptimizerConfig(lr=5e-4, final_lr_ratio=0.1),
    ),
    "ngp": MethodPreset(
        _ngp_field(),
        "instant-ngp (Müller et al. 2022): 16-level hash grid, 1×64 density MLP, SH-4 view encoding, 2×64 colour MLP",
        _NGP_OPTIM,
    ),
    "ff": MethodPreset(
        FieldConfig(
            encoding=FourierEncodingConfig(sigma=8.0, n_features=256, include_input=True),
            network=MLPConfig(width=256, n_hidden_layers=4),
            head="radiance",
            radiance=RadianceHeadConfig(geo_feat_dim=32, color_network=MLPConfig(width=64, n_hidden_layers=2)),
        ),
        "Gaussian Fourier features (Tancik et al. 2020) σ=8 cycles per box, 256 frequencies + 4×256 MLP, SH-4 views",
        OptimizerConfig(lr=1e-3, final_lr_ratio=0.1),
    ),
}


def _more_presets() -> dict[str, MethodPreset]:
    """Presets of the progressive and grid-hybrid representations (imported lazily: other modules)."""
    from fieldforge.fields.encodings import CoarseToFineFrequencyConfig, HashGridEncodingConfig, SAPEConfig
    from fieldforge.fields.networks import CAMConfig, PINsConfig, RBFConfig

    nerf = NERF_METHODS["nerf"]
    ff = NERF_METHODS["ff"]
    return {
        "c2f": MethodPreset(
            replace(nerf.field, encoding=CoarseToFineFrequencyConfig(n_frequencies=10, window_start=0.1, window_end=0.5)),
            "NeRF with BARF's coarse-to-fine window over the 10 position octaves (opens over 10%–50% of training)",
            nerf.optim,
        ),
        "sape": MethodPreset(
            replace(ff.field, encoding=SAPEConfig(sigma=8.0, n_features=256)),
            "SAPE: the ff preset's Fourier features unmasked per 64³ cell while the cell's ray loss stays > 1e-3",
            ff.optim,
        ),
        "cam": MethodPreset(
            replace(
                nerf.field,
                network=CAMConfig(mlp=MLPConfig(width=256, n_hidden_layers=4), grid_resolution=(64,)),
            ),
            "NeRF PE + CAM: 4×256 MLP modulated by scalar tri-plane γ/β grids (64², grid lr ×10)",
            nerf.optim,
        ),
        "pins": MethodPreset(
            replace(ff.field, network=PINsConfig(width=160)),
            "PINs: the ff preset's Fourier features in 4 bands, 4 progressively opened residual levels of 2×160",
            ff.optim,
        ),
        "rbf": MethodPreset(
            replace(NERF_METHODS["ngp"].field, encoding=HashGridEncodingConfig(log2_table_size=17), network=RBFConfig()),
            "GNF: hash grid (16×2, 2^17 rows/level) + 64 Gaussian RBF kernels + linear read-out, SH-4 colour branch",
            _NGP_OPTIM,
        ),
    }


NERF_METHODS.update(_more_presets())


def nerf_train_config(method: str) -> NerfTrainConfig:
    """Default NeRF config for a method preset."""
    if method not in NERF_METHODS:
        raise KeyError(method)
    preset = NERF_METHODS[method]
    return replace(NerfTrainConfig(), method=method, field=preset.field, optim=preset.optim)
