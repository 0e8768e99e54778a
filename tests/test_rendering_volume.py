"""Volume rendering against closed forms (slab transmittance) and a float64 per-ray loop reference."""

import math

import torch

from fieldforge.fields.rendering.sampling import RaySamples, uniform_samples
from fieldforge.fields.rendering.volume import accumulate_along_rays, render_weights, volume_render


def _slab_rays(n: int, gen: torch.Generator):
    """Rays from above a slab z ∈ [0, thickness] pointing downwards at random oblique angles."""
    theta = torch.rand(n, generator=gen, dtype=torch.float64) * 1.2  # up to ~69° from vertical
    phi = torch.rand(n, generator=gen, dtype=torch.float64) * 2 * math.pi
    d = torch.stack([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi), -torch.cos(theta)], -1)
    o = torch.stack([torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64), torch.full((n,), 5.0, dtype=torch.float64)], -1)
    return o, d, theta


def test_constant_density_slab_transmittance_is_exp_sigma_d():
    gen = torch.Generator().manual_seed(0)
    sigma, thickness = 1.7, 0.6
    o, d, theta = _slab_rays(64, gen)
    aabb = torch.tensor([[-100.0, -100.0, 0.0], [100.0, 100.0, thickness]], dtype=torch.float64)
    samples = uniform_samples(o, d, aabb, n_samples=7, stratified=True, generator=gen)
    colour, bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)

    def rgb_sigma_fn(t0, t1, ri):
        return colour.expand(t0.shape[0], 3), torch.full_like(t0, sigma)

    out = volume_render(samples, rgb_sigma_fn, bg)
    path = thickness / torch.cos(theta)
    trans = torch.exp(-sigma * path)
    assert torch.allclose(1 - out.opacity, trans, atol=1e-12)
    assert torch.allclose(out.rgb, colour * (1 - trans)[:, None] + bg * trans[:, None], atol=1e-12)
    # the expected depth of a homogeneous slab: entry + E[s | s < path] for an exponential with rate σ
    entry = 5.0 / torch.cos(theta) - path
    mean_s = 1 / sigma - path * trans / (1 - trans)
    assert torch.allclose(out.depth, entry + mean_s, rtol=0.02)


def test_weights_match_per_ray_loop_reference_with_gradients():
    gen = torch.Generator().manual_seed(1)
    counts = [0, 3, 17, 1, 40]
    ray_indices = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    m = ray_indices.numel()
    dt = torch.rand(m, generator=gen, dtype=torch.float64) * 0.1 + 0.01
    t_starts = torch.cat([torch.cumsum(dt[ray_indices == r], 0) - dt[ray_indices == r] for r in range(len(counts))])
    t_ends = t_starts + dt
    sig = (torch.rand(m, generator=gen, dtype=torch.float64) * 20).requires_grad_(True)
    w, trans, alphas = render_weights(t_starts, t_ends, sig, ray_indices, len(counts))
    (w * torch.arange(m)).sum().backward()
    grad_packed = sig.grad.clone()

    sig_ref = sig.detach().clone().requires_grad_(True)
    parts = []
    for r in range(len(counts)):
        sel = ray_indices == r
        T = torch.ones((), dtype=torch.float64)
        for s, delta in zip(sig_ref[sel], dt[sel]):
            a = 1 - torch.exp(-s * delta)
            parts.append(T * a)
            T = T * (1 - a)
    w_ref = torch.stack(parts)
    (w_ref * torch.arange(m)).sum().backward()
    assert torch.allclose(w, w_ref, atol=1e-12)
    assert torch.allclose(grad_packed, sig_ref.grad, atol=1e-10)
    assert torch.allclose(accumulate_along_rays(w, ray_indices, None, 5), torch.stack([w_ref[ray_indices == r].sum() for r in range(5)]))


def test_float32_transmittance_stays_accurate_over_many_rays():
    """Packed sums over a million samples must not lose each ray's precision."""
    n_rays, per = 20000, 50
    ray_indices = torch.arange(n_rays).repeat_interleave(per)
    t0 = torch.arange(per, dtype=torch.float32).repeat(n_rays) * 0.02
    sig = torch.full_like(t0, 3.0)
    _, trans, _ = render_weights(t0, t0 + 0.02, sig, ray_indices, n_rays)
    last = trans.reshape(n_rays, per)[:, -1]
    assert torch.allclose(last, torch.full_like(last, math.exp(-3.0 * 0.02 * (per - 1))), rtol=1e-5)


def test_empty_samples_render_the_background():
    s = RaySamples(torch.zeros(0), torch.zeros(0), torch.zeros(0, dtype=torch.long), 4)
    out = volume_render(s, lambda a, b, c: (torch.zeros(0, 3), torch.zeros(0)), torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(out.rgb, torch.tensor([0.1, 0.2, 0.3]).expand(4, 3)) and float(out.opacity.sum()) == 0
