"""Shape fitting: a 3D field trained as a signed distance (or occupancy) of a mesh or point cloud.

The composition root ``train_sdf`` is straight-line: input → normalized ``PointCloud`` → samples →
field → ``SDFTask`` → trainer → scored mesh. All geometry lives in the unit cube the input was
normalized into (``data.json`` records the transform); reported distances are in input units.
"""

import json
import math
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from rich.console import Console
from torch import Tensor

from fieldforge.app.atomic import atomic_write_bytes, atomic_write_text
from fieldforge.app.config_sdf import SDFTrainConfig, with_target
from fieldforge.app.runs import RunDir
from fieldforge.app.trainer import StepResult, Trainer, resolve_device
from fieldforge.data.errors import InputError
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
from fieldforge.fields.capabilities import HasSDF
from fieldforge.fields.field import Field
from fieldforge.fields.geometry_metrics import surface_metrics, volumetric_iou
from fieldforge.fields.losses import implicit_surface_loss, occupancy_bce_per_sample, sdf_l1_per_sample
from fieldforge.fields.meshing import MeshData, extract_mesh, vertex_normals

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
    if config.field.head != config.target:
        raise InputError(None, f"--target {config.target} needs --field.head {config.target} (got {config.field.head})")
    if s.pool_size < 1000 or not 0.0 <= s.uniform_fraction <= 1.0 or not s.sigmas or min(s.sigmas) <= 0:
        raise InputError(None, "--sampling: pool-size ≥ 1000, uniform-fraction in [0,1] and positive sigmas are required")
    if s.sign_rays < 1 or s.sign_rays % 2 == 0:
        raise InputError(None, f"--sampling.sign-rays must be odd and positive, got {s.sign_rays}")
    if config.eval_resolution < 8:
        raise InputError(None, f"--eval-resolution must be ≥ 8, got {config.eval_resolution}")


def load_shape(config: SDFTrainConfig) -> PointCloud:
    """Read and normalize the input; point clouds get normals (read or estimated) when the loss needs them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cloud = load_surface(config.data, config.padding)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}")
    if not cloud.is_mesh:
        cloud = with_normals(cloud, config.sampling.normal_neighbours)
    return cloud


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
    """The fixed sample pool (meshes; point clouds with the occupancy target), or ``None`` (point-cloud SDF:
    its samples are drawn every step by ``SurfaceSampler``)."""
    s = config.sampling
    seed = config.trainer.seed
    if cloud.is_mesh:
        return mesh_sdf_samples(cloud, s.pool_size, s.sigmas, s.uniform_fraction, s.sign_rays, seed=seed)
    if config.target == "occupancy":
        assert cloud.normals is not None
        n_uniform = int(round(s.pool_size * s.uniform_fraction))
        pts = sample_points_near_surface(cloud.points, s.sigmas, s.pool_size - n_uniform, n_uniform, seed=seed)
        occ, sdf = pseudo_occupancy(pts, cloud.points, cloud.normals)
        return SDFSamples(pts, sdf, occ)
    return None


def field_value_fn(field: Field, target: str):
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

    def __init__(self, field: Field, config: SDFTrainConfig, cloud: PointCloud, samples: SDFSamples | None, reference: ShapeReference, device: torch.device) -> None:
        self.model = field
        self.config = config
        self.cloud = cloud
        self.reference = reference
        self.device = device
        self.target = config.target
        if samples is not None:
            self.sampler: SDFSampler | SurfaceSampler = SDFSampler(samples, config.trainer.batch_size, device, seed=config.trainer.seed)
        else:
            assert cloud.normals is not None
            s = config.sampling
            self.sampler = SurfaceSampler(
                cloud.points, cloud.normals, config.trainer.batch_size, None, s.sigmas, s.uniform_fraction, device=device, seed=config.trainer.seed
            )
        self.diagonal_unit = float(torch.linalg.norm(cloud.points.max(0).values - cloud.points.min(0).values))
        self.last_mesh: MeshData | None = None

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def train_step(self, step: int) -> StepResult:
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

    def evaluate(self, step: int) -> dict[str, float]:
        metrics: dict[str, float] = {}
        ref = self.reference
        value_fn, level, inside = field_value_fn(self.model, self.target)
        if ref.query is not None and ref.inside is not None:
            v = torch.cat([value_fn(q.to(self.device)).float().cpu() for q in ref.query.split(65536)])
            pred_inside = v < level if inside == "below" else v > level
            metrics["iou"] = volumetric_iou(pred_inside, ref.inside)
        if ref.near is not None and self.target == "sdf":
            v = torch.cat([value_fn(q.to(self.device)).float().cpu() for q in ref.near.points.split(65536)])
            metrics["near_sdf_mae"] = float((v - ref.near.sdf).abs().mean()) / self.cloud.normalization.scale
        if step >= self.config.trainer.steps:
            mesh = self.extract(self.config.eval_resolution)
            self.last_mesh = mesh
            metrics.update(score_mesh(mesh, ref, self.diagonal_unit, self.config.eval_points))
            metrics["chamfer_l1"] = metrics["chamfer_l1"] / self.cloud.normalization.scale  # input units
            if "chamfer_l2" in metrics:
                metrics["chamfer_l2"] = metrics["chamfer_l2"] / self.cloud.normalization.scale**2
        return metrics

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])


def build_sdf_field(config: SDFTrainConfig) -> Field:
    torch.manual_seed(config.trainer.seed)
    return Field(config.field, in_dim=3, bbox=UNIT_BOX.clone(), max_steps=config.trainer.steps)


def data_info(cloud: PointCloud, config: SDFTrainConfig) -> dict:
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


def train_sdf(config: SDFTrainConfig, run: RunDir | None = None) -> tuple[RunDir, dict[str, float]]:
    """Fit (or resume fitting) a shape field; writes the run directory and returns its metrics."""
    from fieldforge.app.export_mesh import encode_mesh, slice_image

    config = with_target(config, config.target)  # the target decides the head
    validate_config(config)
    t_data = time.perf_counter()
    cloud = load_shape(config)  # bad input fails here, before a run directory exists
    samples = training_samples(cloud, config)
    reference = shape_reference(cloud, config.eval_points, config.sampling.sign_rays)
    t_data = time.perf_counter() - t_data
    if run is None:
        run = RunDir.create(config.trainer.output_dir, config.trainer.name, prefix=f"sdf-{config.method}")
    run.write_config(config)
    atomic_write_text(run.path / "data.json", json.dumps(data_info(cloud, config), indent=1))
    device = resolve_device(config.trainer.device)
    if config.fresh and not (run.path / "fresh.json").is_file():  # FreSh: choose the field before building it
        from fieldforge.app.fresh_volume import apply_fresh_sdf

        config = apply_fresh_sdf(config, cloud, run, device)
    field = build_sdf_field(config).to(device)
    task = SDFTask(field, config, cloud, samples, reference, device)
    trainer = Trainer(config.trainer, config.optim, task, run, device)
    start = trainer.resume()
    if start:
        console.print(f"resuming {run.path} from step {start}")
    kind = "mesh" if cloud.is_mesh else ("point cloud, normals estimated" if cloud.normals_estimated else "point cloud")
    loss = ("L1" if config.sdf_loss == "l1" else "clamped L1") if samples is not None and config.target == "sdf" else ("BCE" if config.target == "occupancy" else "distance L1 + normal + eikonal terms")
    console.print(
        f"{config.method}: {config.data.name} ({kind}, {cloud.n_points:,} points) → {config.target} ({loss}) on {device}, "
        f"{field.num_parameters():,} parameters, {config.trainer.steps} steps; samples ready in {t_data:.1f} s"
    )
    metrics = trainer.train()
    assert task.last_mesh is not None
    norm = cloud.normalization
    world = task.last_mesh.transformed(norm.scale, np.asarray(norm.offset))
    world.normals = vertex_normals(world.vertices, world.faces) if world.n_faces else None
    if world.n_faces:
        atomic_write_bytes(run.renders_dir / "mesh.ply", encode_mesh(world, "ply"))
    else:
        console.print("[yellow]warning:[/] the field has no surface yet (no zero crossing in the box): train longer or raise --optim.lr")
    value_fn, level, inside = field_value_fn(field, config.target)
    atomic_write_bytes(run.renders_dir / "slices.png", slice_image(value_fn, UNIT_BOX, 256, level, inside, config.target, device))
    metrics["data_seconds"] = t_data
    return run, metrics


def resume_sdf(run_path, steps: int | None = None) -> tuple[RunDir, dict[str, float]]:
    run = RunDir.open(run_path)
    config = run.read_config()
    if not isinstance(config, SDFTrainConfig):
        raise InputError(run.path, f"not an SDF run (its config is {type(config).__name__})")
    if steps is not None:
        config = replace(config, trainer=replace(config.trainer, steps=steps))
    return train_sdf(config, run)
