"""instant-ngp's occupancy grid (Müller et al. 2022; nerfacc's ``OccGridEstimator`` update rule).

A ``resolution³`` grid over the scene box holds a running estimate ``occ`` of each cell's opacity per
step (``σ·step_size``) and a bitfield ``binary = occ > min(mean(occ), threshold)``. Every update
evaluates ``sigma_fn`` at one jittered point in a set of cells (all cells during warm-up; afterwards
``fraction/2`` of the cells uniformly plus as many drawn from the occupied ones: nerfacc's quarter +
quarter for ``fraction = 0.5``) and sets ``occ ← max(decay·occ, σ·step_size)`` there. Cells never
evaluated (``occ < 0``) count as occupied, so a cheap partial update never drops unexplored space.
All state is in fixed-shape buffers (checkpointable); randomness comes from a generator seeded by
``(seed, step)``, so a resumed run updates identically.
"""

from collections.abc import Callable
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn


class OccupancyGrid(nn.Module):
    sync: Any = None
    """Set by data-parallel training: an object with ``rank``, ``world_size`` and ``sum_(tensor)`` (in-place sum over
    the processes). Each process then evaluates its share of the update's cells and the densities are summed, so
    every process's grid is identical (and the update costs each process ``1/world_size`` of the work)."""

    def __init__(self, aabb: Float[Tensor, "2 3"], resolution: int = 128) -> None:
        super().__init__()
        if resolution < 1:
            raise ValueError(f"occupancy grid resolution must be ≥ 1, got {resolution}")
        self.resolution = resolution
        self.register_buffer("aabb", aabb.detach().float().clone())
        self.register_buffer("occs", torch.full((resolution**3,), -1.0))  # −1: never evaluated
        # Everything is occupied until the first update, so the first step samples the whole box.
        self.register_buffer("binary", torch.ones(resolution, resolution, resolution, dtype=torch.bool))

    @property
    def n_cells(self) -> int:
        return self.resolution**3

    def cell_of(self, points: Float[Tensor, "n 3"]) -> tuple[Tensor, Tensor]:
        """Flat cell index ``(n,)`` of each point and whether the point lies inside the box."""
        lo, hi = self.aabb[0], self.aabb[1]
        u = (points - lo) / (hi - lo)
        inside = ((u >= 0) & (u < 1)).all(dim=-1)
        ijk = (u * self.resolution).floor().long().clamp(0, self.resolution - 1)
        r = self.resolution
        return (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2], inside

    def occupied(self, points: Float[Tensor, "n 3"]) -> Bool[Tensor, " n"]:
        """True where the point's cell is occupied (False outside the box)."""
        idx, inside = self.cell_of(points)
        return self.binary.reshape(-1).index_select(0, idx) & inside

    @property
    def cell_size(self) -> float:
        """Smallest edge of a cell (the distance within which :meth:`occupied_near` is exact)."""
        return float(((self.aabb[1] - self.aabb[0]) / self.resolution).min())

    def occupied_near(self, points: Float[Tensor, "n 3"]) -> Bool[Tensor, " n"]:
        """True where the point's cell or one of its 26 neighbours is occupied (points outside the box: their
        nearest cell's neighbourhood). Never False where a point within ``cell_size`` of it is ``occupied``: a
        coarse test that lets a marcher skip a whole run of steps at once."""
        key = (self.binary._version, self.binary.data_ptr())
        if getattr(self, "_near_key", None) != key:  # the dilated grid follows every in-place change of binary
            dilated = torch.nn.functional.max_pool3d(self.binary[None, None].float(), 3, stride=1, padding=1)
            self._near, self._near_key = dilated[0, 0].bool().reshape(-1), key
        return self._near.index_select(0, self.cell_of(points)[0])

    def cell_points(self, indices: Tensor, jitter: Tensor | None = None) -> Tensor:
        """World positions in the given cells: their centres, or ``jitter ∈ [0,1)^3`` within them."""
        r = self.resolution
        ijk = torch.stack([indices // (r * r), (indices // r) % r, indices % r], dim=-1).to(self.aabb.dtype)
        frac = 0.5 if jitter is None else jitter
        lo, hi = self.aabb[0], self.aabb[1]
        return lo + (ijk + frac) / r * (hi - lo)

    @torch.no_grad()
    def update(
        self,
        step: int,
        sigma_fn: Callable[[Tensor], Tensor],
        step_size: float,
        threshold: float = 0.01,
        decay: float = 0.95,
        warmup_steps: int = 256,
        seed: int = 0,
        chunk: int = 65536,
        fraction: float = 0.5,
    ) -> None:
        """One instant-ngp update from ``sigma_fn(points (n, 3)) → σ (n,)``."""
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        n = self.n_cells
        device = self.occs.device
        if step < warmup_steps or fraction >= 1.0:
            indices = torch.arange(n)
        else:
            quarter = max(1, int(n * fraction / 2))
            uniform = torch.randint(0, n, (quarter,), generator=gen)
            occupied = torch.nonzero(self.binary.reshape(-1).cpu()).squeeze(-1)
            if occupied.numel():
                pick = occupied[torch.randint(0, occupied.numel(), (quarter,), generator=gen)]
                indices = torch.cat([uniform, pick])
            else:
                indices = uniform
        jitter = torch.rand(indices.shape[0], 3, generator=gen)
        indices, jitter = indices.to(device), jitter.to(device)
        points = self.cell_points(indices, jitter)
        sig = self._densities(sigma_fn, points, chunk)
        occ = sig * step_size
        updated = self.occs.clone()
        # duplicates (a cell drawn twice) resolve to their maximum, independent of order
        updated[indices] = (self.occs[indices] * decay).clamp(min=0.0)
        updated.scatter_reduce_(0, indices, occ, reduce="amax")
        self.occs.copy_(updated)
        seen = self.occs >= 0
        thre = min(float(self.occs[seen].mean()), threshold) if bool(seen.any()) else threshold
        self.binary.copy_(((self.occs > thre) | ~seen).reshape(self.binary.shape))

    def _densities(self, sigma_fn: Callable[[Tensor], Tensor], points: Tensor, chunk: int) -> Tensor:
        """``sigma_fn`` at every point ``(n,)``, in chunks; with ``sync``, this process's share summed over the processes."""

        def evaluate(p: Tensor) -> Tensor:
            parts = [sigma_fn(p[i : i + chunk]).float().reshape(-1) for i in range(0, p.shape[0], chunk)]
            return torch.cat(parts) if parts else p.new_zeros(0)

        sync = self.sync
        if sync is None or sync.world_size == 1:
            return evaluate(points)
        n = points.shape[0]
        lo, hi = n * sync.rank // sync.world_size, n * (sync.rank + 1) // sync.world_size
        sig = torch.zeros(n, device=points.device)
        sig[lo:hi] = evaluate(points[lo:hi])
        return sync.sum_(sig)  # x + 0 is exact: every process gets the same densities

    def occupancy_fraction(self) -> float:
        return float(self.binary.float().mean())
