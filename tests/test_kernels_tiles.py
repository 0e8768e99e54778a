"""KiloNeRF tile banks: routing (brute force), batched evaluation vs per-point (float64, forward and
gradients), and the Triton grouped kernels vs the reference (forward and backward; on CPU under
``TRITON_INTERPRET=1``, set here before the kernel module is imported, at small sizes)."""

import os

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fieldforge.fields.kernels import has_triton  # noqa: E402
from fieldforge.fields.kernels.tiles_reference import (  # noqa: E402
    fold_biases,
    fold_chain,
    pack_segments,
    stable_order,
    tile_centers,
    tile_chain_folded,
    tile_index,
    tile_mlp_batched,
    tile_mlp_folded,
    tile_mlp_per_point,
)

DEV = torch.device("cuda" if CUDA else "cpu")


def brute_force_tile(u: torch.Tensor, resolution: tuple[int, ...]) -> torch.Tensor:
    """Tile id by testing every tile's box ``[k/r, (k+1)/r)`` (the last one closed), after clamping."""
    d = len(resolution)
    ids = torch.full((u.shape[0],), -1, dtype=torch.long)
    uc = u.clamp(0, 1)
    for t in range(int(torch.tensor(resolution).prod())):
        k, rem = [], t
        for a in reversed(range(d)):
            k.append(rem % resolution[a])
            rem //= resolution[a]
        k = k[::-1]
        inside = torch.ones(u.shape[0], dtype=torch.bool)
        for a in range(d):
            lo = torch.tensor(k[a], dtype=u.dtype) / resolution[a]
            hi = torch.tensor(k[a] + 1, dtype=u.dtype) / resolution[a]
            upper = (uc[:, a] <= hi) if k[a] == resolution[a] - 1 else (uc[:, a] < hi)
            inside &= (uc[:, a] >= lo) & upper
        assert not bool((inside & (ids >= 0)).any()), "tiles overlap"
        ids[inside] = t
    return ids


@pytest.mark.parametrize("resolution", [(3, 5), (9, 16, 10), (4, 4, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_routing_matches_brute_force_on_boundaries_and_outside(resolution, dtype):
    g = torch.Generator().manual_seed(0)
    d = len(resolution)
    rand = torch.rand(2000, d, generator=g, dtype=torch.float64)
    # every inner and outer edge k/r on one axis, random on the others
    edges = []
    for a, r in enumerate(resolution):
        for k in range(r + 1):
            p = torch.rand(3, d, generator=g, dtype=torch.float64)
            p[:, a] = torch.tensor(k, dtype=dtype).double() / r  # exactly the edge as rounded in this dtype
            edges.append(p)
    corners = tile_centers(resolution).double()[:, None, :] + torch.tensor([-0.5, 0.5], dtype=torch.float64)[None, :, None] / torch.tensor(resolution)
    outside = torch.rand(300, d, generator=g, dtype=torch.float64) * 3.0 - 1.0  # much of it outside [0,1]
    u = torch.cat([rand, *edges, corners.reshape(-1, d), outside]).to(dtype)
    ids, inside = tile_index(u, resolution)
    assert torch.equal(ids, brute_force_tile(u, resolution))
    assert torch.equal(inside, ((u >= 0) & (u <= 1)).all(-1))
    assert int(ids.min()) >= 0 and int(ids.max()) < int(torch.tensor(resolution).prod())
    # points outside are clamped to the nearest tile: the tile of their clamped position, and flagged
    out = ~inside
    assert out.any() and torch.equal(ids[out], tile_index(u[out].clamp(0, 1), resolution)[0])


def test_tile_centers_route_to_their_own_tile():
    res = (9, 16, 10)
    ids, inside = tile_index(tile_centers(res), res)
    assert torch.equal(ids, torch.arange(9 * 16 * 10)) and bool(inside.all())


def random_bank(n_tiles: int, dims: list[int], dtype=torch.float64, device=DEV, seed=0):
    g = torch.Generator().manual_seed(seed)
    ws = [(torch.randn(n_tiles, i, o, generator=g, dtype=torch.float64) * (2 / i) ** 0.5).to(device, dtype).requires_grad_(True)
          for i, o in zip(dims[:-1], dims[1:])]
    bs = [(torch.randn(n_tiles, o, generator=g, dtype=torch.float64) * 0.1).to(device, dtype).requires_grad_(True) for o in dims[1:]]
    return ws, bs


def grads(out: torch.Tensor, tensors: list[torch.Tensor], seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gy = torch.randn(out.shape, generator=g, dtype=torch.float64).to(out)
    return list(torch.autograd.grad(out, tensors, gy, retain_graph=True))


@pytest.mark.parametrize("block", [1, 16, 64])
def test_batched_equals_per_point_forward_and_gradients_float64(block):
    n_tiles, dims = 37, [21, 32, 32, 5]
    g = torch.Generator().manual_seed(3)
    # unbalanced: most points in a few tiles, some tiles empty
    ids = torch.cat([torch.randint(0, 30, (150,), generator=g), torch.full((200,), 4), torch.full((70,), 36)])  # 30..35 empty
    ids = ids[torch.randperm(ids.shape[0], generator=g)]
    x = torch.randn(ids.shape[0], dims[0], generator=g, dtype=torch.float64).requires_grad_(True)
    ws, bs = random_bank(n_tiles, dims, device=torch.device("cpu"))
    ref = tile_mlp_per_point(x, ids, ws, bs)
    out = tile_mlp_batched(x, ids, ws, bs, block=block)
    assert torch.allclose(out, ref, rtol=1e-12, atol=1e-12)
    # per point literally: each point through its own tile's layers with plain matmuls
    i = 123
    h = x[i]
    for l, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w[ids[i]] + b[ids[i]]
        h = torch.relu(h) if l < len(ws) - 1 else h
    assert torch.allclose(out[i], h, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads(out, [x, *ws, *bs]), grads(ref, [x, *ws, *bs])):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    # empty tiles get exactly zero gradient
    empty = torch.ones(n_tiles, dtype=torch.bool)
    empty[ids] = False
    assert empty.any() and float(grads(out, [ws[0]])[0][empty].abs().max()) == 0.0


@pytest.mark.parametrize("block", [None, 8, 64])
def test_folded_biases_evaluate_every_point_by_its_own_tile(block):
    """The inference path (biases folded into the weights, one bmm per layer) equals the per-point reference in
    float64: unbalanced tiles, empty tiles, a point alone in its tile."""
    n_tiles, dims = 37, [21, 32, 32, 5]
    g = torch.Generator().manual_seed(4)
    ids = torch.cat([torch.randint(0, 30, (150,), generator=g), torch.full((200,), 4), torch.tensor([36])])
    ids = ids[torch.randperm(ids.shape[0], generator=g)]
    x = torch.randn(ids.shape[0], dims[0], generator=g, dtype=torch.float64)
    ws, bs = random_bank(n_tiles, dims, device=torch.device("cpu"))
    out = tile_mlp_folded(x, pack_segments(ids, n_tiles, block), fold_biases(ws, bs))
    torch.testing.assert_close(out, tile_mlp_per_point(x, ids, ws, bs).detach(), rtol=1e-12, atol=1e-12)
    none = torch.zeros(0, dtype=torch.long)
    assert tile_mlp_folded(x[:0], pack_segments(none, n_tiles, block), fold_biases(ws, bs)).shape == (0, dims[-1])


@pytest.mark.parametrize("block", [None, 8])
def test_chained_banks_equal_the_two_banks_one_after_the_other(block):
    """KiloNeRF's position bank then colour bank in one packed pass (the position bank's last linear layer
    multiplied into the colour bank's first layer) equals the per-point reference of both banks in float64:
    output 0 passed through, the colour bank fed ``[extra, outputs 1:]``."""
    n_tiles, first_dims, n_extra = 23, [21, 16, 16, 1 + 12], 9
    second_dims = [n_extra + 12, 16, 3]
    g = torch.Generator().manual_seed(5)
    ids = torch.cat([torch.randint(0, 20, (180,), generator=g), torch.full((90,), 7), torch.tensor([22])])
    ids = ids[torch.randperm(ids.shape[0], generator=g)]
    x = torch.randn(ids.shape[0], first_dims[0], generator=g, dtype=torch.float64)
    extra = torch.randn(ids.shape[0], n_extra, generator=g, dtype=torch.float64)
    w1, b1 = random_bank(n_tiles, first_dims, device=torch.device("cpu"))
    w2, b2 = random_bank(n_tiles, second_dims, device=torch.device("cpu"), seed=1)
    first = tile_mlp_per_point(x, ids, w1, b1).detach()
    second = tile_mlp_per_point(torch.cat([extra, first[:, 1:]], dim=-1), ids, w2, b2).detach()
    chain = fold_chain(fold_biases(w1, b1), fold_biases(w2, b2), n_extra)
    assert len(chain) == len(w1) + len(w2) - 1
    out0, out = tile_chain_folded(x, extra, pack_segments(ids, n_tiles, block), chain, len(w1) - 1)
    torch.testing.assert_close(out0, first[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, second, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="expected 8 extra"):
        fold_chain(fold_biases(w1, b1), fold_biases(w2, b2), n_extra - 1)


@pytest.mark.parametrize("n_keys", [1, 4096, 1 << 16, (1 << 16) + 5])
def test_stable_order_sorts_like_a_stable_argsort(n_keys):
    """The radix path (≤ 2^16 keys on a CPU) and the fallback give exactly torch's stable order: equal keys keep
    their input order."""
    g = torch.Generator().manual_seed(n_keys)
    keys = torch.randint(0, n_keys, (5000,), generator=g)
    keys[:40] = n_keys - 1  # the largest key, many times
    order = stable_order(keys, n_keys)
    assert order.dtype == torch.long
    assert torch.equal(order, torch.argsort(keys, stable=True))
    assert stable_order(keys[:0], n_keys).shape == (0,)


def test_segments_layout():
    ids = torch.tensor([2, 0, 2, 2, 5, 0])
    seg = pack_segments(ids, 6, block=2)
    # tile 0: 2 points → 1 block; tile 2: 3 → 2 blocks; tile 5: 1 → 1 block
    assert seg.block_tile.tolist() == [0, 2, 2, 5]
    assert seg.tile_blocks.tolist() == [0, 1, 1, 3, 3, 3, 4]
    assert sorted(seg.slot.tolist()) == [0, 1, 2, 3, 4, 6] and seg.slot[4] == 6
    assert bool((seg.block_tile[seg.slot // 2] == ids).all())


triton_only = pytest.mark.skipif(not has_triton(), reason="triton is not installed (pip install fieldforge[gpu])")


@triton_only
@pytest.mark.parametrize("dims", [[63, 32, 32, 33], [27 + 32, 32, 3], [5, 16, 1]])
def test_triton_grouped_kernel_matches_reference_forward_and_backward(dims):
    from fieldforge.fields.kernels.tiles_triton import tile_mlp_triton

    n_tiles = 12
    n = 4000 if CUDA else 300
    g = torch.Generator().manual_seed(7)
    ids = torch.cat([torch.randint(0, n_tiles - 2, (n - 90,), generator=g), torch.full((90,), n_tiles - 1)]).to(DEV)
    x = torch.randn(n, dims[0], generator=g).to(DEV).requires_grad_(True)
    ws, bs = random_bank(n_tiles, dims, dtype=torch.float32)
    out = tile_mlp_triton(x, ids, ws, bs)
    x64 = x.detach().double().requires_grad_(True)
    ws64 = [w.detach().double().requires_grad_(True) for w in ws]
    bs64 = [b.detach().double().requires_grad_(True) for b in bs]
    ref = tile_mlp_per_point(x64, ids, ws64, bs64)
    tol = 1e-2 if CUDA else 1e-5  # CUDA: fp32 dots run as tf32
    rel = lambda a, b: float((a.detach().double() - b.detach()).norm() / b.detach().norm().clamp_min(1e-30))  # noqa: E731
    assert rel(out, ref) < tol
    for a, b in zip(grads(out, [x, *ws, *bs]), grads(ref, [x64, *ws64, *bs64])):
        assert rel(a, b) < tol
    # the unused tile (n_tiles - 2) gets a zero gradient, not garbage
    assert float(grads(out, [ws[0]])[0][n_tiles - 2].abs().max()) == 0.0


@triton_only
def test_triton_double_backward_goes_through_the_reference():
    from fieldforge.fields.kernels.tiles_triton import tile_mlp_triton

    g = torch.Generator().manual_seed(8)
    ids = torch.randint(0, 3, (80,), generator=g).to(DEV)
    x = torch.randn(80, 4, generator=g).to(DEV).requires_grad_(True)
    ws, bs = random_bank(3, [4, 16, 1], dtype=torch.float32)
    for fn in (tile_mlp_triton, tile_mlp_per_point):
        y = fn(x, ids, ws, bs)
        (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        (gw,) = torch.autograd.grad((dx**2).sum(), ws[0])
        if fn is tile_mlp_triton:
            first = gw
    assert torch.allclose(first, gw, rtol=1e-4, atol=1e-6)


@triton_only
def test_tile_bank_module_dispatches_to_triton_and_matches_torch():
    from fieldforge.fields.networks import TileBankConfig

    torch.manual_seed(0)
    cfg = TileBankConfig(resolution=(2, 3, 2), width=16, n_hidden_layers=2, backend="triton")
    bank = cfg.setup(10, 4, 3).to(DEV)
    ref = TileBankConfig(resolution=(2, 3, 2), width=16, n_hidden_layers=2, backend="torch").setup(10, 4, 3).to(DEV)
    ref.load_state_dict(bank.state_dict())
    with torch.no_grad():  # tiles differ (the shared initialization would hide routing mistakes)
        for p in bank.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    ref.load_state_dict(bank.state_dict())
    g = torch.Generator().manual_seed(1)
    coords = torch.rand(200, 3, generator=g).to(DEV)
    h = torch.randn(200, 10, generator=g).to(DEV)
    out, expected = bank(h, coords), ref(h, coords)
    assert bank.backend_for(h.device) == "triton" and ref.backend_for(h.device) == "torch"
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5)
    gb = torch.autograd.grad(out.square().sum(), list(bank.parameters()))
    gr = torch.autograd.grad(expected.square().sum(), list(ref.parameters()))
    for a, b in zip(gb, gr):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)
