"""Volume rendering of packed samples (Max 1995; NeRF's quadrature).

For sample k of a ray with density σ_k over an interval of length δ_k:
``α_k = 1 − exp(−σ_k δ_k)``, ``T_k = exp(−Σ_{j<k} σ_j δ_j)``, ``w_k = T_k α_k`` (:func:`render_weights`, in
``fields.rendering.weights``, shared with the sampler's pruning).
Colour ``C = Σ w_k c_k + (1 − Σ w_k)·background``, opacity ``A = Σ w_k``, expected depth
``D = Σ w_k t_k / A`` (t_k the interval midpoint; 0 where A = 0).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from fieldforge.fields.rendering.sampling import RaySamples
from fieldforge.fields.rendering.weights import render_weights

RgbSigmaFn = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``rgb_sigma_fn(t_starts, t_ends, ray_indices) → (rgb (m, 3), σ (m,))``."""


def accumulate_along_rays(
    weights: Float[Tensor, " m"], ray_indices: Int[Tensor, " m"], values: Tensor | None, n_rays: int
) -> Tensor:
    """``Σ_k w_k v_k`` per ray: ``(n_rays, c)`` for values ``(m, c)``, ``(n_rays,)`` when values is None."""
    if values is None:
        return torch.zeros(n_rays, dtype=weights.dtype, device=weights.device).index_add_(0, ray_indices, weights)
    src = weights[:, None] * values
    return torch.zeros(n_rays, values.shape[-1], dtype=src.dtype, device=src.device).index_add_(0, ray_indices, src)


@dataclass
class RenderOutputs:
    rgb: Tensor
    """Composited colour ``(n_rays, 3)``."""
    opacity: Tensor
    """Accumulated weight ``(n_rays,)`` in [0, 1]."""
    depth: Tensor
    """Expected distance ``(n_rays,)`` along the unit ray (0 where nothing was hit)."""
    weights: Tensor
    """Per-sample weights ``(m,)`` (for losses and point clouds)."""
    n_samples: int


def volume_render(
    samples: RaySamples,
    rgb_sigma_fn: RgbSigmaFn,
    background: Float[Tensor, "*b 3"] | None = None,
) -> RenderOutputs:
    """Render packed samples with one call of ``rgb_sigma_fn``; ``background`` is ``(3,)`` or ``(n_rays, 3)``.

    Without a background the colour is the pre-multiplied ``Σ w c`` (black background).
    """
    n_rays = samples.n_rays
    if samples.n_samples == 0:
        device = samples.t_starts.device
        rgb = torch.zeros(n_rays, 3, device=device)
        if background is not None:
            rgb = rgb + background.to(rgb).expand(n_rays, 3)
        zeros = torch.zeros(n_rays, device=device)
        return RenderOutputs(rgb, zeros, zeros.clone(), samples.t_starts, 0)
    rgbs, sigmas = rgb_sigma_fn(samples.t_starts, samples.t_ends, samples.ray_indices)
    weights, _, _ = render_weights(samples.t_starts, samples.t_ends, sigmas, samples.ray_indices, n_rays)
    rgb = accumulate_along_rays(weights, samples.ray_indices, rgbs, n_rays)
    opacity = accumulate_along_rays(weights, samples.ray_indices, None, n_rays)
    depth_sum = accumulate_along_rays(weights, samples.ray_indices, samples.midpoints()[:, None], n_rays)[:, 0]
    depth = torch.where(opacity > 1e-6, depth_sum / opacity.clamp(min=1e-6), torch.zeros_like(depth_sum))
    if background is not None:
        rgb = rgb + (1.0 - opacity)[:, None] * background.to(rgb)
    return RenderOutputs(rgb, opacity, depth, weights, samples.n_samples)


__all__ = ["RenderOutputs", "RgbSigmaFn", "accumulate_along_rays", "render_weights", "volume_render"]
