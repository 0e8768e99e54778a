"""Samples along rays, packed nerfacc-style: flat ``(m,)`` arrays plus sorted ``ray_indices``.

Packing keeps a variable number of samples per ray without padding, which is what makes empty-space
skipping pay off on a CPU. All functions are stateless and take callables (``occupied_fn``,
``sigma_fn``), never fields.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from fieldforge.fields.rendering.weights import ray_offsets, render_weights

SigmaFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``sigma_fn(t_starts, t_ends, ray_indices) → σ (m,)``."""
OccupiedFn = Callable[[Tensor], Tensor]
"""``occupied_fn(points (m, 3)) → bool (m,)``."""


@dataclass
class RaySamples:
    """Packed samples: sample ``k`` covers ``[t_starts[k], t_ends[k]]`` on ray ``ray_indices[k]`` (sorted)."""

    t_starts: Tensor
    t_ends: Tensor
    ray_indices: Tensor
    n_rays: int

    @property
    def n_samples(self) -> int:
        return int(self.t_starts.shape[0])

    def midpoints(self) -> Tensor:
        return 0.5 * (self.t_starts + self.t_ends)

    def positions(self, origins: Tensor, directions: Tensor) -> Tensor:
        """World positions of the sample midpoints ``(m, 3)``."""
        return points_along(origins, directions, self.ray_indices, self.midpoints())

    def select(self, keep: Tensor) -> "RaySamples":
        """Subset by a boolean mask or ascending indices (keeps the ordering, so ray_indices stay sorted)."""
        idx = keep.nonzero().squeeze(-1) if keep.dtype == torch.bool else keep
        return RaySamples(self.t_starts.index_select(0, idx), self.t_ends.index_select(0, idx), self.ray_indices.index_select(0, idx), self.n_rays)

    def counts(self) -> Tensor:
        """Samples per ray ``(n_rays,)``."""
        return torch.bincount(self.ray_indices, minlength=self.n_rays)

    def leading(self, budget: int) -> "RaySamples":
        """The samples of the leading rays whose samples fit ``budget`` (at least one ray); ``n_rays`` is
        their count. Unchanged when everything fits."""
        if self.n_samples <= budget:
            return self
        cut = max(1, int((torch.cumsum(self.counts(), 0) <= budget).sum()))
        kept = self.select(self.ray_indices < cut)
        return RaySamples(kept.t_starts, kept.t_ends, kept.ray_indices, cut)


def points_along(
    origins: Float[Tensor, "n 3"], directions: Float[Tensor, "n 3"], ray_indices: Int[Tensor, " m"], t: Float[Tensor, " m"]
) -> Float[Tensor, "m 3"]:
    """``origins[ray_indices] + t · directions[ray_indices]``: the point at distance ``t`` along each sample's ray."""
    return torch.addcmul(origins.index_select(0, ray_indices), t[:, None], directions.index_select(0, ray_indices))


def ray_aabb_intersect(
    origins: Float[Tensor, "n 3"], directions: Float[Tensor, "n 3"], aabb: Float[Tensor, "2 3"]
) -> tuple[Float[Tensor, " n"], Float[Tensor, " n"]]:
    """Slab test: entry and exit distances ``(t_near, t_far)``; a miss has ``t_far < t_near``.

    Origins inside the box get ``t_near < 0``; callers clamp with their near plane.
    """
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inv = 1.0 / safe
    t0 = (aabb[0] - origins) * inv
    t1 = (aabb[1] - origins) * inv
    t_near = torch.minimum(t0, t1).amax(dim=-1)
    t_far = torch.maximum(t0, t1).amin(dim=-1)
    return t_near, t_far


def pack_steps(n_steps: Int[Tensor, " n"]) -> tuple[Int[Tensor, " m"], Int[Tensor, " m"]]:
    """``(ray_indices, k)`` for ``n_steps[r]`` consecutive steps per ray (k = 0..n_steps[r]-1), ray-major."""
    n_rays = n_steps.shape[0]
    ray_indices = torch.repeat_interleave(torch.arange(n_rays, device=n_steps.device), n_steps)
    starts = torch.cumsum(n_steps, 0) - n_steps
    k = torch.arange(ray_indices.shape[0], device=n_steps.device) - starts.index_select(0, ray_indices)
    return ray_indices, k


def uniform_samples(
    origins: Float[Tensor, "n 3"],
    directions: Float[Tensor, "n 3"],
    aabb: Float[Tensor, "2 3"],
    n_samples: int,
    near_plane: float = 0.0,
    stratified: bool = False,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """``n_samples`` equal intervals between each ray's box entry and exit (rays that miss get none).

    ``stratified`` jitters each interval's split point uniformly (training); otherwise intervals are
    equal. This is the dense reference sampler.
    """
    t_near, t_far = ray_aabb_intersect(origins, directions, aabb)
    t_near = t_near.clamp(min=near_plane)
    hit = t_far > t_near
    n_steps = torch.where(hit, n_samples, 0)
    ray_indices, k = pack_steps(n_steps)
    lo, hi = t_near.index_select(0, ray_indices), t_far.index_select(0, ray_indices)
    edges = torch.linspace(0.0, 1.0, n_samples + 1, device=origins.device, dtype=origins.dtype)
    edges = edges[None].repeat(origins.shape[0], 1)
    if stratified:
        # jitter interior edges by up to half a bin: intervals stay contiguous, ordered and inside the box
        jitter = (torch.rand(origins.shape[0], n_samples - 1, generator=generator).to(origins) - 0.5) / n_samples
        edges[:, 1:-1] = edges[:, 1:-1] + jitter
    s0, s1 = edges[ray_indices, k], edges[ray_indices, k + 1]
    return RaySamples(lo + (hi - lo) * s0, lo + (hi - lo) * s1, ray_indices, origins.shape[0])


def march_rays(
    origins: Float[Tensor, "n 3"],
    directions: Float[Tensor, "n 3"],
    aabb: Float[Tensor, "2 3"],
    step_size: float,
    occupied_fn: OccupiedFn | None = None,
    sigma_fn: SigmaFn | None = None,
    near_plane: float = 0.0,
    far_plane: float = 1e10,
    stratified: bool = False,
    generator: torch.Generator | None = None,
    alpha_thre: float = 0.0,
    early_stop_eps: float = 1e-4,
    max_steps: int = 2048,
    eval_chunk: int | None = None,
    occupied_near_fn: OccupiedFn | None = None,
    near_distance: float = 0.0,
) -> RaySamples:
    """Fixed-step ray marching inside ``aabb`` with empty-space skipping and early ray termination.

    1. Steps of ``step_size`` from the box entry (or ``near_plane``) to the exit (or ``far_plane``); a
       stratified march offsets each ray's first step by a uniform fraction of a step.
    2. ``occupied_fn`` (an occupancy grid) drops samples whose midpoint lies in empty space. With
       ``occupied_near_fn`` (True wherever a point within ``near_distance`` may be occupied, e.g.
       ``OccupancyGrid.occupied_near``), runs of steps spanning at most ``near_distance`` either side of
       their centre are tested first and skipped whole: the same samples, ~``2·near_distance / step_size``
       times fewer tests in empty space.
    3. ``sigma_fn`` (evaluated without gradients) drops samples with ``alpha < alpha_thre`` and all
       samples after the transmittance falls below ``early_stop_eps`` (in chunks of ``eval_chunk`` samples).
    """
    t_near, t_far = ray_aabb_intersect(origins, directions, aabb)
    t_near = t_near.clamp(min=near_plane)
    t_far = t_far.clamp(max=far_plane)
    span = (t_far - t_near).clamp(min=0.0)
    n_steps = torch.ceil(span / step_size).long().clamp(0, max_steps)
    offset = torch.zeros_like(t_near)
    if stratified:
        offset = torch.rand(origins.shape[0], generator=generator).to(origins) * step_size
    run = _steps_per_run(directions, step_size, near_distance) if occupied_near_fn is not None else 1
    if run > 1:
        ray_indices, k = _steps_near_occupied(origins, directions, t_near, t_far, offset, n_steps, step_size, run, occupied_near_fn, eval_chunk)
    else:
        ray_indices, k = pack_steps(n_steps)
    t_starts = (t_near + offset).index_select(0, ray_indices) + k.to(origins.dtype) * step_size
    t_ends = t_starts + step_size
    far = t_far.index_select(0, ray_indices)
    samples = RaySamples(t_starts, torch.minimum(t_ends, far), ray_indices, origins.shape[0]).select(t_starts < far)
    return filter_samples(samples, origins, directions, occupied_fn, sigma_fn, alpha_thre, early_stop_eps, eval_chunk)


def _steps_per_run(directions: Tensor, step_size: float, near_distance: float) -> int:
    """Steps per coarse run: a run's samples lie within ``run·step/2·|d|`` of its centre, kept ≤ 0.9·near_distance
    (the margin absorbs rounding at cell edges)."""
    if directions.shape[0] == 0 or near_distance <= 0:
        return 1
    speed = float(directions.norm(dim=-1).max())
    return max(1, int(2 * 0.9 * near_distance / (step_size * max(speed, 1e-12))))


def _steps_near_occupied(
    origins: Tensor, directions: Tensor, t_near: Tensor, t_far: Tensor, offset: Tensor, n_steps: Tensor,
    step_size: float, run: int, occupied_near_fn: OccupiedFn, eval_chunk: int | None,
) -> tuple[Tensor, Tensor]:
    """``(ray_indices, k)`` of the steps in runs of ``run`` steps whose centre passes ``occupied_near_fn``
    (ordered by ray, then step: as ``pack_steps`` minus the skipped runs)."""
    n_runs = (n_steps + run - 1) // run
    run_rays, j = pack_steps(n_runs)
    t0 = (t_near + offset).index_select(0, run_rays) + (j * run).to(origins.dtype) * step_size
    t1 = torch.minimum(t0 + run * step_size, t_far.index_select(0, run_rays))
    centres = 0.5 * (t0 + t1)
    n = run_rays.shape[0]
    step = n if eval_chunk is None or eval_chunk <= 0 else 16 * eval_chunk  # a test costs a few bytes
    keep = torch.cat([
        occupied_near_fn(points_along(origins, directions, run_rays[i : i + step], centres[i : i + step]))
        for i in range(0, n, step)
    ]) if n else torch.zeros(0, dtype=torch.bool, device=origins.device)
    kept = keep.nonzero().squeeze(-1)
    run_rays, j = run_rays.index_select(0, kept), j.index_select(0, kept)
    first = j * run
    counts = torch.minimum(torch.full_like(first, run), n_steps.index_select(0, run_rays) - first)
    owner, local = pack_steps(counts)
    return run_rays.index_select(0, owner), first.index_select(0, owner) + local


def edge_samples(edges: Float[Tensor, "n s1"], valid: Bool[Tensor, " n"] | None = None) -> RaySamples:
    """Pack per-ray interval edges ``(n, s + 1)`` (e.g. from a non-uniform spacing) into samples."""
    n_rays, s1 = edges.shape
    if valid is None:
        valid = torch.ones(n_rays, dtype=torch.bool, device=edges.device)
    rays = torch.nonzero(valid).squeeze(-1)
    ray_indices = rays.repeat_interleave(s1 - 1)
    t0 = edges[rays, :-1].reshape(-1)
    t1 = edges[rays, 1:].reshape(-1)
    return RaySamples(t0, t1, ray_indices, n_rays)


def filter_samples(
    samples: RaySamples,
    origins: Float[Tensor, "n 3"],
    directions: Float[Tensor, "n 3"],
    occupied_fn: OccupiedFn | None = None,
    sigma_fn: SigmaFn | None = None,
    alpha_thre: float = 0.0,
    early_stop_eps: float = 1e-4,
    eval_chunk: int | None = None,
) -> RaySamples:
    """Empty-space skipping (``occupied_fn`` at midpoints) then early termination / alpha culling; the
    callables see at most ``eval_chunk`` samples at a time (None: all at once)."""
    n = samples.n_samples
    step = n if eval_chunk is None or eval_chunk <= 0 else eval_chunk
    if occupied_fn is not None and n:
        mids, ri = samples.midpoints(), samples.ray_indices
        keep = torch.cat(
            [occupied_fn(points_along(origins, directions, ri[i : i + step], mids[i : i + step])) for i in range(0, n, step)]
        )
        samples = samples.select(keep)
    n = samples.n_samples
    if sigma_fn is not None and n and (alpha_thre > 0 or early_stop_eps > 0):
        with torch.no_grad():
            parts = [
                sigma_fn(samples.t_starts[i : i + step], samples.t_ends[i : i + step], samples.ray_indices[i : i + step]).float()
                for i in range(0, n, step)
            ]
            sigmas = torch.cat(parts)
        samples = samples.select(prune_mask(samples, sigmas, alpha_thre, early_stop_eps))
    return samples


def prune_mask(samples: RaySamples, sigmas: Float[Tensor, " m"], alpha_thre: float, early_stop_eps: float) -> Bool[Tensor, " m"]:
    """Samples to keep: ``alpha ≥ alpha_thre`` and transmittance before the sample ``≥ early_stop_eps``."""
    _, trans, alphas = render_weights(samples.t_starts, samples.t_ends, sigmas, samples.ray_indices, samples.n_rays)
    keep = trans >= early_stop_eps
    if alpha_thre > 0:
        keep &= alphas >= alpha_thre
    return keep


__all__ = [
    "OccupiedFn",
    "RaySamples",
    "SigmaFn",
    "edge_samples",
    "filter_samples",
    "march_rays",
    "pack_steps",
    "prune_mask",
    "ray_aabb_intersect",
    "ray_offsets",
    "uniform_samples",
]
