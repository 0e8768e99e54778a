"""Parity of the Triton hash grid (forward + backward) with the pure-torch reference ``hash_grid_encode``.

CPU: Triton's interpreter (``TRITON_INTERPRET=1``, set before the kernel module is imported), small sizes.
CUDA: compiled, full sizes. Both compute in fp32 from identical indices and weights, so the forward agrees
to fp32 rounding (tolerance 1e-6 relative in the interpreter; 1e-5 compiled on CUDA, where the compiler
contracts multiply-adds into FMAs, measured 2.2e-6 on an H100); table gradients are sums of the same products in another
order (atomics vs ``index_add``: 1e-5); input gradients likewise (1e-5).
"""

import os

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fieldforge.fields.encodings.hashgrid import hash_grid_encode, hash_grid_layout  # noqa: E402
from fieldforge.fields.kernels import has_triton  # noqa: E402

pytestmark = pytest.mark.skipif(not has_triton(), reason="triton is not installed (pip install fieldforge[gpu])")
DEV = torch.device("cuda" if CUDA else "cpu")
N = 2**18 + 13 if CUDA else 301
FWD_TOL = 1e-5 if CUDA else 1e-6


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize(
    ("d", "levels", "log2_t", "feats"),
    [(3, 6, 10, 2), (2, 4, 8, 4), (1, 3, 6, 2), (3, 16 if CUDA else 4, 19 if CUDA else 12, 2)],
)
def test_forward_backward_match_reference(d, levels, log2_t, feats):
    from fieldforge.fields.kernels.hashgrid_triton import hash_grid_encode_triton

    layout = hash_grid_layout(d, levels, log2_t, 4, 256)
    assert any(layout.hashed) and not all(layout.hashed)  # both index kinds exercised
    g = torch.Generator().manual_seed(0)
    table = (torch.rand(layout.n_rows, feats, generator=g) * 2 - 1).to(DEV).requires_grad_(True)
    x = torch.rand(N, d, generator=g)
    x[0], x[1] = 0.0, 1.0  # the cube's corners (last cell, align-corners vertex N_l)
    x[2, 0], x[3, -1] = 1.25, -0.5  # outside: clamped, zero gradient along that axis
    x = x.to(DEV).requires_grad_(True)
    y = hash_grid_encode_triton(x, table, layout)
    y_ref = hash_grid_encode(x, table, layout)
    assert y.shape == (N, levels * feats)
    assert rel(y, y_ref) < FWD_TOL
    gy = torch.randn(y.shape, generator=g).to(DEV)
    gx, gt = torch.autograd.grad(y, [x, table], gy)
    gx_ref, gt_ref = torch.autograd.grad(y_ref, [x, table], gy)
    assert rel(gt, gt_ref) < 1e-5
    assert rel(gx, gx_ref) < 1e-5
    assert float(gx[2, 0]) == 0.0 and float(gx[3, -1]) == 0.0


def test_table_only_gradient_and_double_backward():
    """No input gradient when x is constant; create_graph=True goes through the reference."""
    from fieldforge.fields.kernels.hashgrid_triton import hash_grid_encode_triton

    layout = hash_grid_layout(3, 3, 8, 2, 32)
    table = torch.randn(layout.n_rows, 2, device=DEV, requires_grad=True)
    x = torch.rand(64, 3, device=DEV)
    (gt,) = torch.autograd.grad(hash_grid_encode_triton(x, table, layout).square().sum(), table)
    (gt_ref,) = torch.autograd.grad(hash_grid_encode(x, table, layout).square().sum(), table)
    assert rel(gt, gt_ref) < 1e-5
    xg = x.clone().requires_grad_(True)

    def eikonal(fn):
        (gx,) = torch.autograd.grad(fn(xg, table, layout).sum(), xg, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), table)[0]

    assert rel(eikonal(hash_grid_encode_triton), eikonal(hash_grid_encode)) < 1e-5


def test_rejects_what_it_cannot_run():
    from fieldforge.fields.kernels.hashgrid_triton import hash_grid_encode_triton

    layout = hash_grid_layout(2, 2, 6, 2, 8)
    with pytest.raises(ValueError, match="features per level"):
        hash_grid_encode_triton(torch.rand(4, 2, device=DEV), torch.zeros(layout.n_rows, 3, device=DEV), layout)
    with pytest.raises(ValueError, match="dtype"):
        hash_grid_encode_triton(torch.rand(4, 2, device=DEV), torch.zeros(layout.n_rows, 2, device=DEV).double(), layout)


def test_encoding_backend_field_uses_the_kernel(caplog):
    """``HashGridEncodingConfig(backend='triton')`` runs the kernel (interpreted on CPU) and matches torch."""
    import logging

    from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig

    ref = HashGridEncodingConfig(n_levels=4, log2_table_size=10, max_resolution=64, init_scale=0.5).setup(3).to(DEV)
    fast = HashGridEncodingConfig(n_levels=4, log2_table_size=10, max_resolution=64, init_scale=0.5, backend="triton").setup(3).to(DEV)
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(200, 3, device=DEV)
    with caplog.at_level(logging.INFO, logger="fieldforge.fields.kernels"):
        y = fast(x)
    assert "backend 'triton'" in caplog.text
    assert rel(y, ref(x)) < FWD_TOL
