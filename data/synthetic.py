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
