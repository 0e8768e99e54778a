"""Exports of renderable runs (radiance fields): renders of a capture split, fly-through videos and
coloured point clouds.

Everything works on the loaded model through its capabilities (``Renderable``: ``render_image`` /
``render_rays``) plus the run's ``capture.json`` (cameras, normalization, background). Geometry is mapped
back to the capture's own world frame by default (``--frame input``). Every file is written atomically.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from fieldforge.app.atomic import atomic_path, atomic_write_bytes
from fieldforge.app.loader import LoadedRun, load_run
from fieldforge.app.trainer import resolve_device
from fieldforge.data.camera_paths import camera_path
from fieldforge.data.captures.capture import Cameras
from fieldforge.data.errors import InputError
from fieldforge.data.formats import ColourSpace, encode_ply, encode_png, quantize
from fieldforge.data.memory import require_memory
from fieldforge.fields.capabilities import Renderable

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class ExportRenderConfig:
    """Render the views of a radiance field's capture split (PNG), with PSNR/SSIM when the images are available."""

    run: Path
    """Run directory of a radiance field."""
    split: Literal["train", "val", "test"] = "test"
    """Which cameras to render."""
    depth: bool = False
    """Also write expected-depth PNGs (near = bright)."""
    step: int | None = None
    """Checkpoint step (default: newest)."""
    output: Path | None = None
    """Output folder (default: <run>/exports/render-<split>-step<N>/)."""
    device: Device = "auto"
    """Where the field is evaluated ('auto': CUDA when present)."""


@dataclass(frozen=True)
class ExportVideoConfig:
    """Render a fly-through as an H.264 MP4."""

    run: Path
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
    """Checkpoint step (default: newest)."""
    output: Path | None = None
    """Output file (default: <run>/exports/video-<path>-step<N>.mp4)."""
    device: Device = "auto"
    """Where the field is evaluated ('auto': CUDA when present)."""


@dataclass(frozen=True)
class ExportPointcloudConfig:
    """Points where the cameras' rays terminate (expected depth), coloured by the render (PLY)."""

    run: Path
    """Run directory of a radiance field."""
    points: int = 200_000
    """Number of points (at most)."""
    split: Literal["train", "val", "test"] = "train"
    """Cameras whose rays are cast."""
    min_opacity: float = 0.5
    """Keep rays whose accumulated opacity exceeds this."""
    frame: Literal["input", "unit"] = "input"
    """Coordinates: the capture's own world frame ('input'), or FieldForge's normalized frame ('unit')."""
    step: int | None = None
    """Checkpoint step (default: newest)."""
    output: Path | None = None
    """Output file (default: <run>/exports/pointcloud-step<N>.ply)."""
    seed: int = 0
    """Seed of the sampled pixels."""
    device: Device = "auto"
    """Where the field is evaluated ('auto': CUDA when present)."""


@dataclass
class Scene:
    """A loaded renderable run with its cameras and render settings."""

    loaded: LoadedRun
    cameras: Cameras
    background: Tensor
    ndc: tuple[float, float, float] | None
    chunk: int

    @property
    def colour_space(self) -> ColourSpace:
        """How the model's colours (the capture's stored values) are encoded."""
        return "srgb" if self.loaded.info.get("transfer", "srgb") == "srgb" else "linear"

    def render(self, c2w: Tensor, intrinsics: Tensor, width: int, height: int, distortion: Tensor | None = None):
        """``(rgb (h, w, 3), depth (h, w), opacity (h, w))`` of one camera."""
        return self.loaded.model.render_image(c2w, intrinsics, width, height, distortion, self.background, self.ndc, self.chunk)

    def views(self, split: str) -> list[int]:
        views = self.loaded.info["split"].get(split) or []
        if not views:
            raise InputError(self.loaded.run.path, f"the capture's {split} split is empty")
        return views


def is_scene(loaded: LoadedRun) -> bool:
    """Whether a loaded run can be rendered from cameras: a ``Renderable`` model with the capture's record."""
    return isinstance(loaded.model, Renderable) and "cameras" in loaded.info


def scene_of(loaded: LoadedRun) -> Scene:
    """The cameras, background, NDC projection and render chunk of a loaded renderable run (``capture.json``)."""
    cameras = Cameras.from_dict(loaded.info["cameras"])
    ndc = cameras.ndc_projection() if loaded.info.get("ndc") else None
    background = torch.tensor(loaded.info["background"], dtype=torch.float32)
    chunk = loaded.config.render.chunk if hasattr(loaded.config, "render") else 8192
    return Scene(loaded, cameras, background, ndc, chunk)


def load_scene(path: Path, step: int | None, device: Device) -> Scene:
    """A run whose model can be volume-rendered, with the capture's cameras."""
    loaded = load_run(path, step, resolve_device(device))
    if not is_scene(loaded):
        raise InputError(loaded.run.path, f"this is a {loaded.kind} run: only radiance fields of a capture can be rendered from cameras")
    return scene_of(loaded)


def depth_to_png(depth: Tensor, opacity: Tensor) -> bytes:
    """Depth as an 8-bit grey PNG (near = bright), empty pixels black."""
    valid = opacity > 0.5
    d = depth.clone()
    if bool(valid.any()):
        lo, hi = float(d[valid].min()), float(d[valid].max())
        d = 1.0 - (d - lo) / max(hi - lo, 1e-9)
    d = torch.where(valid, d, torch.zeros_like(d)).clamp(0, 1)
    return encode_png(d)


def export_render(config: ExportRenderConfig) -> tuple[Path, dict]:
    """Render every view of a split; PSNR/SSIM against the capture when its images are still there."""
    from fieldforge.app.callbacks import console
    from fieldforge.data.captures import load_capture
    from fieldforge.fields.metrics import psnr, ssim

    from rich.progress import track

    scene = load_scene(config.run, config.step, config.device)
    loaded, cams = scene.loaded, scene.cameras
    views = scene.views(config.split)
    out_dir = config.output or loaded.run.exports_dir / f"render-{config.split}-step{loaded.step:06d}"
    capture = None
    try:
        capture = load_capture(loaded.config.data, loaded.config.capture, loaded.config.format)
        if len(capture) != len(cams):
            capture = None
    except InputError:
        capture = None  # the capture moved: renders still work, metrics do not
    ps, ss = [], []
    for i in track(views, description=f"render {config.split} views", console=console, transient=True):
        dist = cams.distortion[i] if cams.has_distortion() else None
        rgb, dep, acc = scene.render(cams.camera_to_world[i], cams.intrinsics[i], int(cams.width[i]), int(cams.height[i]), dist)
        atomic_write_bytes(out_dir / f"{i:04d}.png", encode_png(rgb))
        if config.depth:
            atomic_write_bytes(out_dir / f"{i:04d}_depth.png", depth_to_png(dep, acc))
        if capture is not None:
            target = capture.composited(i)
            ps.append(psnr(rgb, target))
            ss.append(ssim(rgb, target))
    metrics: dict = {"views": len(views), "step": loaded.step}
    if ps:
        metrics.update(psnr=sum(ps) / len(ps), ssim=sum(ss) / len(ss))
        atomic_write_bytes(out_dir / "metrics.json", json.dumps({"per_view_psnr": dict(zip(views, ps)), **metrics}, indent=1).encode())
    return out_dir, metrics


def export_video(config: ExportVideoConfig) -> tuple[Path, dict]:
    """Render a camera path and encode it as H.264 MP4 (imageio-ffmpeg)."""
    import imageio.v2 as iio2
    from rich.progress import track

    from fieldforge.app.callbacks import console

    if config.frames < 1 or config.fps < 1 or not config.scale > 0:
        raise InputError(None, "--frames and --fps must be ≥ 1 and --scale positive")
    scene = load_scene(config.run, config.step, config.device)
    loaded, cams = scene.loaded, scene.cameras
    train = scene.views("train")
    c2w = cams.camera_to_world.double().numpy()
    src = c2w[train] if config.path == "cameras" else c2w
    poses = camera_path(config.path, src, np.asarray(loaded.info["scene_box"]), config.frames)
    ref = train[0]
    w = max(16, int(round(int(cams.width[ref]) * config.scale / 16)) * 16)  # multiples of 16: what H.264 encoders like
    h = max(16, int(round(int(cams.height[ref]) * config.scale / 16)) * 16)
    fx, fy, _, _ = cams.intrinsics[ref].tolist()
    sx, sy = w / float(cams.width[ref]), h / float(cams.height[ref])
    intr = torch.tensor([fx * sx, fy * sy, w / 2, h / 2])
    # every 8-bit frame is kept until encoding; one frame's pixel grid, rgb/depth/opacity and quantized copy besides
    require_memory(config.frames * w * h * 3 + w * h * (2 + 5 + 3) * 4, f"a {config.frames}-frame {w}×{h} video",
                   "use a smaller --scale or fewer --frames")
    out = config.output or loaded.run.exports_dir / f"video-{config.path}-step{loaded.step:06d}.mp4"
    frames = [quantize(scene.render(torch.from_numpy(p).float(), intr, w, h)[0])
              for p in track(poses, description="render video frames", console=console, transient=True)]
    with atomic_path(out) as tmp:
        writer = iio2.get_writer(str(tmp), format="FFMPEG", mode="I", fps=config.fps, codec="libx264", quality=8, macro_block_size=16)
        try:
            for f in frames:
                writer.append_data(f)
        finally:
            writer.close()
    return out, {"frames": config.frames, "width": w, "height": h, "fps": config.fps, "step": loaded.step}


@torch.no_grad()
def export_pointcloud(config: ExportPointcloudConfig) -> tuple[Path, dict]:
    """Points where rays of a split's cameras terminate (expected depth), coloured by the render."""
    from fieldforge.fields.rendering.rays import generate_rays

    scene = load_scene(config.run, config.step, config.device)
    loaded, cams = scene.loaded, scene.cameras
    if scene.ndc is not None:
        raise InputError(loaded.run.path, "point clouds of forward-facing (NDC) runs are not supported")
    if config.points < 1:
        raise InputError(None, f"--points must be positive, got {config.points}")
    views = scene.views(config.split)
    device = next(iter(loaded.model.buffers())).device
    gen = torch.Generator().manual_seed(config.seed)
    per_view = max(1, math.ceil(2 * config.points / len(views)))
    pts, cols = [], []
    for i in views:
        w, h = int(cams.width[i]), int(cams.height[i])
        pix = torch.stack([torch.randint(0, w, (per_view,), generator=gen), torch.randint(0, h, (per_view,), generator=gen)], -1).float() + 0.5
        dist = cams.distortion[i][None].expand(per_view, 6) if cams.has_distortion() else None
        o, d = generate_rays(cams.camera_to_world[i][None].expand(per_view, 4, 4), cams.intrinsics[i][None].expand(per_view, 4), pix, dist)
        o, d = o.to(device), d.to(device)
        for a in range(0, per_view, scene.chunk):
            oc, dc = o[a : a + scene.chunk], d[a : a + scene.chunk]
            out, _, _ = loaded.model.render_rays(oc, dc, None)
            keep = out.opacity > config.min_opacity
            pts.append((oc[keep] + out.depth[keep, None] * dc[keep]).cpu())
            cols.append((out.rgb[keep] / out.opacity[keep, None].clamp(min=1e-6)).clamp(0, 1).cpu())
    points, colours = torch.cat(pts), torch.cat(cols)
    if points.shape[0] == 0:
        raise InputError(loaded.run.path, "no ray reached the opacity threshold: is the run trained?")
    if points.shape[0] > config.points:
        sel = torch.randperm(points.shape[0], generator=gen)[: config.points]
        points, colours = points[sel], colours[sel]
    xyz = points.numpy()
    if config.frame == "input" and loaded.frame is not None:
        xyz = loaded.frame.invert(xyz.astype(np.float64)).astype(np.float32)
    out_path = config.output or loaded.run.exports_dir / f"pointcloud-step{loaded.step:06d}.ply"
    atomic_write_bytes(out_path, encode_ply(xyz, colours=colours, colour_space=scene.colour_space))
    return out_path, {"points": int(xyz.shape[0]), "step": loaded.step}
