"""Signed-distance / occupancy run config and the SDF method presets.

Presets choose components (and the few hyperparameters that define a method); every other value is the
component dataclass's default. Sizes are chosen to train on a CPU in minutes; ``--field.*`` options
override any of them. Every preset is exercised by ``tests/test_sdf_presets.py``.
"""

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import tyro

from fieldforge.app.config import MethodPreset, OptimizerConfig, TrainerConfig
from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig, IdentityEncodingConfig
from fieldforge.fields.encodings.coarse_to_fine import CoarseToFineFourierConfig
from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig
from fieldforge.fields.encodings.sape import SAPEConfig
from fieldforge.fields.field import FieldConfig
from fieldforge.fields.fresh import VolumeFreshConfig
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.networks.cam import CAMConfig
from fieldforge.fields.networks.pins import PINsConfig
from fieldforge.fields.networks.rbf import RBFConfig
from fieldforge.fields.networks.siren import SirenConfig

Target = Literal["sdf", "occupancy"]

_MLP = MLPConfig(width=128, n_hidden_layers=3)
"""The decoder every Fourier/PE preset shares: 3×128 ReLU (CPU-sized; the image presets use 3×256)."""
_FF = FourierEncodingConfig(sigma=3.0, n_features=128, include_input=True)
"""Fourier features for shapes in the unit cube: σ = 3 cycles/unit (a shape spans ~0.8 of the cube)."""


@dataclass(frozen=True)
class SDFMethodPreset(MethodPreset):
    """A shape method: field, optimizer, and the training target the method was published with."""

    target: Target = "sdf"


SDF_METHODS: dict[str, SDFMethodPreset] = {
    "pe": SDFMethodPreset(
        FieldConfig(encoding=FrequencyEncodingConfig(n_frequencies=6), network=_MLP, head="sdf"),
        "NeRF positional encoding, 6 octaves + 3×128 ReLU MLP",
    ),
    "ff": SDFMethodPreset(
        FieldConfig(encoding=_FF, network=_MLP, head="sdf"),
        "Gaussian Fourier features σ=3, 128 frequencies (+ raw xyz) + 3×128 ReLU MLP",
    ),
    "siren": SDFMethodPreset(
        FieldConfig(encoding=IdentityEncodingConfig(), network=SirenConfig(width=128, n_hidden_layers=3), head="sdf"),
        "SIREN 3×128, ω₀=30, on xyz in [-1,1], lr 1e-4 (Sitzmann et al.)",
        OptimizerConfig(lr=1e-4),
    ),
    "c2f": SDFMethodPreset(
        FieldConfig(encoding=CoarseToFineFourierConfig(sigma=3.0, n_features=128, include_input=True), network=_MLP, head="sdf"),
        "Fourier features σ=3 opened low→high by BARF's cosine window over the first 40% of training + 3×128 MLP",
    ),
    "pins": SDFMethodPreset(
        FieldConfig(encoding=FourierEncodingConfig(sigma=3.0, n_features=128), network=PINsConfig(width=96), head="sdf"),
        "PINs: Fourier features σ=3 in 4 bands, 4 residual levels of 2×96 opened progressively",
    ),
    "sape": SDFMethodPreset(
        FieldConfig(
            encoding=SAPEConfig(sigma=20.0, n_features=256, grid_resolution=64, epsilon=0.1),
            network=MLPConfig(width=256, n_hidden_layers=4),
            head="occupancy",
        ),
        "SAPE occupancy setting: FF σ=20, 256 frequencies, 64³ mask grid, ε=0.1 on BCE, 4×256 MLP, lr 1e-4 (Hertz et al.)",
        OptimizerConfig(lr=1e-4),
        target="occupancy",
    ),
    "ngp": SDFMethodPreset(
        FieldConfig(
            encoding=HashGridEncodingConfig(log2_table_size=16, max_resolution=1024),
            network=MLPConfig(width=64, n_hidden_layers=2),
            head="sdf",
        ),
        "instant-ngp hash grid (16 levels × 2, 2^16 rows (CPU-sized), 16→1024) + 2×64 ReLU MLP, lr 1e-2",
        OptimizerConfig(lr=1e-2),
    ),
    "cam": SDFMethodPreset(
        FieldConfig(encoding=_FF, network=CAMConfig(mlp=_MLP), head="sdf"),
        "Fourier features σ=3 + CAM-modulated 3×128 MLP (tri-plane 32² scalar γ/β, layer norm, grid lr ×10)",
    ),
    "rbf": SDFMethodPreset(
        FieldConfig(
            encoding=HashGridEncodingConfig(log2_table_size=16, max_resolution=1024),
            network=RBFConfig(n_kernels=64, weight_decay=1e-4),
            head="sdf",
        ),
        "GNF: hash grid (16×2, 2^16 rows, 16→1024) + 64 Gaussian RBF kernels + linear read-out (weight decay 1e-4), lr 1e-2",
        OptimizerConfig(lr=1e-2),
    ),
}


@dataclass(frozen=True)
class SDFSamplingConfig:
    """Training samples. Meshes: a fixed pool with exact SDF/occupancy, drawn once before training.
    Point clouds: surface points + normals and off-surface points, drawn every step."""

    pool_size: int = 1_000_000
    """Points in the mesh sample pool (near-surface + uniform)."""
    sigmas: tuple[float, ...] = (0.002, 0.01, 0.04)
    """Standard deviations of the near-surface perturbations, in unit-cube units (the shape spans 0.8)."""
    uniform_fraction: float = 0.2
    """Fraction of the pool drawn uniformly in the unit cube."""
    sign_rays: int = 11
    """Rays of the inside/outside parity vote (odd); more rays make open meshes' signs steadier."""
    normal_neighbours: int = 10
    """k of the normal estimation of point clouds without normals (PCA + consistent orientation)."""


@dataclass(frozen=True)
class ImplicitLossConfig:
    """Point-cloud SDF loss: L1 to approximate distances from the oriented cloud at off-surface points, plus
    the implicit-surface terms (SIREN/IGR) on surface points: value 0, gradient along the normal, eikonal
    ‖∇f‖ = 1 (gradients by autograd: a double backward), and SIREN's off-surface penalty."""

    distance_weight: float = 1.0
    """Weight of mean |f − d| at off-surface points, d from the nearest oriented input point (its tangent
    plane for the small perturbations, the point itself otherwise). 0: the pure implicit loss (many more
    steps, and far-field sign errors)."""
    surface_weight: float = 0.0
    """Weight of mean |f| at surface points. Off by default: the σ = 0.002 perturbations and their
    tangent-plane targets already pin the zero level, and on the bunny's 2,885 points a weight of 1 slowed
    everything else (Chamfer 1.8% vs 0.8% of the diagonal at 300 steps)."""
    normal_weight: float = 0.01
    """Weight of mean (1 − cos(∇f, n)) at surface points."""
    eikonal_weight: float = 0.01
    """Weight of mean (‖∇f‖ − 1)² at surface points and as many off-surface points."""
    off_surface_weight: float = 0.0
    """Weight of SIREN's mean exp(−α|f|) at those off-surface points (0: off; the distance term covers it)."""
    off_surface_alpha: float = 200.0
    """α of the off-surface penalty, per unit-cube unit."""


@dataclass(frozen=True)
class SDFTrainConfig:
    """Fit a signed distance (or occupancy) field to a point cloud or a triangle mesh."""

    data: Path = Path("")
    """Point cloud or mesh: PLY, PCD, XYZ/XYZN/XYZRGB/PTS, OBJ, STL, OFF."""
    method: str = "ff"
    """Method preset; --field.* options override it."""
    target: Target = "sdf"
    """'sdf': signed distance (meshes: L1 to the exact distance; point clouds: L1 to approximate distances
    from the oriented points + implicit-surface terms with an eikonal regulariser).
    'occupancy': inside probability (BCE; point clouds get inside labels from their oriented normals)."""
    field: FieldConfig = dataclasses.field(default_factory=lambda: SDF_METHODS["ff"].field)
    optim: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    trainer: Annotated[TrainerConfig, tyro.conf.OmitArgPrefixes] = dataclasses.field(
        default_factory=lambda: TrainerConfig(steps=800, batch_size=8192, eval_every=0, checkpoint_every=400)
    )
    sdf_loss: Literal["l1", "clamped"] = "l1"
    """SDF regression loss: plain L1, or L1 of both values clamped to ±clamp_distance (DeepSDF)."""
    clamp_distance: float = 0.05
    """Clamp δ of the 'clamped' loss, in unit-cube units."""
    sampling: SDFSamplingConfig = dataclasses.field(default_factory=SDFSamplingConfig)
    implicit: ImplicitLossConfig = dataclasses.field(default_factory=ImplicitLossConfig)
    padding: float = 0.1
    """Empty margin on each side of the unit cube the input is normalized into."""
    eval_resolution: int = 128
    """Marching-cubes resolution of the mesh scored at the end of training (renders/mesh.ply)."""
    eval_points: int = 100_000
    """Surface samples per side for Chamfer / F-score / normal consistency."""
    resume: Path | None = None
    """Continue the run in this directory from its newest checkpoint (its saved config is used)."""
    fresh: bool = False
    """Pick the encoding's frequency hyperparameter (FF σ, PE top octave, SIREN ω₀, hash-grid finest resolution) with
    FreSh before training: spectra of the untrained candidates vs the shape's SDF/occupancy on a cube."""
    fresh_search: VolumeFreshConfig = dataclasses.field(default_factory=VolumeFreshConfig)
    """FreSh candidates and settings (used with --fresh)."""


def sdf_train_config(method: str, target: Target | None = None) -> SDFTrainConfig:
    """Default SDF-training config for a method preset (its published target unless ``target`` is given)."""
    if method not in SDF_METHODS:
        raise KeyError(method)
    preset = SDF_METHODS[method]
    return with_target(replace(SDFTrainConfig(), method=method, field=preset.field, optim=preset.optim), target or preset.target)


def with_target(config: SDFTrainConfig, target: Target) -> SDFTrainConfig:
    """The config with ``target`` and the matching field head ('sdf' or 'occupancy')."""
    return replace(config, target=target, field=replace(config.field, head=target))
