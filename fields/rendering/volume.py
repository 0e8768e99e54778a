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

from fieldforge.fields.rendering.sampling import RaySamples, pack_steps
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


FIRST_ROUND_SAMPLES = 8
"""Samples per ray in the first round of :func:`volume_render_rounds`, doubled every round (most rays that
stop early stop at the first surface they meet)."""


@torch.no_grad()
def volume_render_rounds(
    samples: RaySamples,
    rgb_sigma_fn: RgbSigmaFn,
    background: Float[Tensor, "*b 3"] | None = None,
    early_stop_eps: float = 1e-4,
    alpha_thre: float = 0.0,
    max_points: int = 1 << 16,
) -> RenderOutputs:
    """Inference rendering of packed samples in rounds (instant-ngp, KiloNeRF): each round evaluates the next
    samples of every ray still marching (:data:`FIRST_ROUND_SAMPLES` per ray, doubling every round; at most
    ``max_points`` in all), once each, colour and density together; a ray stops once its transmittance is
    below ``early_stop_eps``. Samples with ``alpha < alpha_thre`` count as empty space.

    With ``alpha_thre = 0`` the result is what :func:`volume_render` gives on the samples ``march_rays``'
    pruning keeps (those before the transmittance falls below ``early_stop_eps``), without evaluating every
    sample's density first: a ray evaluates at most one round's samples past its stop. ``weights`` covers
    every input sample (zero for samples never reached). No gradients.
    """
    n_rays, m = samples.n_rays, samples.n_samples
    device = samples.t_starts.device
    counts = samples.counts()
    starts = torch.cumsum(counts, 0) - counts
    done = torch.zeros(n_rays, dtype=torch.long, device=device)
    optical_depth = torch.zeros(n_rays, dtype=torch.float64, device=device)
    rgb = torch.zeros(n_rays, 3, device=device)
    opacity = torch.zeros(n_rays, device=device)
    depth_sum = torch.zeros(n_rays, device=device)
    weights = torch.zeros(m, device=device)
    alive = torch.nonzero(counts > 0).squeeze(-1)
    per_ray = FIRST_ROUND_SAMPLES
    while alive.numel():
        done_alive = done.index_select(0, alive)
        take = torch.clamp(counts.index_select(0, alive) - done_alive, max=max(1, min(per_ray, max_points // alive.numel())))
        per_ray *= 2
        owner, local = pack_steps(take)
        rays = alive.index_select(0, owner)
        idx = (starts + done).index_select(0, rays) + local
        t0, t1 = samples.t_starts.index_select(0, idx), samples.t_ends.index_select(0, idx)
        rgbs, sigmas = rgb_sigma_fn(t0, t1, rays)
        optical = sigmas.float() * (t1 - t0)
        alphas = 1.0 - torch.exp(-optical)
        if alpha_thre > 0:
            culled = alphas < alpha_thre
            optical = torch.where(culled, torch.zeros_like(optical), optical)
            alphas = torch.where(culled, torch.zeros_like(alphas), alphas)
        # transmittance before each sample: the ray's optical depth so far + the exclusive sum within this round
        cs = torch.cumsum(optical.double(), 0)
        round_first = (torch.cumsum(take, 0) - take).index_select(0, owner)
        base = torch.where(round_first > 0, cs.index_select(0, (round_first - 1).clamp(min=0)), torch.zeros_like(cs))
        trans = torch.exp(-(cs - optical.double() - base + optical_depth.index_select(0, rays)).clamp(min=0.0)).float()
        w = trans * alphas
        if early_stop_eps > 0:
            w = torch.where(trans >= early_stop_eps, w, torch.zeros_like(w))
        weights.index_copy_(0, idx, w)
        rgb.index_add_(0, rays, w[:, None] * rgbs.float())
        opacity.index_add_(0, rays, w)
        depth_sum.index_add_(0, rays, w * 0.5 * (t0 + t1))
        optical_depth.index_add_(0, rays, optical.double())
        done.index_add_(0, alive, take)
        still = done_alive + take < counts.index_select(0, alive)
        if early_stop_eps > 0:
            still &= torch.exp(-optical_depth.index_select(0, alive)) >= early_stop_eps
        alive = alive[still]
    depth = torch.where(opacity > 1e-6, depth_sum / opacity.clamp(min=1e-6), torch.zeros_like(depth_sum))
    if background is not None:
        rgb = rgb + (1.0 - opacity)[:, None] * background.to(rgb)
    return RenderOutputs(rgb, opacity, depth, weights, m)


__all__ = ["FIRST_ROUND_SAMPLES", "RenderOutputs", "RgbSigmaFn", "accumulate_along_rays", "render_weights", "volume_render", "volume_render_rounds"]
