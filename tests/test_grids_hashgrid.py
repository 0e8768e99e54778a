"""Hash grid vs an explicit brute-force reference (python loops over points, levels and corners, float64,
uint32 hash arithmetic in numpy), forward and backward, 2D and 3D."""

import math

import pytest
import torch

from fieldforge.fields.encodings import HashGridEncodingConfig
from fieldforge.fields.encodings.hashgrid import hash_grid_encode, hash_grid_layout, level_resolutions

PRIMES = (1, 2654435761, 805459861)


def brute_force(x: torch.Tensor, table: torch.Tensor, n_levels: int, log2_t: int, base: int, finest: int) -> torch.Tensor:
    """Differentiable (w.r.t. x and table) reference: one point, one level, one corner at a time."""
    n, d = x.shape
    growth = math.exp((math.log(finest) - math.log(base)) / (n_levels - 1))
    out = []
    offset = 0
    for lvl in range(n_levels):
        res = int(math.floor(base * growth**lvl + 1e-6))
        size = min(2**log2_t, (res + 1) ** d)
        hashed = (res + 1) ** d > 2**log2_t
        level_feats = []
        for p in range(n):
            acc = torch.zeros(table.shape[1], dtype=table.dtype)
            pos = [x[p, k].clamp(0, 1) * res for k in range(d)]
            cell = [min(int(math.floor(float(pk.detach()))), res - 1) for pk in pos]
            for corner in range(2**d):
                c = [cell[k] + ((corner >> k) & 1) for k in range(d)]
                if hashed:
                    h = 0
                    for k in range(d):
                        h ^= (c[k] * PRIMES[k]) % 2**32  # uint32 product
                    idx = h % size
                else:
                    idx = sum(c[k] * (res + 1) ** k for k in range(d))
                weight = torch.ones((), dtype=table.dtype)
                for k in range(d):
                    frac = pos[k] - cell[k]
                    weight = weight * (frac if (corner >> k) & 1 else 1 - frac)
                acc = acc + weight * table[offset + idx]
            level_feats.append(acc)
        out.append(torch.stack(level_feats))
        offset += size
    return torch.cat(out, dim=1)


CASES = [
    # d, levels, log2 T, base, finest: every case has dense AND hashed levels
    (2, 4, 6, 3, 24),
    (3, 3, 7, 2, 9),
]


@pytest.mark.parametrize("d,levels,log2_t,base,finest", CASES)
def test_layout_matches_definition(d, levels, log2_t, base, finest):
    lay = hash_grid_layout(d, levels, log2_t, base, finest)
    assert lay.resolutions[0] == base and lay.resolutions[-1] == finest
    assert lay.hashed == tuple((r + 1) ** d > 2**log2_t for r in lay.resolutions)
    assert any(lay.hashed) and not all(lay.hashed)
    assert lay.sizes() == tuple(min(2**log2_t, (r + 1) ** d) for r in lay.resolutions)
    assert level_resolutions(16, 16, 512) == tuple(int(16 * (512 / 16) ** (lvl / 15) + 1e-6) for lvl in range(16))


@pytest.mark.parametrize("d,levels,log2_t,base,finest", CASES)
def test_forward_and_gradients_match_brute_force(d, levels, log2_t, base, finest):
    gen = torch.Generator().manual_seed(d)
    lay = hash_grid_layout(d, levels, log2_t, base, finest)
    table = torch.randn(lay.n_rows, 2, generator=gen, dtype=torch.float64)
    x = torch.rand(24, d, generator=gen, dtype=torch.float64)
    x[0] = 0.0  # corners of the cube: exercise the clamped last cell
    x[1] = 1.0
    t1, x1 = table.clone().requires_grad_(), x.clone().requires_grad_()
    t2, x2 = table.clone().requires_grad_(), x.clone().requires_grad_()
    fast = hash_grid_encode(x1, t1, lay)
    ref = brute_force(x2, t2, levels, log2_t, base, finest)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn(fast.shape, generator=gen, dtype=torch.float64)
    (fast * upstream).sum().backward()
    (ref * upstream).sum().backward()
    torch.testing.assert_close(t1.grad, t2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-10)
    assert t1.grad.abs().sum() > 0 and x1.grad[2:].abs().sum() > 0


@pytest.mark.parametrize("d", [2, 3])
def test_gradcheck_against_finite_differences(d):
    lay = hash_grid_layout(d, 3, 5, 2, 8)
    gen = torch.Generator().manual_seed(10 + d)
    table = torch.randn(lay.n_rows, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    # keep points away from cell boundaries so finite differences stay inside one cell
    x = (0.1 + 0.8 * torch.rand(6, d, generator=gen, dtype=torch.float64))
    frac = [(x * r) % 1.0 for r in lay.resolutions]
    keep = torch.stack([((f > 0.05) & (f < 0.95)).all(-1) for f in frac]).all(0)
    x = x[keep].clone().requires_grad_()
    assert x.shape[0] >= 1
    assert torch.autograd.gradcheck(lambda t, p: hash_grid_encode(p, t, lay), (table, x), eps=1e-6, atol=1e-7)


def test_vertices_interpolate_exactly_and_dense_levels_have_no_collisions():
    lay = hash_grid_layout(2, 2, 8, 4, 15)  # (4+1)² = 25 and (15+1)² = 256 ≤ 2^8 rows: both levels dense
    assert lay.hashed == (False, False)
    table = torch.randn(lay.n_rows, 1, dtype=torch.float64)
    res = lay.resolutions[0]
    iy, ix = torch.meshgrid(torch.arange(res + 1), torch.arange(res + 1), indexing="ij")
    verts = torch.stack([ix.reshape(-1), iy.reshape(-1)], -1).double() / res
    out = hash_grid_encode(verts, table, lay)[:, 0]
    expected = table[ix.reshape(-1) + (res + 1) * iy.reshape(-1), 0]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)  # one row per vertex: a bijection


def test_hash_collides_only_modulo_table_size():
    lay = hash_grid_layout(3, 1, 4, 8, 8)  # 9³ vertices into 16 rows: hashed
    assert lay.hashed == (True,)
    table = torch.arange(16, dtype=torch.float64)[:, None]
    # vertex (1, 1, 0): 1 ^ 2654435761 = 2654435760 → mod 16 = 0; vertex (0, 0, 1): 805459861 mod 16 = 5
    out = hash_grid_encode(torch.tensor([[1 / 8, 1 / 8, 0.0], [0.0, 0.0, 1 / 8]], dtype=torch.float64), table, lay)
    assert out[:, 0].tolist() == [float(2654435760 % 16), float(805459861 % 16)]


def test_module_init_groups_and_output():
    cfg = HashGridEncodingConfig(n_levels=4, features_per_level=3, log2_table_size=8, base_resolution=4, max_resolution=32,
                                 lr_multiplier=10.0, weight_decay=0.0)
    enc = cfg.setup(2)
    assert enc.out_dim == 12 and enc.table.dtype == torch.float32
    assert enc.table.abs().max() <= 1e-4 and enc.table.std() > 1e-5
    big = HashGridEncodingConfig(n_levels=2, log2_table_size=6, base_resolution=2, max_resolution=4, init_scale=1.0).setup(3)
    assert 0.5 < big.table.abs().max() <= 1.0
    (group,) = enc.param_groups(1e-3)
    assert group["lr"] == pytest.approx(1e-2) and group["weight_decay"] == 0.0 and group["name"] == "encoding.hash_table"
    x = torch.rand(5, 2)
    torch.testing.assert_close(enc(x), hash_grid_encode(x, enc.table, enc.layout))
    assert "weight_decay" not in HashGridEncodingConfig(n_levels=1, log2_table_size=4).setup(2).param_groups(1.0)[0]


def test_reference_stays_fp32_under_autocast():
    enc = HashGridEncodingConfig(n_levels=3, log2_table_size=6, base_resolution=2, max_resolution=16).setup(3)
    x = torch.rand(20, 3)
    expected = enc(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(x)
        out.sum().backward()
    assert out.dtype == torch.float32 and enc.table.grad.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("d,levels,log2_t,base,finest", CASES)
def test_second_order_gradients_match_brute_force(d, levels, log2_t, base, finest):
    """SDF eikonal losses differentiate ∂f/∂x w.r.t. the table: compare that double backward too."""
    gen = torch.Generator().manual_seed(20 + d)
    lay = hash_grid_layout(d, levels, log2_t, base, finest)
    table = torch.randn(lay.n_rows, 2, generator=gen, dtype=torch.float64)
    x = torch.rand(8, d, generator=gen, dtype=torch.float64)
    u = torch.randn(8, levels * 2, generator=gen, dtype=torch.float64)

    def eikonal_grad(fn):
        t, p = table.clone().requires_grad_(), x.clone().requires_grad_()
        (g,) = torch.autograd.grad((fn(p, t) * u).sum(), p, create_graph=True)
        (gt,) = torch.autograd.grad(g.square().sum(), t)
        return gt

    fast = eikonal_grad(lambda p, t: hash_grid_encode(p, t, lay))
    ref = eikonal_grad(lambda p, t: brute_force(p, t, levels, log2_t, base, finest))
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    assert fast.abs().sum() > 0
