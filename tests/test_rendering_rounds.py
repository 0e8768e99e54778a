"""Fast inference rendering gives the image of the reference path: runs of steps skipped against the dilated
occupancy grid keep exactly the per-step grid's samples, and rendering in rounds (one evaluation per sample,
rays stopped as they saturate) equals pruning by a density pre-pass, then rendering what is left."""

import pytest
import torch

from fieldforge.fields.radiance_model import NerfModel, RenderConfig
from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid
from fieldforge.fields.rendering.sampling import march_rays
from fieldforge.fields.rendering.volume import volume_render, volume_render_rounds
from tests.test_nerf_field import _small_radiance
from tests.test_rendering_occupancy import AABB, _camera, _trained_grid, blob_rgb, blob_sigma


def _random_grid(resolution=16, fraction=0.03, seed=0, aabb=AABB) -> OccupancyGrid:
    g = torch.Generator().manual_seed(seed)
    grid = OccupancyGrid(aabb, resolution)
    grid.binary.copy_(torch.rand(grid.binary.shape, generator=g) < fraction)
    return grid


def _random_rays(n=600, seed=1):
    """Origins inside and outside the box, directions of random (non-unit) length, some axis-aligned."""
    g = torch.Generator().manual_seed(seed)
    o = torch.rand(n, 3, generator=g) * 5 - 2.5
    o[: n // 20] = torch.rand(n // 20, 3, generator=g) * 1.4 - 0.7  # inside the box
    target = torch.rand(n, 3, generator=g) * 1.4 - 0.7
    d = torch.nn.functional.normalize(target - o, dim=-1) * (0.3 + 2 * torch.rand(n, 1, generator=g))
    d[n // 20 : n // 10, :2] = 0.0  # along z: a zero component
    return o, d


@pytest.mark.parametrize("stratified", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skipping_runs_of_steps_keeps_exactly_the_per_step_samples(seed, stratified):
    aabb = torch.tensor([[-1.0, -0.5, -0.75], [1.0, 0.5, 0.75]])  # non-cubic: cells of unequal edges
    grid = _random_grid(seed=seed, aabb=aabb)
    o, d = _random_rays(seed=seed)
    step = float((aabb[1] - aabb[0]).norm()) / 512
    kw = {"occupied_fn": grid.occupied, "stratified": stratified, "max_steps": 4096}
    ref = march_rays(o, d, aabb, step, generator=torch.Generator().manual_seed(5), **kw)
    fast = march_rays(o, d, aabb, step, generator=torch.Generator().manual_seed(5), occupied_near_fn=grid.occupied_near,
                      near_distance=grid.cell_size, eval_chunk=997, **kw)
    assert ref.n_samples > 1000
    assert torch.equal(fast.ray_indices, ref.ray_indices)
    assert torch.equal(fast.t_starts, ref.t_starts) and torch.equal(fast.t_ends, ref.t_ends)


def test_occupied_near_never_misses_an_occupied_point_within_a_cell():
    grid = _random_grid(resolution=8, fraction=0.01, seed=3)
    g = torch.Generator().manual_seed(4)
    p = torch.rand(200_000, 3, generator=g) * 2.4 - 1.2  # also just outside the box
    offset = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=g), dim=-1) * torch.rand(200_000, 1, generator=g) * grid.cell_size
    q = p + offset
    hit = grid.occupied(q)
    assert int(hit.sum()) > 1000
    assert bool(grid.occupied_near(p)[hit].all())
    assert float(grid.occupied_near(p).float().mean()) < 0.5  # and it is not everywhere
    # it follows in-place changes of the grid
    grid.binary.zero_()
    assert not bool(grid.occupied_near(p).any())


@pytest.mark.parametrize("eps,max_points", [(1e-4, 1 << 16), (1e-2, 1 << 16), (1e-2, 300), (0.0, 1000)])
def test_rounds_equal_prune_then_render(eps, max_points):
    o, d = _camera()
    step = 2 * 3**0.5 / 256
    grid = _trained_grid()

    def sigma_fn(t0, t1, ri):
        return blob_sigma(o[ri] + (0.5 * (t0 + t1))[:, None] * d[ri])

    calls = []

    def rgb_sigma_fn(t0, t1, ri):
        calls.append(t0.shape[0])
        x = o[ri] + (0.5 * (t0 + t1))[:, None] * d[ri]
        return blob_rgb(x, d[ri]), blob_sigma(x)

    candidates = march_rays(o, d, AABB, step, occupied_fn=grid.occupied)
    pruned = march_rays(o, d, AABB, step, occupied_fn=grid.occupied, sigma_fn=sigma_fn if eps else None, early_stop_eps=eps)
    ref = volume_render(pruned, rgb_sigma_fn, torch.ones(3))
    calls.clear()
    out = volume_render_rounds(candidates, rgb_sigma_fn, torch.ones(3), early_stop_eps=eps, max_points=max_points)
    assert float(ref.opacity.max()) > 0.99
    torch.testing.assert_close(out.rgb, ref.rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.opacity, ref.opacity, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.depth, ref.depth, atol=1e-5, rtol=0)
    assert max(calls) <= max_points
    assert sum(calls) <= candidates.n_samples  # each sample at most once (the pre-pass path: candidates + kept)
    if eps:  # rays stop: samples behind the surface are never evaluated
        assert pruned.n_samples <= sum(calls) < candidates.n_samples
    else:
        assert sum(calls) == candidates.n_samples


def test_model_renders_the_same_image_with_and_without_rounds():
    torch.manual_seed(0)
    render = RenderConfig(steps_per_ray=256, grid_resolution=16, render_samples=4096, early_stop_eps=1e-2)
    model = NerfModel(_small_radiance(), torch.tensor([[-1.0] * 3, [1.0] * 3]), render).eval()
    model.grid.binary.copy_(_random_grid(16, 0.3, seed=7).binary)
    o, d = _camera()
    with torch.no_grad():
        fast, pos, ri = model.render_rays(o, d, torch.ones(3))
    with torch.enable_grad():  # with gradients: the density pre-pass, then the renderer
        ref, _, _ = model.render_rays(o, d, torch.ones(3))
    assert float(ref.opacity.detach().max()) > 0.5
    torch.testing.assert_close(fast.rgb, ref.rgb.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(fast.depth, ref.depth.detach(), atol=1e-5, rtol=0)
    assert pos.shape[0] == ri.shape[0] == fast.weights.shape[0]
