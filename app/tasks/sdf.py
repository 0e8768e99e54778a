"""Shape fitting: a 3D field trained as a signed distance (or occupancy) of a mesh or point cloud
(``fieldforge train sdf``).

Input → normalized ``PointCloud`` → samples → field → ``SDFTask`` → trainer → scored mesh. All geometry
lives in the unit cube the input was normalized into (``data.json`` records the transform); reported
distances are in input units. Presets choose components (and the few hyperparameters that define a
method); every other value is the component dataclass's default. Every preset is exercised by
``tests/test_sdf_presets.py``.
"""

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import tyro
from rich.console import Console
from torch import Tensor, nn

from fieldforge.app.config import MethodPreset, OptimizerConfig, TaskFieldConfig, TrainerConfig, task_field
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks.base import TaskContext, TaskDefinition
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.data.errors import InputError
from fieldforge.data.pointcloud_sdf import PointCloudSDFConfig, pointcloud_sdf_samples
from fieldforge.data.pointclouds import (
    MeshDistance,
    PointCloud,
    SDFSampler,
    SDFSamples,
    SurfaceSampler,
    load_surface,
    mesh_sdf_samples,
    pseudo_occupancy,
    sample_points_near_surface,
    sample_surface,
    with_normals,
)
from fieldforge.data.transforms import Similarity
from fieldforge.fields.capabilities import HasSDF
from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig, IdentityEncodingConfig
from fieldforge.fields.encodings.coarse_to_fine import CoarseToFineFourierConfig
from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig
from fieldforge.fields.encodings.sape import SAPEConfig
from fieldforge.fields.field import FieldConfig, make_field
from fieldforge.fields.fresh import FreshCandidate, VolumeFreshConfig, fresh_select, init_render_config
from fieldforge.fields.geometry_metrics import surface_metrics, volumetric_iou
from fieldforge.fields.losses import implicit_surface_loss, occupancy_bce_per_sample, sdf_l1_per_sample
from fieldforge.fields.meshing import MeshData, drop_small_components, extract_mesh, vertex_normals
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.networks.cam import CAMConfig
from fieldforge.fields.networks.kilonerf import TileBankConfig
from fieldforge.fields.networks.pins import PINsConfig
from fieldforge.fields.networks.rbf import RBFConfig
from fieldforge.fields.networks.siren import SirenConfig

DEFAULT_METHOD = "ngp"
"""The default on every device: the hash grid reaches the sampling floor (0.15% of the diagonal) on every
shape of ``bench_sdf.py`` in 300 CPU steps; ``ff`` needs 800 (README, methods × shapes)."""


def with_head(field: FieldConfig, head: str) -> FieldConfig:
    return replace(field, head=head)


Target = Literal["sdf", "occupancy"]

_MLP = MLPConfig(width=128, n_hidden_layers=3)
"""The decoder every Fourier/PE preset shares: 3×128 ReLU (CPU-sized; the image presets use 3×256)."""
_FF = FourierEncodingConfig(sigma=3.0, n_features=128, include_input=True)
"""Fourier features for shapes in the unit cube: σ = 3 cycles/unit (a shape spans ~0.8 of the cube)."""


@dataclass(frozen=True)
class SDFMethodPreset(MethodPreset):
    """A shape method: field, optimizer, and the training target the method was published with."""

    target: Target = "sdf"


METHODS: dict[str, SDFMethodPreset] = {
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
    "kilonerf": SDFMethodPreset(
        FieldConfig(encoding=FrequencyEncodingConfig(n_frequencies=6), network=TileBankConfig(longest_axis=8), head="sdf"),
        "KiloNeRF tiles: 8 along the box's longest axis (512 tiny MLPs: 6-octave PE → 2×32 ReLU → SDF), each point evaluated by its tile's MLP, lr 1e-2",
        OptimizerConfig(lr=1e-2),
    ),
}


@dataclass(frozen=True)
class SDFSamplingConfig:
    """Training samples. Meshes: a fixed pool with exact SDF/occupancy, drawn once before training.
    Point clouds: the same kind of pool with IMLS targets of the oriented points (--sampling.point-targets)."""

    pool_size: int = 1_000_000
    """Points in the mesh sample pool (near-surface + uniform)."""
    sigmas: tuple[float, ...] = (0.002, 0.01, 0.04)
    """Standard deviations of the near-surface perturbations, in unit-cube units (the shape spans 0.8)."""
    uniform_fraction: float = 0.2
    """Fraction of the pool drawn uniformly in the unit cube."""
    sign_rays: int = 11
    """Rays of the inside/outside parity vote (odd); more rays make open meshes' signs steadier."""
    normal_neighbours: int | None = None
    """k of the normal estimation of point clouds without normals (PCA + consistent orientation); None: from
    the point count, clip(round(√n / 5), 10, 30). Bunny scans, normals flipped: noisy (σ = 0.5% of the
    diagonal, 25k points) k=8 49%, 12 3.8%, 20 0.3%, 30 0.04%; sparse (3k points) k=8..16 ≤ 0.1%, 20 2.0%, 30 2.7%."""
    point_targets: Literal["imls", "implicit"] = "imls"
    """Point clouds: 'imls': a sample pool (drawn once, like a mesh's) with noise-adaptive IMLS distances of
    the oriented points, fitted by the SDF L1 / occupancy BCE; 'implicit': nearest-point distances drawn
    every step + SIREN/IGR normal and eikonal terms (double backward; noisy and sparse scans fail)."""
    imls: PointCloudSDFConfig = dataclasses.field(default_factory=PointCloudSDFConfig)
    """IMLS bandwidth and neighbours (point clouds, point-targets 'imls')."""


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
    method: str = DEFAULT_METHOD
    """Method preset; --field.* options override it."""
    target: Target = "sdf"
    """'sdf': signed distance (meshes: L1 to the exact distance; point clouds: L1 to IMLS distances of the
    oriented points, see --sampling.point-targets).
    'occupancy': inside probability (BCE; point clouds: inside where those distances are negative)."""
    field: TaskFieldConfig = dataclasses.field(default_factory=lambda: task_field(with_head(METHODS[DEFAULT_METHOD].field, "sdf")))
    optim: OptimizerConfig = dataclasses.field(default_factory=lambda: METHODS[DEFAULT_METHOD].optim)
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
    eval_resolution: int = 256
    """Marching-cubes resolution of the mesh scored at the end of training (renders/mesh.ply)."""
    min_component: float = 0.01
    """Point clouds: drop connected components of that mesh smaller than this fraction of the largest one's
    area (spurious blobs in empty space; reported in the summary). 0 keeps all; meshes keep all."""
    eval_points: int = 100_000
    """Surface samples per side for Chamfer / F-score / normal consistency."""
    fresh: bool = False
    """Pick the encoding's frequency hyperparameter (FF σ, PE top octave, SIREN ω₀, hash-grid finest resolution) with
    FreSh before training: spectra of the untrained candidates vs the shape's SDF/occupancy on a cube."""
    fresh_search: VolumeFreshConfig = dataclasses.field(default_factory=VolumeFreshConfig)
    """FreSh candidates and settings (used with --fresh)."""


console = Console(stderr=True)
UNIT_BOX = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
EVAL_SEED = 1_000_003


@dataclass
class ShapeReference:
    """What a reconstruction is scored against, in unit-cube coordinates."""

    points: Tensor
    """Surface samples (mesh) or the input points (point cloud) ``(n, 3)``."""
    normals: Tensor | None
    query: Tensor | None = None
    """Uniform points in the unit cube with known occupancy (meshes only), for volumetric IoU."""
    inside: Tensor | None = None
    near: SDFSamples | None = None
    """Held-out near-surface points with exact SDF (meshes only)."""


def validate_config(config: SDFTrainConfig) -> None:
    s = config.sampling
    if s.pool_size < 1000 or not 0.0 <= s.uniform_fraction <= 1.0 or not s.sigmas or min(s.sigmas) <= 0:
        raise InputError(None, "--sampling: pool-size ≥ 1000, uniform-fraction in [0,1] and positive sigmas are required")
    if s.sign_rays < 1 or s.sign_rays % 2 == 0:
        raise InputError(None, f"--sampling.sign-rays must be odd and positive, got {s.sign_rays}")
    if config.eval_resolution < 8:
        raise InputError(None, f"--eval-resolution must be ≥ 8, got {config.eval_resolution}")
    if not 0.0 <= config.min_component < 1.0:
        raise InputError(None, f"--min-component must be in [0, 1), got {config.min_component}")
    m = s.imls
    if min(m.neighbours, m.spacing_k, m.noise_k, m.winding_points) < 1 or min(m.spacing_scale, m.noise_scale, m.far) < 0:
        raise InputError(None, "--sampling.imls: neighbour counts must be ≥ 1 and scales ≥ 0")
    if min(m.max_bandwidth, m.max_area) < 0 or not 0.0 < m.inside_winding < 1.0:
        raise InputError(None, "--sampling.imls: max-bandwidth and max-area must be ≥ 0 and inside-winding in (0, 1)")


def load_shape(config: SDFTrainConfig) -> PointCloud:
    """Read and normalize the input; point clouds get normals (read or estimated) when the loss needs them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloud = load_surface(config.data, config.padding)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}")
    if not cloud.is_mesh:
        cloud = with_normals(cloud, config.sampling.normal_neighbours or normal_neighbours_for(cloud.n_points))
    return cloud


def normal_neighbours_for(n_points: int) -> int:
    """k of the normal estimation from the point count: dense scans are noisy-tolerant with a wide PCA, sparse
    ones need a narrow one (a wide one spans thin parts and flips patches)."""
    return int(np.clip(round(math.sqrt(n_points) / 5), 10, 30))


def shape_reference(cloud: PointCloud, n: int, sign_rays: int) -> ShapeReference:
    """Reference samples: the mesh surface (+ exact occupancy/SDF probes) or the input points."""
    if not cloud.is_mesh:
        idx = torch.randperm(cloud.n_points, generator=torch.Generator().manual_seed(EVAL_SEED))[:n]
        return ShapeReference(cloud.points[idx], None if cloud.normals is None else cloud.normals[idx])
    assert cloud.triangles is not None
    pts, nrm = sample_surface(cloud.points, cloud.triangles, n, seed=EVAL_SEED)
    md = MeshDistance(cloud.points, cloud.triangles, sign_rays)
    gen = torch.Generator().manual_seed(EVAL_SEED + 1)
    query = torch.rand(min(n, 100_000), 3, generator=gen)
    near_pts = sample_points_near_surface(pts, (0.002, 0.01), min(n, 50_000), 0, seed=EVAL_SEED + 2)
    near_sdf = md.signed_distance(near_pts)
    return ShapeReference(pts, nrm, query, md.occupancy(query), SDFSamples(near_pts, near_sdf, (near_sdf < 0).float()))


def training_samples(cloud: PointCloud, config: SDFTrainConfig) -> SDFSamples | None:
    """The fixed sample pool (meshes: exact; point clouds: IMLS targets), or ``None`` (point clouds with
    ``point_targets='implicit'`` and the SDF target: samples drawn every step by ``SurfaceSampler``)."""
    s = config.sampling
    seed = config.trainer.seed
    if cloud.is_mesh:
        return mesh_sdf_samples(cloud, s.pool_size, s.sigmas, s.uniform_fraction, s.sign_rays, seed=seed)
    assert cloud.normals is not None
    if s.point_targets == "imls":
        return pointcloud_sdf_samples(cloud.points, cloud.normals, s.pool_size, s.sigmas, s.uniform_fraction, s.imls, seed=seed)
    if config.target == "occupancy":
        n_uniform = int(round(s.pool_size * s.uniform_fraction))
        pts = sample_points_near_surface(cloud.points, s.sigmas, s.pool_size - n_uniform, n_uniform, seed=seed)
        occ, sdf = pseudo_occupancy(pts, cloud.points, cloud.normals)
        return SDFSamples(pts, sdf, occ)
    return None


def field_value_fn(field: nn.Module, target: str):
    """``(value_fn, level, inside)`` of the field's surface: SDF < 0 or occupancy logit > 0."""
    if target == "sdf":
        assert isinstance(field, HasSDF)
        return field.signed_distance, 0.0, "below"
    return (lambda p: field(p).occupancy_logit), 0.0, "above"


def score_mesh(mesh: MeshData, reference: ShapeReference, diagonal: float, n: int, seed: int = EVAL_SEED + 3) -> dict[str, float]:
    """Chamfer-L1/L2, F-score at 1% of the diagonal, normal consistency (units of ``mesh``/``reference``)."""
    if mesh.n_faces == 0:
        return {"chamfer_l1": math.inf, "chamfer_l1_rel": math.inf, "f_score": 0.0, "watertight": 0.0}
    pts, nrm = sample_surface(torch.from_numpy(mesh.vertices), torch.from_numpy(mesh.faces), n, seed=seed)
    m = surface_metrics(pts, reference.points, threshold=0.01 * diagonal, pred_normals=nrm, reference_normals=reference.normals)
    out = {
        "chamfer_l1": m.chamfer_l1,
        "chamfer_l1_rel": m.chamfer_l1 / diagonal,
        "chamfer_l2": m.chamfer_l2,
        "f_score": m.f_score,
        "watertight": float(mesh.is_watertight()),
        "vertices": float(mesh.n_vertices),
        "faces": float(mesh.n_faces),
    }
    if m.normal_consistency is not None:
        out["normal_consistency"] = m.normal_consistency
    return out


class SDFTask:
    """Trainer task: SDF L1 / occupancy BCE on a sample pool, or the implicit loss on a point cloud."""

    def __init__(self, field: nn.Module, config: SDFTrainConfig, cloud: PointCloud, samples: SDFSamples | None, reference: ShapeReference,
                 device: torch.device, seed: int) -> None:
        self.model = field
        self.config = config
        self.cloud = cloud
        self.reference = reference
        self.device = device
        self.target = config.target
        if samples is not None:
            self.sampler: SDFSampler | SurfaceSampler = SDFSampler(samples, config.trainer.batch_size, device, seed=seed)
        else:
            assert cloud.normals is not None
            s = config.sampling
            self.sampler = SurfaceSampler(
                cloud.points, cloud.normals, config.trainer.batch_size, None, s.sigmas, s.uniform_fraction, device=device, seed=seed
            )
        self.diagonal_unit = float(torch.linalg.norm(cloud.points.max(0).values - cloud.points.min(0).values))
        self.last_mesh: MeshData | None = None

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def train_step(self, ctx: StepContext) -> StepResult:
        if isinstance(self.sampler, SDFSampler):
            pts, sdf, occ = self.sampler.sample()
            out = self.model(pts)
            if self.target == "sdf":
                clamp = self.config.clamp_distance if self.config.sdf_loss == "clamped" else None
                psl = sdf_l1_per_sample(out.sdf, sdf, clamp)
                log = {"mae_pct_diag": 100 * float(psl.detach().mean()) / self.diagonal_unit}
            else:
                psl = occupancy_bce_per_sample(out.occupancy_logit, occ)
                acc = float(((out.occupancy_logit.detach() > 0).float() == occ).float().mean())
                log = {"accuracy": acc}
            return StepResult(loss=psl.mean(), coords=pts, per_sample_loss=psl, log=log)
        batch = self.sampler.sample()
        w = self.config.implicit
        clamp = self.config.clamp_distance if self.config.sdf_loss == "clamped" else None
        data = sdf_l1_per_sample(self.model(batch.points).sdf, batch.sdf, clamp)  # approximate-distance term
        n_s = batch.surface.shape[0]
        il = implicit_surface_loss(  # value, normal, eikonal (double backward), off-surface penalty
            self.model.signed_distance, batch.surface, batch.normals, batch.points[:n_s],
            surface_weight=w.surface_weight, normal_weight=w.normal_weight, eikonal_weight=w.eikonal_weight,
            off_surface_weight=w.off_surface_weight, off_surface_alpha=w.off_surface_alpha,
        )  # fmt: skip
        loss = w.distance_weight * data.mean() + il.loss
        coords = torch.cat([batch.points, batch.surface])
        per_sample = torch.cat([w.distance_weight * data, il.per_sample[:n_s]])
        log = {"mae_pct_diag": 100 * float(data.detach().mean()) / self.diagonal_unit, "normal": il.terms["normal"], "eikonal": il.terms["eikonal"]}
        return StepResult(loss=loss, coords=coords, per_sample_loss=per_sample, log=log)

    def extract(self, resolution: int, chunk: int = 262144) -> MeshData:
        """Marching cubes of the field over the unit cube (unit-cube coordinates)."""
        value_fn, level, inside = field_value_fn(self.model, self.target)
        mesh, _ = extract_mesh(
            value_fn, UNIT_BOX, resolution, level, inside, chunk=chunk, lipschitz=2.0 if self.target == "sdf" else None, device=self.device
        )
        return mesh

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        """Volumetric IoU and near-surface SDF error (meshes); at the end also the marching-cubes mesh scored by
        Chamfer / F-score / normal consistency against the input."""
        metrics: dict[str, float] = {}
        ref = self.reference
        value_fn, level, inside = field_value_fn(self.model, self.target)
        parts = ["volume"] + (["mesh"] if final else [])
        for part in track(parts, "evaluate" if not final else "evaluate and mesh"):
            if part == "volume":
                metrics.update(self.volume_metrics(value_fn, level, inside))
                continue
            mesh = self.extract(self.config.eval_resolution)
            if not self.cloud.is_mesh:
                mesh, metrics["components_removed"] = drop_small_components(mesh, self.config.min_component)
            self.last_mesh = mesh
            metrics.update(score_mesh(mesh, ref, self.diagonal_unit, self.config.eval_points))
            metrics["chamfer_l1"] = metrics["chamfer_l1"] / self.cloud.normalization.scale  # input units
            if "chamfer_l2" in metrics:
                metrics["chamfer_l2"] = metrics["chamfer_l2"] / self.cloud.normalization.scale**2
        return metrics

    def volume_metrics(self, value_fn, level: float, inside: str) -> dict[str, float]:
        metrics: dict[str, float] = {}
        ref = self.reference
        if ref.query is not None and ref.inside is not None:
            v = torch.cat([value_fn(q.to(self.device)).float().cpu() for q in ref.query.split(65536)])
            pred_inside = v < level if inside == "below" else v > level
            metrics["iou"] = volumetric_iou(pred_inside, ref.inside)
        if ref.near is not None and self.target == "sdf":
            v = torch.cat([value_fn(q.to(self.device)).float().cpu() for q in ref.near.points.split(65536)])
            metrics["near_sdf_mae"] = float((v - ref.near.sdf).abs().mean()) / self.cloud.normalization.scale
        return metrics

    def preview(self) -> bytes | None:
        """PNG of the field's three mid-plane slices (as ``renders/slices.png`` at the end, smaller)."""
        from fieldforge.app.slice_preview import slice_image

        value_fn, level, inside = field_value_fn(self.model, self.target)
        return slice_image(value_fn, UNIT_BOX, 128, level, inside, self.target, self.device)

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])


def cube_points(side: int) -> Tensor:
    """Cell centres of a ``side³`` grid over the unit cube, ``(side³, 3)`` indexed ``[x, y, z]``."""
    t = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)


def shape_target(cloud: PointCloud, target: str, side: int, sign_rays: int) -> Tensor:
    """The shape's SDF (or 0/1 inside indicator) on the ``side³`` cube, ``(side, side, side, 1)`` (FreSh's target).

    Meshes: exact distance and ray-parity sign (open3d). Point clouds: the nearest oriented point's rule
    (``pseudo_occupancy``), the same one the occupancy target trains on."""
    pts = cube_points(side)
    if cloud.is_mesh:
        sdf = MeshDistance(cloud.points, cloud.triangles, sign_rays).signed_distance(pts)
        values = sdf if target == "sdf" else (sdf < 0).float()
    else:
        occ, sdf = pseudo_occupancy(pts, cloud.points, cloud.normals)
        values = sdf if target == "sdf" else occ.float()
    return values.reshape(side, side, side, 1)


def shape_at_init(field: nn.Module, target: str, side: int, chunk: int = 65536) -> Tensor:
    """An (untrained) shape field on the ``side³`` cube: SDF, or inside probability, ``(s, s, s, 1)``."""
    pts = cube_points(side).to(next(iter(field.buffers())).device)
    out = []
    with torch.no_grad():
        for i in range(0, pts.shape[0], chunk):
            o = field(pts[i : i + chunk])
            out.append((o.sdf if target == "sdf" else torch.sigmoid(o.occupancy_logit)).float().reshape(-1))
    return torch.cat(out).cpu().reshape(side, side, side, 1)


class SDFTaskDefinition(TaskDefinition):
    name = "sdf"
    config_type = SDFTrainConfig
    methods = METHODS
    default = DEFAULT_METHOD
    data_hint = "a point cloud or mesh file"

    def preset_config(self, method: str, target: Target | None = None) -> SDFTrainConfig:
        preset = METHODS[method]
        config = replace(SDFTrainConfig(), method=method, field=task_field(preset.field), optim=preset.optim)
        return with_target(config, target or preset.target)

    def sized_for(self, config: SDFTrainConfig, device: torch.device) -> SDFTrainConfig:
        """CPU: 2^16-row tables, 8,192 points per step, 400 steps (the hash grid reaches the sampling floor in
        300); CUDA: instant-ngp's 2^19-row tables, 65,536 points per step, 1,000 steps."""
        if device.type == "cuda":
            field = replace(config.field, encoding=replace(config.field.encoding, log2_table_size=19))
            return replace(config, field=field, trainer=replace(config.trainer, steps=1000, batch_size=1 << 16))
        return replace(config, trainer=replace(config.trainer, steps=400, batch_size=8192))

    def adjust_from_argv(self, config: SDFTrainConfig, argv: list[str]) -> SDFTrainConfig:
        from fieldforge.app.argv import peek_option

        target = peek_option(argv, "--target")
        if target is None:
            return config
        if target not in ("sdf", "occupancy"):
            raise InputError(None, f"--target must be 'sdf' or 'occupancy', got {target!r}")
        return with_target(config, target)  # type: ignore[arg-type]

    def prepare(self, config: SDFTrainConfig) -> "PreparedShape":
        validate_config(config)
        t0 = time.perf_counter()
        cloud = load_shape(config)
        samples = training_samples(cloud, config)
        reference = shape_reference(cloud, config.eval_points, config.sampling.sign_rays)
        return PreparedShape(cloud, samples, reference, time.perf_counter() - t0)

    def run_info(self, config: SDFTrainConfig, prepared: "PreparedShape") -> dict:
        cloud = prepared.cloud
        return {
            "input": str(config.data),
            "kind": "mesh" if cloud.is_mesh else "points",
            "n_points": cloud.n_points,
            "n_triangles": 0 if cloud.triangles is None else int(cloud.triangles.shape[0]),
            "watertight": cloud.watertight,
            "has_colours": cloud.colours is not None,
            "normals_estimated": cloud.normals_estimated,
            "diagonal": cloud.world_diagonal(),
            "normalization": cloud.normalization.to_dict(),
            "padding": config.padding,
        }

    def build_model(self, config: SDFTrainConfig, info: dict) -> nn.Module:
        return make_field(with_head(config.field, config.target), in_dim=3, bbox=UNIT_BOX.clone())

    def build_task(self, config: SDFTrainConfig, model: nn.Module, prepared: "PreparedShape", ctx: TaskContext) -> SDFTask:
        return SDFTask(model, config, prepared.cloud, prepared.samples, prepared.reference, ctx.device, ctx.seed(config.trainer.seed))

    def select_fresh(self, config: SDFTrainConfig, prepared: "PreparedShape", info: dict, device: torch.device):
        from fieldforge.app.fresh import candidates

        fresh = config.fresh_search
        parameter, configs = candidates(config.field, fresh)
        side = fresh.volume_side()
        goal = shape_target(prepared.cloud, config.target, side, config.sampling.sign_rays)

        def make(field_config: FieldConfig):
            def render(seed: int) -> Tensor:
                torch.manual_seed(seed)
                field = self.build_model(replace(config, field=init_render_config(field_config, seed)), info).to(device).eval()
                return shape_at_init(field, config.target, side)

            return render

        cands = [FreshCandidate(label, value, make(cfg)) for label, value, cfg in configs]
        result = fresh_select(cands, goal, seeds=fresh.seeds, crop=min(fresh.crop, 3 * (side - 1)), side=side, spatial_dims=3,
                              parameter=parameter)
        chosen = next(cfg for label, _, cfg in configs if label == result.best.label)
        return chosen, result, f"{config.target} on a {side}³ cube"

    def describe(self, config: SDFTrainConfig, prepared: "PreparedShape", model: nn.Module, device: torch.device) -> str:
        cloud = prepared.cloud
        kind = "mesh" if cloud.is_mesh else ("point cloud, normals estimated" if cloud.normals_estimated else "point cloud")
        if config.target == "occupancy":
            loss = "BCE"
        elif prepared.samples is not None:
            loss = "L1" if config.sdf_loss == "l1" else "clamped L1"
        else:
            loss = "distance L1 + normal + eikonal terms"
        n = sum(p.numel() for p in model.parameters())
        return (f"{config.method}: {config.data.name} ({kind}, {cloud.n_points:,} points) → {config.target} ({loss}) on {device}, "
                f"{n:,} parameters, {config.trainer.steps} steps; samples ready in {prepared.seconds:.1f} s")

    def finish(self, run: RunDir, task: SDFTask, config: SDFTrainConfig, prepared: "PreparedShape", metrics: dict) -> None:
        from fieldforge.app.atomic import atomic_write_bytes
        from fieldforge.app.slice_preview import slice_image
        from fieldforge.data.formats import encode_mesh

        assert task.last_mesh is not None
        world = transformed_mesh(task.last_mesh, prepared.cloud.normalization)
        if world.n_faces:
            atomic_write_bytes(run.renders_dir / "mesh.ply", encode_mesh("ply", world.vertices, world.faces, normals=world.normals))
        else:
            Console(stderr=True).print("[yellow]warning:[/] the field has no surface yet (no zero crossing in the box): train longer or raise --optim.lr")
        value_fn, level, inside = field_value_fn(task.model, config.target)
        atomic_write_bytes(run.renders_dir / "slices.png", slice_image(value_fn, UNIT_BOX, 256, level, inside, config.target, task.device))
        metrics["data_seconds"] = prepared.seconds

    def summary_line(self, config: SDFTrainConfig, metrics: dict, path: Path) -> str:
        return shape_summary(f"trained {config.method} ({config.target})", metrics, path)

    def reference_surface(self, config: SDFTrainConfig, info: dict) -> PointCloud | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cloud = load_surface(config.data, config.padding)
        except InputError:
            return None  # the input moved; exports do not need it
        if not np.allclose(cloud.normalization.matrix(), self.frame(info).matrix(), rtol=1e-9, atol=1e-12):
            return None  # the input file changed since training
        return cloud

    def frame(self, info: dict) -> Similarity:
        return Similarity.from_dict(info["normalization"])


@dataclass
class PreparedShape:
    cloud: PointCloud
    samples: SDFSamples | None
    reference: ShapeReference
    seconds: float
    """Time to read the input and draw the samples."""


def transformed_mesh(mesh: MeshData, normalization: Similarity) -> MeshData:
    """A unit-cube mesh in the input's coordinates, with vertex normals."""
    world = MeshData(normalization.invert(mesh.vertices), mesh.faces)
    world.normals = vertex_normals(world.vertices, world.faces) if world.n_faces else None
    return world


def shape_summary(prefix: str, metrics: dict, path: Path) -> str:
    parts = [prefix]
    if math.isfinite(metrics.get("chamfer_l1", math.nan)):
        parts.append(f"Chamfer-L1 {metrics['chamfer_l1']:.4g} ({100 * metrics['chamfer_l1_rel']:.3f}% of the diagonal)")
    parts += [fmt.format(metrics[k]) for k, fmt in (("f_score", "F@1% {:.3f}"), ("normal_consistency", "NC {:.3f}"), ("iou", "IoU {:.3f}"))
              if k in metrics]
    if "watertight" in metrics:
        parts.append("watertight" if metrics["watertight"] else "NOT watertight")
    if metrics.get("components_removed"):
        parts.append(f"{int(metrics['components_removed'])} small components dropped")
    if "train_seconds" in metrics:
        parts.append(f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s")
    return ", ".join(parts) + f" → {path}"


TASK = SDFTaskDefinition()


def sdf_train_config(method: str, target: Target | None = None) -> SDFTrainConfig:
    """The run config of a shape method preset (its published target unless ``target`` is given)."""
    return TASK.preset_config(method, target)


def with_target(config: SDFTrainConfig, target: Target) -> SDFTrainConfig:
    """The config with ``target`` and the matching field head ('sdf' or 'occupancy')."""
    return replace(config, target=target, field=replace(config.field, head=target))
