"""A procedural multi-view capture with exact poses, written in nerfstudio format (tests, demo, bench).

The scene is analytic: a textured sphere, a rounded box with a 3-D checker and a striped torus (an SDF
union, z up, inside the unit ball), sphere-traced per pixel with ``supersample²`` rays for anti-aliased
RGBA edges. Shading is Lambert + ambient + a weak Blinn–Phong highlight (so colour is mildly
view-dependent). Cameras sit on a Fibonacci spiral over a sphere of radius ``distance`` (elevations
−15°…75°), looking at the origin with +z up. Values are the stored (display) values NeRF methods fit.

This module only builds bytes; ``app/`` writes them (:func:`synthetic_capture_files`).
"""

import json
import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.data.camera_paths import look_at
from fieldforge.data.formats import encode_ply, encode_png

LIGHT = (0.45, 0.35, 0.82)


@dataclass(frozen=True)
class SyntheticCaptureConfig:
    """Procedural capture: views, resolution, camera distance and field of view."""

    n_views: int = 40
    """Number of views (every 8th is held out for test by the parser's default)."""
    width: int = 64
    """Image width in pixels."""
    height: int = 64
    """Image height in pixels."""
    fov_x_degrees: float = 45.0
    """Horizontal field of view."""
    distance: float = 2.6
    """Camera distance from the origin (the objects lie within radius ~0.8)."""
    supersample: int = 2
    """Rays per pixel per axis (anti-aliasing)."""
    distortion: tuple[float, float, float, float, float, float] = (0.0,) * 6
    """OPENCV distortion (k1, k2, k3, k4, p1, p2) the images are rendered with (all zero: pinhole)."""
    n_points: int = 0
    """If > 0, also write this many exact surface points as ``points.ply`` (ply_file_path)."""
    seed: int = 0
    backdrop_radius: float = 0.0
    """If > 0, a textured sphere of this radius around everything (an unbounded scene's distant backdrop);
    rays that miss the objects hit it (opaque images) and ``n_points`` also samples it."""
    outward: bool = False
    """Cameras look away from the origin (cameras inside a scene, looking at its surroundings)."""


# --- the scene ---------------------------------------------------------------------------------


def _sphere(p: Tensor) -> Tensor:
    return (p - p.new_tensor([-0.38, -0.18, 0.05])).norm(dim=-1) - 0.34


def _box(p: Tensor) -> Tensor:
    q = (p - p.new_tensor([0.36, 0.22, -0.08])).abs() - p.new_tensor([0.24, 0.19, 0.17])
    return q.clamp(min=0).norm(dim=-1) + q.amax(dim=-1).clamp(max=0) - 0.04


def _torus(p: Tensor) -> Tensor:
    c = p - p.new_tensor([0.05, -0.42, -0.22])
    ring = c[:, :2].norm(dim=-1) - 0.24
    return torch.stack([ring, c[:, 2]], dim=-1).norm(dim=-1) - 0.08


def scene_sdf(points: Float[Tensor, "n 3"]) -> tuple[Float[Tensor, " n"], Tensor]:
    """Signed distance of the union (negative inside) and the index of the nearest object."""
    a, b, c = _sphere(points), _box(points), _torus(points)
    value = torch.minimum(torch.minimum(a, b), c)
    which = torch.where(value == a, 0, torch.where(value == b, 1, 2))
    return value, which


def _union(points: Tensor) -> Tensor:
    return torch.minimum(torch.minimum(_sphere(points), _box(points)), _torus(points))


def scene_albedo(points: Float[Tensor, "n 3"], which: Tensor) -> Float[Tensor, "n 3"]:
    """Procedural textures: sphere checker (lat-long), box 3-D checker, torus stripes."""
    out = torch.zeros(points.shape[0], 3, dtype=points.dtype)
    c = points - points.new_tensor([-0.38, -0.18, 0.05])
    phi = torch.atan2(c[:, 1], c[:, 0])
    theta = torch.acos((c[:, 2] / c.norm(dim=-1).clamp(min=1e-9)).clamp(-1, 1))
    sph = (torch.sin(6 * phi) * torch.sin(6 * theta)) > 0
    sphere_col = torch.where(sph[:, None], points.new_tensor([0.9, 0.3, 0.2]), points.new_tensor([0.95, 0.85, 0.3]))
    cell = torch.floor(points / 0.1).long().sum(dim=-1) % 2 == 0
    box_col = torch.where(cell[:, None], points.new_tensor([0.2, 0.45, 0.9]), points.new_tensor([0.92, 0.92, 0.95]))
    t = points - points.new_tensor([0.05, -0.42, -0.22])
    ang = torch.atan2(t[:, 1], t[:, 0])
    stripe = 0.65 + 0.35 * torch.sin(14 * ang)
    torus_col = points.new_tensor([0.25, 0.8, 0.35]) * stripe[:, None]
    for k, col in enumerate((sphere_col, box_col, torus_col)):
        sel = which == k
        out[sel] = col[sel]
    return out


def _normals(points: Tensor, eps: float = 1e-4) -> Tensor:
    offs = torch.eye(3, dtype=points.dtype) * eps
    grad = torch.stack([scene_sdf(points + o)[0] - scene_sdf(points - o)[0] for o in offs], dim=-1)
    return grad / grad.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def trace(origins: Float[Tensor, "n 3"], directions: Float[Tensor, "n 3"], max_steps: int = 96) -> tuple[Tensor, Tensor]:
    """Sphere tracing from the bounding sphere of radius 1: ``(hit (n,), t (n,))``."""
    b = (origins * directions).sum(-1)
    c = (origins * origins).sum(-1) - 1.0
    disc = b * b - c
    t = (-b - disc.clamp(min=0).sqrt()).clamp(min=0)
    active = disc > 0
    hit = torch.zeros_like(active)
    t_exit = -b + disc.clamp(min=0).sqrt()
    idx = torch.nonzero(active).squeeze(-1)
    o, dirs, ti, te = origins[idx], directions[idx], t[idx], t_exit[idx]
    for _ in range(max_steps):
        if idx.numel() == 0:
            break
        d = _union(o + ti[:, None] * dirs)
        done = d < 1e-5
        ti = ti + torch.where(done, torch.zeros_like(d), d)
        gone = ti > te
        finished = done | gone
        if bool(finished.any()):
            hit[idx[done]] = True
            t[idx[finished]] = ti[finished]
            keep = ~finished
            idx, o, dirs, ti, te = idx[keep], o[keep], dirs[keep], ti[keep], te[keep]
    t[idx] = ti
    return hit, t


def shade(points: Tensor, directions: Tensor, which: Tensor) -> Tensor:
    """Lambert + ambient + weak Blinn–Phong, in [0, 1]."""
    n = _normals(points)
    light = points.new_tensor(LIGHT)
    light = light / light.norm()
    lam = (n @ light).clamp(min=0)
    h = light[None] - directions
    h = h / h.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    spec = ((n * h).sum(-1).clamp(min=0)) ** 40
    col = scene_albedo(points, which) * (0.3 + 0.7 * lam[:, None]) + 0.25 * spec[:, None]
    return col.clamp(0, 1)


# --- cameras -------------------------------------------------------------------------------------


def camera_positions(n: int, distance: float) -> Float[Tensor, "n 3"]:
    """Fibonacci spiral over elevations −15°…75°, azimuths by the golden angle."""
    k = torch.arange(n, dtype=torch.float64) + 0.5
    lo, hi = math.sin(math.radians(-15)), math.sin(math.radians(75))
    z = lo + (hi - lo) * k / n
    az = k * math.pi * (3 - math.sqrt(5))
    r = (1 - z * z).sqrt()
    return torch.stack([r * torch.cos(az), r * torch.sin(az), z], dim=-1) * distance


def render_view(
    c2w: Float[Tensor, "4 4"], fx: float, fy: float, cx: float, cy: float, width: int, height: int,
    supersample: int = 2, distortion: tuple[float, ...] = (0.0,) * 6, backdrop_radius: float = 0.0,
) -> Float[Tensor, "h w 4"]:
    """Straight (non-premultiplied) RGBA of one view, float64 (opaque where a backdrop is hit)."""
    from fieldforge.fields.rendering.rays import generate_rays

    s = supersample
    ys = (torch.arange(height * s, dtype=torch.float64) + 0.5) / s
    xs = (torch.arange(width * s, dtype=torch.float64) + 0.5) / s
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    pix = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)
    n = pix.shape[0]
    intr = torch.tensor([[fx, fy, cx, cy]], dtype=torch.float64).expand(n, 4)
    dist = torch.tensor([list(distortion)], dtype=torch.float64).expand(n, 6) if any(distortion) else None
    o, d = generate_rays(c2w[None].expand(n, 4, 4), intr, pix, dist)
    hit, t = trace(o, d)
    rgb = torch.zeros(n, 3, dtype=torch.float64)
    if bool(hit.any()):
        p = o[hit] + t[hit, None] * d[hit]
        _, which = scene_sdf(p)
        rgb[hit] = shade(p, d[hit], which)
    if backdrop_radius > 0:
        miss = ~hit
        b = (o[miss] * d[miss]).sum(-1)
        c = (o[miss] * o[miss]).sum(-1) - backdrop_radius**2
        t_back = -b + (b * b - c).clamp(min=0).sqrt()  # from inside the sphere: its far intersection
        rgb[miss] = backdrop_albedo(o[miss] + t_back[:, None] * d[miss])
        hit = torch.ones_like(hit)
    a = hit.double().reshape(height, s, width, s).mean(dim=(1, 3))
    premult = (rgb * hit[:, None].double()).reshape(height, s, width, s, 3).mean(dim=(1, 3))
    straight = torch.where(a[..., None] > 0, premult / a[..., None].clamp(min=1e-9), torch.zeros_like(premult))
    return torch.cat([straight, a[..., None]], dim=-1)


def backdrop_albedo(points: Float[Tensor, "n 3"]) -> Float[Tensor, "n 3"]:
    """Lat-long checker with a colour gradient over elevation (the backdrop's texture)."""
    u = points / points.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    phi = torch.atan2(u[:, 1], u[:, 0])
    elev = torch.asin(u[:, 2].clamp(-1, 1))
    check = (torch.floor(phi / (math.pi / 8)) + torch.floor(elev / (math.pi / 8))) % 2 == 0
    base = torch.stack([0.3 + 0.4 * (elev / math.pi + 0.5), 0.5 + 0.0 * elev, 0.8 - 0.4 * (elev / math.pi + 0.5)], dim=-1)
    return torch.where(check[:, None], base, base * 0.45)


def backdrop_points(n: int, radius: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` random points on the backdrop sphere and their colour."""
    gen = torch.Generator().manual_seed(seed + 1)
    u = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    p = u / u.norm(dim=-1, keepdim=True) * radius
    return p, backdrop_albedo(p)


def surface_points(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` points on the scene surface (projected from random points) and their albedo."""
    gen = torch.Generator().manual_seed(seed)
    p = (torch.rand(n * 8, 3, generator=gen, dtype=torch.float64) * 2 - 1) * 0.9
    for _ in range(8):
        d, _ = scene_sdf(p)
        p = p - d[:, None] * _normals(p)
    d, which = scene_sdf(p)
    keep = d.abs() < 1e-4
    p, which = p[keep][:n], which[keep][:n]
    return p, scene_albedo(p, which)


def synthetic_capture_files(config: SyntheticCaptureConfig = SyntheticCaptureConfig()) -> dict[str, bytes]:
    """``{relative path: bytes}`` of a nerfstudio capture: ``transforms.json``, ``images/*.png`` (RGBA)."""
    if config.n_views < 1 or config.width < 2 or config.height < 2:
        raise ValueError("a synthetic capture needs ≥ 1 view of at least 2×2 pixels")
    fx = 0.5 * config.width / math.tan(0.5 * math.radians(config.fov_x_degrees))
    fy, cx, cy = fx, config.width / 2.0, config.height / 2.0
    files: dict[str, bytes] = {}
    frames = []
    for i, pos in enumerate(camera_positions(config.n_views, config.distance)):
        c2w = look_at(pos, target=2 * pos) if config.outward else look_at(pos)
        rgba = render_view(c2w, fx, fy, cx, cy, config.width, config.height, config.supersample, config.distortion, config.backdrop_radius)
        name = f"images/frame_{i:04d}.png"
        # stored values: the PNG holds them as they are (no transfer function applied)
        files[name] = encode_png(rgba)
        frames.append({"file_path": name, "transform_matrix": c2w.tolist()})
    meta: dict = {
        "camera_model": "OPENCV" if any(config.distortion) else "PINHOLE",
        "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": config.width, "h": config.height,
        "frames": frames,
        "scene_box": [[-0.85, -0.85, -0.85], [0.85, 0.85, 0.85]],
    }
    if any(config.distortion):
        meta.update(dict(zip(("k1", "k2", "k3", "k4", "p1", "p2"), config.distortion)))
    if config.n_points > 0:
        pts, cols = surface_points(config.n_points, config.seed)
        if config.backdrop_radius > 0:
            bp, bc = backdrop_points(config.n_points, config.backdrop_radius, config.seed)
            pts, cols = torch.cat([pts, bp]), torch.cat([cols, bc])
        files["points.ply"] = encode_ply(pts, colours=cols, colour_space="srgb")  # albedo as stored values
        meta["ply_file_path"] = "points.ply"
    files["transforms.json"] = json.dumps(meta, indent=1).encode()
    return files


__all__ = ["SyntheticCaptureConfig", "backdrop_albedo", "backdrop_points", "camera_positions", "render_view", "scene_sdf", "surface_points", "synthetic_capture_files", "trace"]
