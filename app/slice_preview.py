"""A PNG of a field's three mid-plane slices: blue outside, red inside, black level set."""

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from fieldforge.data.images import encode_image
from fieldforge.fields.meshing import grid_axes


def slice_image(
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    bbox: torch.Tensor,
    resolution: int,
    level: float,
    inside: Literal["below", "above"],
    kind: str,
    device: torch.device | str = "cpu",
) -> bytes:
    """PNG of the mid-planes z (x→, y↑), y (x→, z↑) and x (y→, z↑) side by side: blue outside, red
    inside, black level set; SDFs also show iso-distance bands every 2% of the box."""
    ax = grid_axes(bbox, resolution)
    mid = [0.5 * (a[0] + a[-1]) for a in ax]
    u, v = np.meshgrid(np.arange(resolution), np.arange(resolution)[::-1], indexing="xy")  # image rows: up = +
    panels = []
    for a, b, c in ((0, 1, 2), (0, 2, 1), (1, 2, 0)):
        pts = np.zeros((resolution, resolution, 3))
        pts[..., a], pts[..., b], pts[..., c] = ax[a][u], ax[b][v], mid[c]
        with torch.no_grad():
            p = torch.from_numpy(pts.reshape(-1, 3)).float().to(device)
            vals = torch.cat([value_fn(q).float().cpu() for q in p.split(65536)]).numpy().reshape(resolution, resolution)
        panels.append(_colour_slice(vals, level, inside, kind, float(np.linalg.norm(ax[0][-1] - ax[0][0]))))
    gap = np.ones((resolution, 4, 3))
    img = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    return encode_image(torch.from_numpy(img).float(), "png")


def _colour_slice(vals: np.ndarray, level: float, inside: str, kind: str, extent: float) -> np.ndarray:
    d = vals - level if inside == "below" else level - vals  # > 0 outside
    if kind == "sdf":
        t = np.tanh(d / (0.1 * extent))
        bands = 0.85 + 0.15 * np.cos(2 * np.pi * d / (0.02 * extent))
    else:
        t = np.tanh(d / 4.0)
        bands = np.ones_like(d)
    white = np.ones(3)
    blue, red = np.array([0.05, 0.2, 0.8]), np.array([0.8, 0.1, 0.05])
    w = np.abs(t)[..., None]
    rgb = np.where((t > 0)[..., None], (1 - w) * white + w * blue, (1 - w) * white + w * red) * bands[..., None]
    inside_mask = d < 0
    edge = np.zeros_like(inside_mask)
    edge[:-1, :] |= inside_mask[:-1, :] != inside_mask[1:, :]
    edge[:, :-1] |= inside_mask[:, :-1] != inside_mask[:, 1:]
    rgb[edge] = 0.0
    return np.clip(rgb, 0, 1)


