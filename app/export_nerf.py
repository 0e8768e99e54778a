"""Exports of NeRF runs: renders of a split, fly-through videos, coloured meshes and point clouds.

Everything here works on the loaded model through its capabilities (``Renderable``: ``rgb_density``,
``HasDensity``: ``density``) plus the run's ``capture.json`` (cameras, normalization, background).
Builders return arrays/bytes; only the ``export_*`` functions write files, atomically.
Geometry exports are mapped back to the capture's own world frame by default (``--frame capture``).
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
from fieldforge.app.checkpoint import load_weights
from fieldforge.app.config_nerf import NerfTrainConfig
from fieldforge.app.nerf_task import NerfModel, build_model, encode_stored_png, ndc_params
from fieldforge.app.runs import RunDir
from fieldforge.data.captures.capture import Cameras, Normalization
from fieldforge.data.errors import InputError
from fieldforge.fields.capabilities import HasDensity, Renderable


@dataclass
class LoadedNerf:
    run: RunDir
    config: NerfTrainConfig
    model: NerfModel
    meta: dict
    step: int

    @property
    def cameras(self) -> Cameras:
        return Cameras.from_dict(self.meta["cameras"])

    @property
    def normalization(self) -> Normalization:
        return Normalization.from_dict(self.meta["normalization"])

    @property
    def background(self) -> Tensor:
        return torch.tensor(self.meta["background"], dtype=torch.float32)

    @property
    def ndc(self) -> tuple[float, float, float] | None:
        return ndc_params(bool(self.meta["ndc"]), self.cameras)


def is_nerf_run(path: str | Path) -> bool:
    p = Path(path)
    return (p / "capture.json").is_file() and (p / "config.yaml").is_file()


def load_nerf_run(path: str | Path, step: int | None = None, device: str = "cpu") -> LoadedNerf:
    run = RunDir.open(path)
    config = run.read_config()
    if not isinstance(config, NerfTrainConfig):
        raise InputError(run.path, f"not a NeRF run (its config is {type(config).__name__})")
    meta_path = run.path / "capture.json"
    if not meta_path.is_file():
        raise InputError(run.path, "run has no capture.json (was it written by 'fieldforge train nerf'?)")
    meta = json.loads(meta_path.read_text())
    ckpts = dict(run.checkpoints())
    if not ckpts:
        raise InputError(run.path, "run has no checkpoint yet")
    chosen = max(ckpts) if step is None else step
    if chosen not in ckpts:
        raise InputError(run.path, f"no checkpoint at step {step} (have {sorted(ckpts)})")
    model = build_model(config, torch.tensor(meta["scene_box"], dtype=torch.float32))
    load_weights(ckpts[chosen], model)
    return LoadedNerf(run, config, model.to(device).eval(), meta, chosen)


# --- camera paths ---------------------------------------------------------------------------------


def _look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    z = position - target
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-8:
        x = np.cross(up + np.array([1e-3, 0.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, position
    return m


def _slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    th = math.acos(d)
    return (math.sin((1 - t) * th) * q0 + math.sin(t * th) * q1) / math.sin(th)


def _quat(r: np.ndarray) -> np.ndarray:
    """Rotation matrix → unit quaternion (w, x, y, z)."""
    w = math.sqrt(max(0.0, 1 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    x = math.copysign(math.sqrt(max(0.0, 1 + r[0, 0] - r[1, 1] - r[2, 2])) / 2, r[2, 1] - r[1, 2])
    y = math.copysign(math.sqrt(max(0.0, 1 - r[0, 0] + r[1, 1] - r[2, 2])) / 2, r[0, 2] - r[2, 0])
    z = math.copysign(math.sqrt(max(0.0, 1 - r[0, 0] - r[1, 1] + r[2, 2])) / 2, r[1, 0] - r[0, 1])
    q = np.array([w, x, y, z])
    return q / np.linalg.norm(q)


def _rot(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def camera_path(kind: Literal["orbit", "spiral", "cameras"], c2w: np.ndarray, scene_box: np.ndarray, n_frames: int) -> np.ndarray:
    """``(n_frames, 4, 4)`` camera-to-world poses (normalized frame) of a fly-through.

    - ``orbit``: a circle around the box centre about the cameras' mean up axis, at their mean
      distance and mean elevation, always looking at the centre;
    - ``spiral``: LLFF's spiral around the average pose (forward-facing captures);
    - ``cameras``: through the capture's cameras in order (slerp/lerp between them).
    """
    centre = scene_box.mean(0)
    up = c2w[:, :3, 1].mean(0)
    up /= max(np.linalg.norm(up), 1e-9)
    if kind == "orbit":
        rel = c2w[:, :3, 3] - centre
        heights = rel @ up
        radius = float(np.linalg.norm(rel - heights[:, None] * up, axis=-1).mean())
        height = float(heights.mean())
        a = np.cross(up, [1.0, 0.0, 0.0])
        if np.linalg.norm(a) < 1e-6:
            a = np.cross(up, [0.0, 1.0, 0.0])
        a /= np.linalg.norm(a)
        b = np.cross(up, a)
        start = math.atan2(float(rel[0] @ b), float(rel[0] @ a))
        poses = []
        for k in range(n_frames):
            th = start + 2 * math.pi * k / n_frames
            pos = centre + radius * (math.cos(th) * a + math.sin(th) * b) + height * up
            poses.append(_look_at(pos, centre, up))
        return np.stack(poses)
    if kind == "spiral":
        avg_pos = c2w[:, :3, 3].mean(0)
        z = c2w[:, :3, 2].sum(0)
        z /= np.linalg.norm(z)
        x = np.cross(up, z)
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        spread = np.percentile(np.abs((c2w[:, :3, 3] - avg_pos) @ np.stack([x, y, z], 1)), 90, axis=0)
        focus = avg_pos - z * max(1.0, 4 * float(spread.max()))
        poses = []
        for k in range(n_frames):
            th = 4 * math.pi * k / n_frames
            off = spread[0] * math.cos(th) * x + spread[1] * math.sin(th) * y + 0.5 * spread[2] * math.sin(0.5 * th) * z
            poses.append(_look_at(avg_pos + off, focus, y))
        return np.stack(poses)
    if kind == "cameras":
        n = c2w.shape[0]
        if n == 1:
            return np.repeat(c2w[:1], n_frames, axis=0)
        qs = [_quat(m[:3, :3]) for m in c2w]
        poses = []
        for k in range(n_frames):
            s = k / max(n_frames - 1, 1) * (n - 1)
            i = min(int(s), n - 2)
            t = s - i
            m = np.eye(4)
            m[:3, :3] = _rot(_slerp(qs[i], qs[i + 1], t))
            m[:3, 3] = (1 - t) * c2w[i, :3, 3] + t * c2w[i + 1, :3, 3]
            poses.append(m)
        return np.stack(poses)
    raise InputError(None, f"unknown camera path {kind!r}; choose orbit, spiral or cameras")


# --- renders --------------------------------------------------------------------------------------


def render_pose(nerf: LoadedNerf, c2w: Tensor, intrinsics: Tensor, width: int, height: int, distortion: Tensor | None = None):
    if not isinstance(nerf.model, Renderable):
        raise InputError(nerf.run.path, "this run's representation cannot be volume-rendered")
    return nerf.model.render_image(
        c2w, intrinsics, width, height, distortion, nerf.background, nerf.ndc, nerf.config.render.chunk
    )


def depth_to_png(depth: Tensor, opacity: Tensor) -> bytes:
    """Depth as an 8-bit grey PNG (near = bright), empty pixels black."""
    valid = opacity > 0.5
    d = depth.clone()
    if bool(valid.any()):
        lo, hi = float(d[valid].min()), float(d[valid].max())
        d = 1.0 - (d - lo) / max(hi - lo, 1e-9)
    d = torch.where(valid, d, torch.zeros_like(d)).clamp(0, 1)
    return encode_stored_png(d[..., None].expand(*d.shape, 3))


def export_render(path: Path, split: str, step: int | None, output: Path | None, depth: bool, device: str = "cpu") -> tuple[Path, dict]:
    """Render every view of a split; PSNR/SSIM against the capture when its images are still there."""
    from fieldforge.data.captures import load_capture
    from fieldforge.fields.metrics import psnr, ssim

    nerf = load_nerf_run(path, step, device)
    if split not in nerf.meta["split"]:
        raise InputError(None, f"unknown --split {split!r}; choose train, val or test")
    views = nerf.meta["split"][split]
    if not views:
        raise InputError(nerf.run.path, f"the capture's {split} split is empty")
    out_dir = output or nerf.run.exports_dir / f"render-{split}-step{nerf.step:06d}"
    cams = nerf.cameras
    capture = None
    try:
        capture = load_capture(nerf.config.data, nerf.config.capture, nerf.config.format)
        if len(capture) != len(cams):
            capture = None
    except InputError:
        capture = None  # the capture moved: renders still work, metrics do not
    ps, ss = [], []
    for i in views:
        dist = cams.distortion[i] if cams.has_distortion() else None
        rgb, dep, acc = render_pose(nerf, cams.camera_to_world[i], cams.intrinsics[i], int(cams.width[i]), int(cams.height[i]), dist)
        atomic_write_bytes(out_dir / f"{i:04d}.png", encode_stored_png(rgb))
        if depth:
            atomic_write_bytes(out_dir / f"{i:04d}_depth.png", depth_to_png(dep, acc))
        if capture is not None:
            target = capture.composited(i)
            ps.append(psnr(rgb, target))
            ss.append(ssim(rgb, target))
    metrics: dict = {"views": len(views), "step": nerf.step}
    if ps:
        metrics.update(psnr=sum(ps) / len(ps), ssim=sum(ss) / len(ss))
        atomic_write_bytes(out_dir / "metrics.json", json.dumps({"per_view_psnr": dict(zip(views, ps)), **metrics}, indent=1).encode())
    return out_dir, metrics


def export_video(
    path: Path, kind: Literal["orbit", "spiral", "cameras"], n_frames: int, fps: int, scale: float, step: int | None,
    output: Path | None, device: str = "cpu",
) -> tuple[Path, dict]:
    """Render a camera path and encode it as H.264 MP4 (imageio-ffmpeg)."""
    import imageio.v2 as iio2

    if n_frames < 1 or fps < 1 or not scale > 0:
        raise InputError(None, "--frames and --fps must be ≥ 1 and --scale positive")
    nerf = load_nerf_run(path, step, device)
    cams = nerf.cameras
    train = nerf.meta["split"]["train"]
    c2w = cams.camera_to_world.double().numpy()
    src = c2w[train] if kind == "cameras" else c2w
    poses = camera_path(kind, src, np.asarray(nerf.meta["scene_box"]), n_frames)
    ref = train[0]
    w = max(16, int(round(int(cams.width[ref]) * scale / 16)) * 16)  # multiples of 16: what H.264 encoders like
    h = max(16, int(round(int(cams.height[ref]) * scale / 16)) * 16)
    fx, fy, _, _ = cams.intrinsics[ref].tolist()
    sx, sy = w / float(cams.width[ref]), h / float(cams.height[ref])
    intr = torch.tensor([fx * sx, fy * sy, w / 2, h / 2])
    out = output or nerf.run.exports_dir / f"video-{kind}-step{nerf.step:06d}.mp4"
    frames = []
    for pose in poses:
        rgb, _, _ = render_pose(nerf, torch.from_numpy(pose).float(), intr, w, h)
        frames.append((rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    with atomic_path(out) as tmp:
        writer = iio2.get_writer(str(tmp), format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8, macro_block_size=16)
        try:
            for f in frames:
                writer.append_data(f)
        finally:
            writer.close()
    return out, {"frames": n_frames, "width": w, "height": h, "fps": fps, "step": nerf.step}


# --- geometry -------------------------------------------------------------------------------------


def default_density_level(scene_box: Tensor) -> float:
    """σ at which a shell 1% of the box diagonal thick is 50% opaque: ``ln 2 / (0.01·diag)``."""
    return math.log(2.0) / (0.01 * float((scene_box[1] - scene_box[0]).norm()))


def skipping_density(model: NerfModel, chunk: int = 65536):
    """``density`` that evaluates the field only in occupied grid cells (zero elsewhere)."""

    @torch.no_grad()
    def fn(points: Tensor) -> Tensor:
        out = torch.zeros(points.shape[0], device=points.device)
        occ = model.grid.occupied(model.to_field(points))
        idx = torch.nonzero(occ).squeeze(-1)
        for i in range(0, idx.shape[0], chunk):
            sel = idx[i : i + chunk]
            out[sel] = model.density(points[sel]).float()
        return out

    return fn


@torch.no_grad()
def extract_nerf_mesh(model, box: Tensor, resolution: int = 256, level: float | None = None, chunk: int = 65536, device: str = "cpu"):
    """Marching cubes (memory-bounded, ``fields.meshing``) on the density level set ``σ = level``;
    vertex colours are the field's colour seen along the inward normal.

    Returns a ``fields.meshing.MeshData`` in the normalized frame with colours as *stored* values
    (convert before handing it to encoders that expect linear colours).
    """
    from fieldforge.fields.meshing import extract_mesh

    if not isinstance(model, HasDensity):
        raise InputError(None, "this representation has no density to mesh")
    lvl = default_density_level(box) if level is None else float(level)
    value_fn = skipping_density(model, chunk) if hasattr(model, "grid") else model.density
    mesh, _ = extract_mesh(value_fn, box, resolution, lvl, "above", chunk=1 << 18, device=device)
    if mesh.n_faces == 0:
        raise InputError(None, f"the density never exceeds --level {lvl:g} inside the scene box (nothing to mesh)")
    if isinstance(model, Renderable):
        v = torch.from_numpy(mesh.vertices.astype(np.float32))
        if mesh.normals is not None:
            n = torch.nn.functional.normalize(torch.from_numpy(mesh.normals.astype(np.float32)), dim=-1)
        else:
            n = torch.nn.functional.normalize(v - box.mean(0), dim=-1)
        cols = []
        for i in range(0, v.shape[0], chunk):
            # the surface seen along the inward normal, like a camera facing it
            rgb, _ = model.rgb_density(v[i : i + chunk].to(device), -n[i : i + chunk].to(device))
            cols.append(rgb.float().cpu())
        mesh.colours = torch.cat(cols).clamp(0, 1).numpy()
    return mesh, lvl


def ply_bytes(vertices: np.ndarray, colours: np.ndarray | None = None, faces: np.ndarray | None = None, normals: np.ndarray | None = None) -> bytes:
    """Binary little-endian PLY: float xyz, optional float normals, uchar rgb; optional triangles."""
    v = np.ascontiguousarray(vertices, dtype="<f4")
    n = v.shape[0]
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}", "property float x", "property float y", "property float z"]
    if normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        header += ["property float nx", "property float ny", "property float nz"]
    if colours is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    rec = np.zeros(n, dtype=fields)
    rec["x"], rec["y"], rec["z"] = v[:, 0], v[:, 1], v[:, 2]
    if normals is not None:
        rec["nx"], rec["ny"], rec["nz"] = normals[:, 0], normals[:, 1], normals[:, 2]
    if colours is not None:
        c8 = np.clip(np.round(np.asarray(colours) * 255), 0, 255).astype(np.uint8)
        rec["red"], rec["green"], rec["blue"] = c8[:, 0], c8[:, 1], c8[:, 2]
    body = rec.tobytes()
    if faces is not None:
        header += [f"element face {faces.shape[0]}", "property list uchar int vertex_indices"]
        frec = np.zeros(faces.shape[0], dtype=[("k", "u1"), ("a", "<i4"), ("b", "<i4"), ("c", "<i4")])
        frec["k"] = 3
        frec["a"], frec["b"], frec["c"] = faces[:, 0], faces[:, 1], faces[:, 2]
        body += frec.tobytes()
    header.append("end_header")
    return ("\n".join(header) + "\n").encode() + body


def to_frame(points: np.ndarray, nerf: LoadedNerf, frame: str) -> np.ndarray:
    if frame == "normalized":
        return points
    return nerf.normalization.invert(torch.from_numpy(points.astype(np.float64))).numpy().astype(np.float32)


def export_nerf_mesh(
    path: Path, resolution: int = 256, level: float | None = None, frame: Literal["capture", "normalized"] = "capture",
    step: int | None = None, output: Path | None = None, fmt: Literal["ply", "obj", "glb"] = "ply", device: str = "cpu",
) -> tuple[Path, dict]:
    """Density-threshold marching cubes with vertex colours → PLY / OBJ / GLB (encoders of ``app.export_mesh``)."""
    from fieldforge.app.export_mesh import encode_mesh
    from fieldforge.data.images import srgb_to_linear

    if not 8 <= resolution <= 2048:
        raise InputError(None, f"--resolution must be in [8, 2048], got {resolution}")
    nerf = load_nerf_run(path, step, device)
    if nerf.meta["ndc"]:
        raise InputError(nerf.run.path, "meshing an NDC (forward-facing) run is not supported: its box is in NDC space")
    box = torch.tensor(nerf.meta["scene_box"], dtype=torch.float32)
    mesh, lvl = extract_nerf_mesh(nerf.model, box, resolution, level, device=device)
    mesh.vertices = to_frame(mesh.vertices, nerf, frame)
    if mesh.normals is not None and frame == "capture":
        rot = nerf.normalization.rotation.numpy()
        mesh.normals = (mesh.normals.astype(np.float64) @ rot).astype(np.float32)  # inverse rotation
    if mesh.colours is not None and nerf.meta.get("transfer", "srgb") == "srgb":
        # encoders take linear colours and write sRGB: hand them the decoded stored values
        mesh.colours = srgb_to_linear(torch.from_numpy(mesh.colours)).numpy()
    out = output or nerf.run.exports_dir / f"mesh-{resolution}-step{nerf.step:06d}.{fmt}"
    if out.suffix.lower() != f".{fmt}":
        raise InputError(out, f"output extension does not match --format {fmt}")
    atomic_write_bytes(out, encode_mesh(mesh, fmt))
    return out, {"vertices": mesh.n_vertices, "faces": mesh.n_faces, "step": nerf.step, "level": lvl, "kind": "density"}


@torch.no_grad()
def export_pointcloud(
    path: Path, n_points: int, split: str, frame: Literal["capture", "normalized"], step: int | None,
    output: Path | None, min_opacity: float = 0.5, seed: int = 0, device: str = "cpu",
) -> tuple[Path, dict]:
    """Points where rays of a split's cameras terminate (expected depth), coloured by the render."""
    from fieldforge.fields.rendering.rays import generate_rays

    nerf = load_nerf_run(path, step, device)
    if nerf.ndc is not None:
        raise InputError(nerf.run.path, "point clouds of NDC (forward-facing) runs are not supported")
    views = nerf.meta["split"].get(split) or []
    if not views:
        raise InputError(nerf.run.path, f"the capture's {split} split is empty")
    cams = nerf.cameras
    gen = torch.Generator().manual_seed(seed)
    per_view = max(1, math.ceil(2 * n_points / len(views)))
    pts, cols = [], []
    for i in views:
        w, h = int(cams.width[i]), int(cams.height[i])
        pix = torch.stack([torch.randint(0, w, (per_view,), generator=gen), torch.randint(0, h, (per_view,), generator=gen)], -1).float() + 0.5
        dist = cams.distortion[i][None].expand(per_view, 6) if cams.has_distortion() else None
        o, d = generate_rays(cams.camera_to_world[i][None].expand(per_view, 4, 4), cams.intrinsics[i][None].expand(per_view, 4), pix, dist)
        for a in range(0, per_view, nerf.config.render.chunk):
            out, _, _ = nerf.model.render_rays(o[a : a + nerf.config.render.chunk], d[a : a + nerf.config.render.chunk], None)
            keep = out.opacity > min_opacity
            p = o[a : a + nerf.config.render.chunk][keep] + out.depth[keep, None] * d[a : a + nerf.config.render.chunk][keep]
            pts.append(p)
            cols.append((out.rgb[keep] / out.opacity[keep, None].clamp(min=1e-6)).clamp(0, 1))
    points = torch.cat(pts)
    colours = torch.cat(cols)
    if points.shape[0] == 0:
        raise InputError(nerf.run.path, "no ray reached the opacity threshold: is the run trained?")
    if points.shape[0] > n_points:
        sel = torch.randperm(points.shape[0], generator=gen)[:n_points]
        points, colours = points[sel], colours[sel]
    xyz = to_frame(points.numpy(), nerf, frame)
    out_path = output or nerf.run.exports_dir / f"pointcloud-step{nerf.step:06d}.ply"
    atomic_write_bytes(out_path, ply_bytes(xyz, colours.numpy()))
    return out_path, {"points": int(xyz.shape[0]), "step": nerf.step}
