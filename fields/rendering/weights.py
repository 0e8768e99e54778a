"""Compositing weights of packed samples, shared by the sampler (pruning) and the renderer (Max 1995).

For sample k of a ray with density σ_k over an interval of length δ_k:
``α_k = 1 − exp(−σ_k δ_k)``, ``T_k = exp(−Σ_{j<k} σ_j δ_j)``, ``w_k = T_k α_k``.
The per-ray exclusive sums run in float64 over the packed array, so millions of samples keep full
float32 accuracy in each ray's transmittance. This module imports nothing else of the package.
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor


def ray_offsets(ray_indices: Int[Tensor, " m"], n_rays: int) -> Int[Tensor, " n"]:
    """Index of each ray's first sample in the packed arrays (``counts.cumsum − counts``)."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    return torch.cumsum(counts, 0) - counts


def render_weights(
    t_starts: Float[Tensor, " m"],
    t_ends: Float[Tensor, " m"],
    sigmas: Float[Tensor, " m"],
    ray_indices: Int[Tensor, " m"],
    n_rays: int,
) -> tuple[Float[Tensor, " m"], Float[Tensor, " m"], Float[Tensor, " m"]]:
    """``(weights, transmittance, alphas)`` per packed sample; ``ray_indices`` must be sorted."""
    optical = sigmas * (t_ends - t_starts)
    alphas = 1.0 - torch.exp(-optical)
    if optical.numel() == 0:
        return optical, optical, alphas
    cs = torch.cumsum(optical.double(), dim=0)
    first = ray_offsets(ray_indices, n_rays).index_select(0, ray_indices)
    base = torch.where(first > 0, cs.index_select(0, (first - 1).clamp(min=0)), torch.zeros_like(cs))
    exclusive = (cs - optical.double() - base).clamp(min=0.0)
    trans = torch.exp(-exclusive).to(sigmas.dtype)
    return trans * alphas, trans, alphas


__all__ = ["ray_offsets", "render_weights"]
