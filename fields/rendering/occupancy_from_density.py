"""Fill an occupancy grid from a density function once (KiloNeRF's extraction from the teacher).

Every cell of the :class:`~fieldforge.fields.rendering.occupancy_grid.OccupancyGrid` is evaluated at
``s×s×s`` regularly spaced sub-samples (KiloNeRF: 3×3×3, at the centres of the ``s³`` sub-cells) and marked
occupied when **any** sample has ``σ > threshold`` (KiloNeRF: τ = 10). The grid's running estimate
``occs`` is set to the cell's largest ``σ · step_size``, so the grid stays valid for the trainer's later
instant-ngp updates. The renderer then skips empty cells as for any grid (``march_rays``' ``occupied_fn``).
"""

from collections.abc import Callable

import torch
from torch import Tensor

from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid

KILONERF_SUBSAMPLES = 3
"""Sub-samples per axis in every cell (KiloNeRF: 3×3×3)."""
KILONERF_THRESHOLD = 10.0
"""A cell is occupied when any sub-sample has σ above this (KiloNeRF's τ)."""


def subsample_offsets(subsamples: int) -> Tensor:
    """Offsets ``(s³, 3)`` in ``[0,1)^3`` of the sub-cell centres within a cell."""
    c = (torch.arange(subsamples, dtype=torch.float32) + 0.5) / subsamples
    g = torch.meshgrid(c, c, c, indexing="ij")
    return torch.stack([a.reshape(-1) for a in g], dim=-1)


@torch.no_grad()
def cell_max_density(
    grid: OccupancyGrid, sigma_fn: Callable[[Tensor], Tensor], subsamples: int = KILONERF_SUBSAMPLES, chunk: int = 1 << 16
) -> Tensor:
    """Largest ``sigma_fn(points (m, 3)) → σ (m,)`` over each cell's sub-samples, ``(resolution³,)`` (flat cell order)."""
    if subsamples < 1:
        raise ValueError(f"subsamples per axis must be ≥ 1, got {subsamples}")
    device = grid.occs.device
    offsets = subsample_offsets(subsamples).to(device)
    k = offsets.shape[0]
    cells_per_chunk = max(1, chunk // k)
    out = torch.empty(grid.n_cells, device=device)
    for start in range(0, grid.n_cells, cells_per_chunk):
        idx = torch.arange(start, min(start + cells_per_chunk, grid.n_cells), device=device)
        pts = grid.cell_points(idx.repeat_interleave(k), offsets.repeat(idx.shape[0], 1))
        out[idx] = sigma_fn(pts).float().reshape(idx.shape[0], k).amax(dim=1)
    return out


@torch.no_grad()
def fill_occupancy_grid(
    grid: OccupancyGrid,
    sigma_fn: Callable[[Tensor], Tensor],
    threshold: float = KILONERF_THRESHOLD,
    subsamples: int = KILONERF_SUBSAMPLES,
    step_size: float = 1.0,
    chunk: int = 1 << 16,
) -> float:
    """Set ``grid`` from ``sigma_fn`` (world points of the grid's box → σ): occupied where any of a cell's
    ``subsamples³`` samples has ``σ > threshold``; returns the occupied fraction."""
    sigma = cell_max_density(grid, sigma_fn, subsamples, chunk)
    grid.occs.copy_(sigma * step_size)
    grid.binary.copy_((sigma > threshold).reshape(grid.binary.shape))
    return grid.occupancy_fraction()


__all__ = ["KILONERF_SUBSAMPLES", "KILONERF_THRESHOLD", "cell_max_density", "fill_occupancy_grid", "subsample_offsets"]
