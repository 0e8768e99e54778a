"""Unbounded-scene contraction (mip-NeRF 360, Barron et al. 2022, eq. 10).

``contract(x) = x`` for ``‖x‖ ≤ 1`` and ``(2 − 1/‖x‖)·x/‖x‖`` outside, so all of space maps into the
ball (or, with the ∞-norm as in nerfstudio's ``SceneContraction(order=inf)``, the cube) of radius 2.
Points are in the normalized scene frame where the region of interest is the unit ball/cube.
Spacing for samples along rays in contracted scenes: linear up to distance 1, then uniform in
disparity (nerfstudio's ``UniformLinDispPiecewiseSampler``).
"""

from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

Norm = Literal["l2", "linf"]


def _norm(x: Tensor, order: Norm) -> Tensor:
    return x.norm(dim=-1, keepdim=True) if order == "l2" else x.abs().amax(dim=-1, keepdim=True)


def contract(x: Float[Tensor, "n 3"], order: Norm = "linf") -> Float[Tensor, "n 3"]:
    """Map ``R³`` into the radius-2 ball/cube; the identity inside the unit ball/cube."""
    mag = _norm(x, order).clamp(min=1e-12)
    return torch.where(mag <= 1.0, x, (2.0 - 1.0 / mag) * (x / mag))


def uncontract(y: Float[Tensor, "n 3"], order: Norm = "linf") -> Float[Tensor, "n 3"]:
    """Inverse of :func:`contract` for points with norm < 2."""
    mag = _norm(y, order).clamp(min=1e-12)
    outer = 1.0 / (2.0 - mag).clamp(min=1e-12)  # ‖x‖ for ‖y‖ > 1
    return torch.where(mag <= 1.0, y, y / mag * outer)


def lindisp_steps(
    near: Float[Tensor, " n"], n_steps: int, far: float = 1e4, stratified: bool = False, generator: torch.Generator | None = None
) -> Float[Tensor, "n s1"]:
    """Interval edges ``(n, n_steps + 1)`` along rays: half the steps linear in ``[near, near + 1]``,
    half uniform in disparity from there to ``far``."""
    n_lin = n_steps // 2
    n_disp = n_steps - n_lin
    s = torch.linspace(0.0, 1.0, n_steps + 1, dtype=near.dtype, device=near.device)[None].repeat(near.shape[0], 1)
    if stratified:
        jitter = (torch.rand(near.shape[0], n_steps - 1, generator=generator).to(near) - 0.5) / n_steps
        s[:, 1:-1] += jitter
    split = n_lin / n_steps
    t_lin = near[:, None] + s / max(split, 1e-9)
    start = near[:, None] + 1.0
    sd = ((s - split) / max(1.0 - split, 1e-9)).clamp(0, 1)
    t_disp = 1.0 / (1.0 / start * (1.0 - sd) + 1.0 / far * sd)
    return torch.where(s <= split, t_lin, t_disp)
