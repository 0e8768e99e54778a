"""Radiance-field commands: ``train nerf``, ``export render|video|pointcloud``, NeRF ``export mesh``,
``capture synthetic`` and ``demo nerf`` (plus :func:`demo_nerf`, the whole pipeline as one function)."""

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import tyro

from fieldforge.app.config_nerf import NERF_METHODS, NerfTrainConfig, nerf_train_config
from fieldforge.app.commands import TYRO_CONF, _method_from_argv, run_train_command
from fieldforge.data.errors import InputError

def _summary(prefix: str, metrics: dict, path: Path) -> str:
    parts = [prefix]
    if "psnr" in metrics:
        parts.append(f"test PSNR {metrics['psnr']:.2f} dB")
    if "ssim" in metrics:
        parts.append(f"SSIM {metrics['ssim']:.4f}")
    if "train_seconds" in metrics:
        parts.append(f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s")
    return ", ".join(parts) + f" → {path}"


def train_nerf(argv: list[str], prog: str) -> int:
    from fieldforge.app.nerf_task import resume_nerf, train_nerf as run_training

    default = nerf_train_config(_method_from_argv(argv, NERF_METHODS, "ngp"))
    run, metrics = run_train_command(argv, prog, NerfTrainConfig, default, run_training, resume_nerf,
                                     "a capture directory or transforms file")
    print(_summary(f"trained {run.read_config().method}", metrics, run.path))
    return 0


# --- exports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRenderConfig:
    """Render the views of a NeRF run's capture split (PNG), with PSNR/SSIM when the images are available."""

    run: Path = Path("")
    """Run directory of a radiance field."""
    split: Literal["train", "val", "test"] = "test"
    """Which cameras to render."""
    depth: bool = False
    """Also write expected-depth PNGs."""
    step: int | None = None
    """Checkpoint step (default: newest)."""
    output: Path | None = None
    """Output folder (default: <run>/exports/render-<split>-step<N>/)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True)
class ExportVideoConfig:
    """Render a fly-through as an H.264 MP4."""

    run: Path = Path("")
    """Run directory of a radiance field."""
    path: Literal["orbit", "spiral", "cameras"] = "orbit"
    """orbit: circle around the scene; spiral: forward-facing spiral; cameras: through the training cameras."""
    frames: int = 120
    """Number of frames."""
    fps: int = 30
    """Frames per second."""
    scale: float = 1.0
    """Resolution relative to the training images (rounded to multiples of 16)."""
    step: int | None = None
    output: Path | None = None
    """Output file (default: <run>/exports/video-<path>-step<N>.mp4)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True)
class ExportPointcloudConfig:
    """Points where the cameras' rays terminate (expected depth), coloured by the render (PLY)."""

    run: Path = Path("")
    """Run directory of a radiance field."""
    points: int = 200_000
    """Number of points (at most)."""
    split: Literal["train", "val", "test"] = "train"
    """Cameras whose rays are cast."""
    min_opacity: float = 0.5
    """Keep rays whose accumulated opacity exceeds this."""
    frame: Literal["capture", "normalized"] = "capture"
    """Coordinates: the capture's own world frame, or FieldForge's normalized frame."""
    step: int | None = None
    output: Path | None = None
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"


def _device(name: str) -> str:
    from fieldforge.app.trainer import resolve_device

    return str(resolve_device(name))


def _require_run(run: Path) -> None:
    if str(run) in ("", "."):
        raise InputError(None, "--run is required (a run directory)")


def export_render(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_nerf import export_render as run_export

    c = tyro.cli(ExportRenderConfig, args=argv, prog=prog, config=TYRO_CONF)
    _require_run(c.run)
    out, m = run_export(c.run, c.split, c.step, c.output, c.depth, _device(c.device))
    print(_summary(f"rendered {m['views']} {c.split} views from step {m['step']}", m, out))
    return 0


def export_video(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_nerf import export_video as run_export

    c = tyro.cli(ExportVideoConfig, args=argv, prog=prog, config=TYRO_CONF)
    _require_run(c.run)
    out, m = run_export(c.run, c.path, c.frames, c.fps, c.scale, c.step, c.output, _device(c.device))
    print(f"rendered a {m['frames']}-frame {c.path} video ({m['width']}×{m['height']}, {m['fps']} fps) from step {m['step']} → {out}")
    return 0


def export_pointcloud(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_nerf import export_pointcloud as run_export

    c = tyro.cli(ExportPointcloudConfig, args=argv, prog=prog, config=TYRO_CONF)
    _require_run(c.run)
    out, m = run_export(c.run, c.points, c.split, c.frame, c.step, c.output, c.min_opacity, c.seed, _device(c.device))
    print(f"exported {m['points']:,} points from step {m['step']} → {out}")
    return 0


def export_mesh_nerf(config, argv: list[str]) -> int:
    """``fieldforge export mesh`` for radiance-field runs (dispatched from the generic command).

    Takes the generic ``ExportMeshConfig``: ``--level`` is the density threshold (default: σ at which a
    shell 1% of the box diagonal thick is half opaque), ``--frame input`` maps vertices to the capture's
    frame, ``--frame unit`` keeps FieldForge's normalized frame; ``--resolution`` defaults to 256 here.
    """
    from fieldforge.app.export_nerf import export_nerf_mesh

    if config.format == "npz":
        raise InputError(None, "--format npz is not available for radiance fields; use ply, obj or glb")
    resolution = config.resolution if any(a.startswith("--resolution") for a in argv) else 256
    frame = "capture" if config.frame == "input" else "normalized"
    out, m = export_nerf_mesh(config.run, resolution, config.level, frame, config.step, config.output, config.format, _device(config.device))
    print(f"exported density mesh (σ = {m['level']:.3g}) at {resolution}³ from step {m['step']}: {m['vertices']:,} vertices, {m['faces']:,} faces → {out}")
    return 0


# --- synthetic capture and demo --------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticCaptureCommand:
    """Write the procedural capture (textured SDF shapes, exact poses) in nerfstudio format."""

    output: Path = Path("outputs/synthetic-capture")
    """Folder to write transforms.json and images/ into."""
    views: int = 40
    """Number of views."""
    width: int = 64
    height: int = 64
    supersample: int = 2
    """Rays per pixel per axis (anti-aliasing)."""
    points: int = 0
    """Also write this many surface points (points.ply, referenced as ply_file_path)."""


def write_synthetic_capture(output: Path, n_views: int = 40, width: int = 64, height: int = 64, supersample: int = 2, points: int = 0) -> Path:
    """Render the procedural capture and write it atomically; returns its transforms.json."""
    from fieldforge.app.atomic import atomic_write_bytes
    from fieldforge.data.captures.synthetic import SyntheticCaptureConfig, synthetic_capture_files

    cfg = SyntheticCaptureConfig(n_views=n_views, width=width, height=height, supersample=supersample, n_points=points)
    files = synthetic_capture_files(cfg)
    for name, data in files.items():
        if name != "transforms.json":
            atomic_write_bytes(output / name, data)
    return atomic_write_bytes(output / "transforms.json", files["transforms.json"])  # last: marks completion


def capture_synthetic(argv: list[str], prog: str) -> int:
    c = tyro.cli(SyntheticCaptureCommand, args=argv, prog=prog, config=TYRO_CONF)
    if c.views < 1 or c.width < 8 or c.height < 8:
        raise InputError(None, "--views must be ≥ 1 and --width/--height ≥ 8")
    t0 = time.perf_counter()
    tf = write_synthetic_capture(c.output, c.views, c.width, c.height, c.supersample, c.points)
    print(f"wrote a {c.views}-view {c.width}×{c.height} synthetic capture in {time.perf_counter() - t0:.1f} s → {tf}")
    return 0


DEMO_CAPTURE = dict(n_views=40, width=64, height=64, supersample=2)
"""The embedded synthetic capture of the demo (rendered on the fly: no data files needed)."""


def demo_nerf_config(capture: Path, output_dir: Path, steps: int, progress: bool = True) -> NerfTrainConfig:
    """The demo's NeRF run: ``ngp`` with a CPU-sized hash grid and occupancy grid."""
    from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig

    base = nerf_train_config("ngp")
    return replace(
        base,
        data=capture,
        field=replace(base.field, encoding=HashGridEncodingConfig(n_levels=12, log2_table_size=15, max_resolution=256)),
        trainer=replace(
            base.trainer, steps=steps, batch_size=1024, eval_every=0, checkpoint_every=steps, output_dir=output_dir,
            name="demo-nerf", progress=progress,
        ),
        render=replace(base.render, grid_resolution=48, steps_per_ray=256, grid_warmup_steps=64, grid_update_every=16,
                       target_samples=1 << 14, max_rays=4096),
    )


def demo_nerf(output_dir: Path = Path("outputs"), steps: int = 400, progress: bool = True, video_frames: int = 48, mesh_resolution: int = 128) -> dict:
    """The whole radiance-field pipeline on the embedded synthetic capture: render the capture, train
    ``ngp``, print test PSNR, then write test renders, an orbit video, a coloured mesh and a point cloud.

    Returns ``{"run", "capture", "renders", "video", "mesh", "pointcloud", "metrics"}``.
    """
    from fieldforge.app.export_nerf import export_nerf_mesh, export_pointcloud as run_pointcloud, export_render as run_render, export_video as run_video
    from fieldforge.app.nerf_task import train_nerf as run_training

    capture = output_dir / "demo-capture"
    if not (capture / "transforms.json").is_file():
        write_synthetic_capture(capture, **DEMO_CAPTURE)  # type: ignore[arg-type]
    run, metrics = run_training(demo_nerf_config(capture, output_dir, steps, progress))
    renders, _ = run_render(run.path, "test", None, None, depth=True)
    video, _ = run_video(run.path, "orbit", video_frames, 24, 1.0, None, None)
    mesh, mesh_m = export_nerf_mesh(run.path, mesh_resolution)
    cloud, _ = run_pointcloud(run.path, 20_000, "train", "capture", None, None)
    return {"run": run.path, "capture": capture, "renders": renders, "video": video, "mesh": mesh, "pointcloud": cloud,
            "metrics": {**metrics, "mesh_faces": mesh_m["faces"]}}


@dataclass(frozen=True)
class DemoNerfCommand:
    """Render the embedded synthetic capture, train ngp on it, and write renders, a video, a mesh and a point cloud."""

    steps: int = 400
    """Training steps."""
    output_dir: Path = Path("outputs")
    """Where the demo capture and run directory are created."""
    progress: bool = True


def demo(argv: list[str], prog: str) -> int:
    c = tyro.cli(DemoNerfCommand, args=argv, prog=prog, config=TYRO_CONF)
    t0 = time.perf_counter()
    out = demo_nerf(c.output_dir, c.steps, c.progress)
    m = out["metrics"]
    print(
        f"demo nerf: test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, {m['steps']} steps in {m['train_seconds']:.1f} s "
        f"(pipeline {time.perf_counter() - t0:.0f} s) → renders {out['renders']}, video {out['video']}, mesh {out['mesh']}, "
        f"points {out['pointcloud']}"
    )
    return 0


__all__ = ["demo_nerf", "demo_nerf_config", "export_mesh_nerf", "write_synthetic_capture"]
