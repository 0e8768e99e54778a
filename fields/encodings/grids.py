"""Dense and plane (tri-plane / k-planes) grids sampled with linear interpolation: the functional helpers
behind CAM's modulation grids; plus the optimizer-group helper every grid representation uses.

Convention (one for the whole module): a grid stored channels-first ``(C, R_{k-1}, …, R_0)`` is indexed by
unit-cube coordinates ``u ∈ [0,1]^k`` with **align-corners** (vertex ``0`` at ``u_j = 0``, vertex ``R_j − 1`` at
``u_j = 1``) and **border** padding (coordinates outside are clamped), i.e. ``F.grid_sample(...,
align_corners=True, padding_mode="border")``, the setting of the CAM reference code. Axis ``j`` of ``u`` runs
along the LAST storage dimension for ``j = 0`` (``grid_sample``'s x), the second last for ``j = 1``, and so on.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn


def sample_grid(grid: Float[Tensor, "c *res"], u: Float[Tensor, "n k"]) -> Float[Tensor, "n c"]:
    """Linearly interpolate a dense ``k``-dimensional grid (``k`` ∈ {1, 2, 3}) at unit-cube points."""
    k = u.shape[-1]
    if grid.ndim != k + 1:
        raise ValueError(f"a {k}-D lookup needs a grid with {k} spatial dims, got shape {tuple(grid.shape)}")
    g = (u * 2.0 - 1.0).to(grid.dtype)
    n = u.shape[0]
    if k == 1:  # a 1-D grid as an (1 × R) image, sampled on its middle row
        out = F.grid_sample(grid[None, :, None, :], torch.stack([g[:, 0], torch.zeros_like(g[:, 0])], -1).view(1, 1, n, 2),
                            mode="bilinear", padding_mode="border", align_corners=True)
    elif k == 2:
        out = F.grid_sample(grid[None], g.view(1, 1, n, 2), mode="bilinear", padding_mode="border", align_corners=True)
    elif k == 3:
        out = F.grid_sample(grid[None], g.view(1, 1, 1, n, 3), mode="bilinear", padding_mode="border", align_corners=True)
    else:
        raise ValueError(f"dense grids support 1–3 dimensions, got {k}")
    return out.reshape(grid.shape[0], n).T


def plane_pairs(k: int) -> tuple[tuple[int, int], ...]:
    """Axis pairs of the k-planes factorization: (0,1), (0,2), (1,2) for ``k = 3``."""
    return tuple((a, b) for a in range(k) for b in range(a + 1, k))


def sample_planes(
    planes: Float[Tensor, "p c r r"], u: Float[Tensor, "n k"], pairs: Sequence[tuple[int, int]]
) -> Float[Tensor, "p n c"]:
    """Sample each plane ``planes[i]`` at the coordinate pair ``(u[:, a], u[:, b])`` = ``pairs[i]``.

    Returns the per-plane samples ``(P, n, C)``; callers combine them (product, sum) themselves.
    """
    if planes.shape[0] != len(pairs):
        raise ValueError(f"{planes.shape[0]} planes for {len(pairs)} axis pairs")
    n = u.shape[0]
    g = (u * 2.0 - 1.0).to(planes.dtype)
    coords = torch.stack([torch.stack([g[:, a], g[:, b]], dim=-1) for a, b in pairs])  # (P, n, 2)
    out = F.grid_sample(planes, coords.view(len(pairs), 1, n, 2), mode="bilinear", padding_mode="border", align_corners=True)
    return out.view(len(pairs), planes.shape[1], n).transpose(1, 2)


def sample_grid_reference(grid: Tensor, u: Tensor) -> Tensor:
    """Brute-force ``sample_grid`` (loop over the ``2^k`` corners, any dtype): the test oracle."""
    k = u.shape[-1]
    res = torch.tensor(grid.shape[1:][::-1], dtype=u.dtype)  # R_0 … R_{k−1}
    p = u.clamp(0, 1) * (res - 1)
    i0 = torch.minimum(torch.floor(p), (res - 2).clamp(min=0)).long()
    w = p - i0
    out = torch.zeros(u.shape[0], grid.shape[0], dtype=grid.dtype)
    for corner in range(2**k):
        bits = [(corner >> j) & 1 for j in range(k)]
        idx = [torch.clamp(i0[:, j] + bits[j], max=int(res[j]) - 1) for j in range(k)]
        weight = torch.ones(u.shape[0], dtype=u.dtype)
        for j in range(k):
            weight = weight * (w[:, j] if bits[j] else 1 - w[:, j])
        values = grid[(slice(None), *idx[::-1])].T  # storage order is reversed axis order
        out = out + weight[:, None].to(grid.dtype) * values
    return out


def param_group(
    name: str, params: list[nn.Parameter], lr: float, lr_multiplier: float = 1.0, weight_decay: float | None = None
) -> dict:
    """One torch-optimizer group; ``weight_decay=None`` inherits the optimizer's setting."""
    group: dict = {"params": params, "lr": lr * lr_multiplier, "name": name}
    if weight_decay is not None:
        group["weight_decay"] = weight_decay
    return group
