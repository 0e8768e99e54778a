"""Procedural data with known content, for tests, benchmarks and the demo.

``test_image`` has three parts with known spectra: a smooth low-frequency background (energy below
``2`` cycles/image), sharp-edged shapes (a 1/f² spectrum) and a fine sinusoidal texture at a known
frequency (``texture_cycles`` cycles per image width).
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor


def sinusoid_image(height: int, width: int, cycles_x: float, cycles_y: float = 0.0) -> Float[Tensor, "h w 1"]:
    """``0.5 + 0.5·cos(2π(cx·u + cy·v))`` sampled at pixel centres: a single spectral peak."""
    v = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    u = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return (0.5 + 0.5 * torch.cos(2 * math.pi * (cycles_x * uu + cycles_y * vv))).float()[..., None]


def test_image(height: int = 256, width: int = 256, texture_cycles: float = 32.0, seed: int = 0) -> Float[Tensor, "h w 3"]:
    """Smooth + edges + fine texture, RGB in ``[0,1]`` (display-referred values)."""
    gen = torch.Generator().manual_seed(seed)
    v = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    u = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    smooth = torch.stack(
        [0.5 + 0.25 * torch.cos(2 * math.pi * uu), 0.5 + 0.25 * torch.sin(2 * math.pi * vv), 0.4 + 0.2 * uu * vv], dim=-1
    )
    img = smooth.clone()
    for _ in range(6):  # discs and boxes with hard edges
        cx, cy, r = torch.rand(3, generator=gen).tolist()
        colour = torch.rand(3, generator=gen)
        r = 0.05 + 0.15 * r
        if torch.rand(1, generator=gen).item() < 0.5:
            mask = (uu - cx) ** 2 + (vv - cy) ** 2 < r**2
        else:
            mask = ((uu - cx).abs() < r) & ((vv - cy).abs() < 0.6 * r)
        img[mask] = colour
    texture = 0.08 * torch.cos(2 * math.pi * texture_cycles * (uu + 0.5 * vv))
    band = (uu > 0.55) & (vv > 0.55)  # texture in one quadrant only: spatially varying frequency content
    img = img + torch.where(band, texture, torch.zeros_like(texture))[..., None]
    return img.clamp(0, 1)


# --- analytic signed distance functions (exact distances; negative inside) -------------------------


def sphere_sdf(
    points: Float[Tensor, "n 3"], radius: float = 0.5, centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> Float[Tensor, " n"]:
    """Exact SDF of a sphere: ``‖p − c‖ − r``."""
    return (points - points.new_tensor(centre)).norm(dim=-1) - radius


def torus_sdf(points: Float[Tensor, "n 3"], major: float = 0.5, minor: float = 0.2) -> Float[Tensor, " n"]:
    """Exact SDF of a torus around the z axis: ``‖(‖p_xy‖ − R, p_z)‖ − r``."""
    ring = points[:, :2].norm(dim=-1) - major
    return torch.stack([ring, points[:, 2]], dim=-1).norm(dim=-1) - minor


def box_sdf(points: Float[Tensor, "n 3"], half_extents: tuple[float, float, float] = (0.5, 0.35, 0.25)) -> Float[Tensor, " n"]:
    """Exact SDF of an axis-aligned box centred at the origin: ``‖max(q, 0)‖ + min(max_i q_i, 0)``, ``q = |p| − h``."""
    q = points.abs() - points.new_tensor(half_extents)
    return q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)


class AnalyticShape:
    """A solid with an exact SDF and exact surface samples (for SDF tests and ``scripts/bench_sdf.py``).

    ``kind``: ``sphere`` (radius 0.5), ``torus`` (around z, R = 0.5, r = 0.2) or ``box`` (half extents
    0.5 × 0.35 × 0.25); all centred at the origin. Sign convention: negative inside.
    """

    KINDS = ("sphere", "torus", "box")

    def __init__(self, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown analytic shape {kind!r}; choose one of {', '.join(self.KINDS)}")
        self.kind = kind

    def sdf(self, points: Float[Tensor, "n 3"]) -> Float[Tensor, " n"]:
        if self.kind == "sphere":
            return sphere_sdf(points)
        if self.kind == "torus":
            return torus_sdf(points)
        return box_sdf(points)

    @property
    def bounds(self) -> Float[Tensor, "2 3"]:
        """Tight axis-aligned bounding box."""
        h = {"sphere": (0.5, 0.5, 0.5), "torus": (0.7, 0.7, 0.2), "box": (0.5, 0.35, 0.25)}[self.kind]
        t = torch.tensor(h, dtype=torch.float64)
        return torch.stack([-t, t])

    def area(self) -> float:
        if self.kind == "sphere":
            return 4 * math.pi * 0.25
        if self.kind == "torus":
            return 4 * math.pi**2 * 0.5 * 0.2
        a, b, c = 0.5, 0.35, 0.25
        return 8 * (a * b + b * c + a * c)

    def volume(self) -> float:
        if self.kind == "sphere":
            return 4 / 3 * math.pi * 0.125
        if self.kind == "torus":
            return 2 * math.pi**2 * 0.5 * 0.2**2
        return 8 * 0.5 * 0.35 * 0.25

    def sample_surface(self, n: int, seed: int = 0) -> tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
        """``n`` points uniformly distributed over the exact surface, with outward unit normals (float64)."""
        gen = torch.Generator().manual_seed(seed)
        if self.kind == "sphere":
            d = torch.randn(n, 3, generator=gen, dtype=torch.float64)
            d = d / d.norm(dim=-1, keepdim=True)
            return 0.5 * d, d
        if self.kind == "torus":
            big, small = 0.5, 0.2
            us, vs = [], []
            count = 0
            while count < n:  # area element ∝ (R + r cos v): rejection-sample v
                u = torch.rand(2 * n, generator=gen, dtype=torch.float64) * 2 * math.pi
                v = torch.rand(2 * n, generator=gen, dtype=torch.float64) * 2 * math.pi
                keep = torch.rand(2 * n, generator=gen, dtype=torch.float64) * (big + small) < big + small * torch.cos(v)
                us.append(u[keep])
                vs.append(v[keep])
                count += int(keep.sum())
            u, v = torch.cat(us)[:n], torch.cat(vs)[:n]
            normal = torch.stack([torch.cos(v) * torch.cos(u), torch.cos(v) * torch.sin(u), torch.sin(v)], dim=-1)
            centre = torch.stack([big * torch.cos(u), big * torch.sin(u), torch.zeros_like(u)], dim=-1)
            return centre + small * normal, normal
        h = torch.tensor([0.5, 0.35, 0.25], dtype=torch.float64)
        face_area = torch.stack([h[1] * h[2], h[0] * h[2], h[0] * h[1]]).repeat(2)  # ±x, ±y, ±z
        face = torch.multinomial(face_area / face_area.sum(), n, replacement=True, generator=gen)
        axis, sign = face % 3, torch.where(face < 3, 1.0, -1.0).double()
        p = (torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2 - 1) * h
        rows = torch.arange(n)
        p[rows, axis] = sign * h[axis]
        normal = torch.zeros(n, 3, dtype=torch.float64)
        normal[rows, axis] = sign
        return p, normal
