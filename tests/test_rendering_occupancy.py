"""Occupancy-grid sampling returns the dense sampler's image for a known field, with far fewer samples."""

import torch

from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid
from fieldforge.fields.rendering.rays import image_rays
from fieldforge.fields.rendering.sampling import march_rays
from fieldforge.fields.rendering.volume import volume_render

AABB = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
CENTRE = torch.tensor([0.25, -0.1, 0.0])


def blob_sigma(x: torch.Tensor) -> torch.Tensor:
    """A smooth blob of density (peak 60, radius 0.45) off the origin, exactly zero outside it."""
    r2 = ((x - CENTRE) ** 2).sum(-1)
    return 60.0 * (1 - r2 / 0.45**2).clamp(min=0) ** 3


def blob_rgb(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return torch.stack([0.5 + 0.5 * torch.sin(4 * x[:, 0]), 0.5 + 0.4 * d[:, 2], torch.sigmoid(3 * x[:, 1])], -1)


def _camera():
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.0, 0.0, 3.0])
    return image_rays(c2w, torch.tensor([30.0, 30.0, 16.0, 16.0]), 32, 32)


def _render(o, d, samples):
    def rgb_sigma_fn(t0, t1, ri):
        x = o[ri] + (0.5 * (t0 + t1))[:, None] * d[ri]
        return blob_rgb(x, d[ri]), blob_sigma(x)

    return volume_render(samples, rgb_sigma_fn, torch.ones(3))


def _trained_grid(resolution: int = 32) -> OccupancyGrid:
    grid = OccupancyGrid(AABB, resolution)
    for step in range(0, 128, 16):  # warm-up updates: every cell, jittered
        grid.update(step, blob_sigma, step_size=2 * 3**0.5 / 256, threshold=1e-6, warmup_steps=256)
    return grid


def test_occupancy_sampler_matches_dense_sampling():
    o, d = _camera()
    step = 2 * 3**0.5 / 256
    dense = march_rays(o, d, AABB, step)
    grid = _trained_grid()
    assert 0.005 < grid.occupancy_fraction() < 0.2
    skipped = march_rays(o, d, AABB, step, occupied_fn=grid.occupied)
    ref, out = _render(o, d, dense), _render(o, d, skipped)
    assert skipped.n_samples < 0.25 * dense.n_samples
    assert torch.allclose(out.rgb, ref.rgb, atol=2e-3)
    assert torch.allclose(out.opacity, ref.opacity, atol=2e-3)
    assert float(ref.opacity.max()) > 0.9  # the blob is actually seen


def test_early_termination_keeps_the_image():
    o, d = _camera()
    step = 2 * 3**0.5 / 256
    grid = _trained_grid()

    def sigma_fn(t0, t1, ri):
        return blob_sigma(o[ri] + (0.5 * (t0 + t1))[:, None] * d[ri])

    full = march_rays(o, d, AABB, step, occupied_fn=grid.occupied)
    pruned = march_rays(o, d, AABB, step, occupied_fn=grid.occupied, sigma_fn=sigma_fn, early_stop_eps=1e-4, alpha_thre=1e-4)
    assert pruned.n_samples < 0.8 * full.n_samples
    assert torch.allclose(_render(o, d, pruned).rgb, _render(o, d, full).rgb, atol=2e-3)


def test_grid_update_decays_and_thresholds():
    grid = OccupancyGrid(AABB, 8)
    assert grid.occupancy_fraction() == 1.0  # everything is occupied before the first update
    grid.update(0, lambda x: torch.full((x.shape[0],), 100.0), step_size=0.01)
    assert grid.occupancy_fraction() == 1.0 and torch.allclose(grid.occs, torch.ones(512))
    grid.update(16, lambda x: torch.zeros(x.shape[0]), step_size=0.01, decay=0.5)
    assert torch.allclose(grid.occs, torch.full((512,), 0.5))  # warm-up: every cell decays once
    assert grid.occupancy_fraction() == 1.0  # 0.5 > min(mean, 0.01) = 0.01
    for step in range(32, 32 + 16 * 8, 16):
        grid.update(step, lambda x: torch.zeros(x.shape[0]), step_size=0.01, decay=0.5)
    assert grid.occupancy_fraction() == 0.0


def test_grid_update_is_reproducible_by_step():
    a, b = OccupancyGrid(AABB, 16), OccupancyGrid(AABB, 16)
    for g in (a, b):
        g.update(0, blob_sigma, 0.01)
        g.update(300, blob_sigma, 0.01, warmup_steps=256)  # after warm-up: random cells
    assert torch.equal(a.occs, b.occs) and torch.equal(a.binary, b.binary)
    assert torch.equal(a.occupied(torch.tensor([[0.25, -0.1, 0.0], [0.9, 0.9, 0.9], [3.0, 0.0, 0.0]])), torch.tensor([True, False, False]))


def test_partial_updates_never_drop_unexplored_cells():
    grid = OccupancyGrid(AABB, 8)
    empty = lambda x: torch.zeros(x.shape[0])  # noqa: E731
    grid.update(0, empty, step_size=0.01, warmup_steps=0, fraction=0.125)  # visits ≤ 1/8 of the cells
    seen = grid.occs >= 0
    assert 0 < int(seen.sum()) <= 64
    assert torch.equal(grid.binary.reshape(-1), ~seen)  # visited empty cells are dropped, unexplored ones kept
