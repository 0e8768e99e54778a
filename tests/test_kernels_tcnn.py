"""tiny-cuda-nn backend: parameter packing and batch padding (CPU, with a stand-in native module), and
parity with the real tcnn FullyFusedMLP where ``tinycudann`` is installed (skipped elsewhere, with a reason)."""

import pytest
import torch

from fieldforge.fields.kernels import has_tcnn
from fieldforge.fields.kernels.fused_mlp_reference import fused_mlp_reference
from fieldforge.fields.kernels.tcnn_backend import (
    BATCH_GRANULARITY,
    TcnnMLP,
    n_tcnn_mlp_params,
    pack_tcnn_mlp_params,
    tcnn_mlp_unsupported,
    unpack_tcnn_mlp_params,
)


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def weights(in_dim=5, width=32, n_hidden=3, out_dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(width, in_dim, generator=g) / in_dim**0.5]
    ws += [torch.randn(width, width, generator=g) / width**0.5 for _ in range(n_hidden - 1)]
    ws += [torch.randn(out_dim, width, generator=g) / width**0.5]
    return [w.requires_grad_(True) for w in ws]


def test_packing_layout_is_row_major_padded_to_16():
    ws = weights()
    p = pack_tcnn_mlp_params(ws, torch.float32)
    assert p.numel() == n_tcnn_mlp_params(5, 3, 32, 3) == 32 * 16 + 2 * 32 * 32 + 16 * 32
    first = p[: 32 * 16].view(32, 16)
    assert torch.equal(first[:, :5], ws[0]) and not first[:, 5:].any()  # zero columns pad the input
    last = p[-16 * 32 :].view(16, 32)
    assert torch.equal(last[:3], ws[-1]) and not last[3:].any()  # zero rows pad the output
    back = unpack_tcnn_mlp_params(p, 5, 3, 32, 3)
    assert all(torch.equal(a, b) for a, b in zip(back, ws))


def test_config_fit_rules():
    assert tcnn_mlp_unsupported(5, 3, 64, 2, "relu", "none", False, ()) is None
    assert "bias" in tcnn_mlp_unsupported(5, 3, 64, 2, "relu", "none", True, ())
    assert "width" in tcnn_mlp_unsupported(5, 3, 256, 2, "relu", "none", False, ())
    assert "softplus_beta100" in tcnn_mlp_unsupported(5, 3, 64, 2, "relu", "softplus_beta100", False, ())
    assert "skip" in tcnn_mlp_unsupported(5, 3, 64, 2, "relu", "none", False, (1,))


class _FakeNative:
    """Stands in for tcnn's native module: same call signature, fp16 math on tcnn's parameter layout."""

    def __init__(self, in_dim, out_dim, width, n_hidden):
        self.dims = (in_dim, out_dim, width, n_hidden)
        self.batches = []

    def _net(self, x, params):
        in_dim, out_dim, width, n_hidden = self.dims
        ws = unpack_tcnn_mlp_params(params, in_dim, out_dim, width, n_hidden)
        ws[-1] = torch.nn.functional.pad(ws[-1], (0, 0, 0, 16 - out_dim))  # tcnn returns the padded output
        return fused_mlp_reference(x, ws, None, "none", torch.float16)

    def fwd(self, x, params):
        self.batches.append(x.shape[0])
        return None, self._net(x, params)

    def bwd(self, ctx, x, params, out, g):
        with torch.enable_grad():
            x_, p_ = x.detach().requires_grad_(True), params.detach().requires_grad_(True)
            gx, gp = torch.autograd.grad(self._net(x_, p_), (x_, p_), g)
        return gx, gp


def test_wrapper_pads_batch_and_scales_loss():
    ws = weights()
    runner = object.__new__(TcnnMLP)
    runner.in_dim, runner.out_dim, runner.width, runner.n_hidden, runner.output_activation = 5, 3, 32, 3, "none"
    runner.native = _FakeNative(5, 3, 32, 3)
    x = torch.rand(300, 5, requires_grad=True)
    y = runner(x, ws)
    assert runner.native.batches == [2 * BATCH_GRANULARITY]
    y_ref = fused_mlp_reference(x, ws, None, "none", torch.float16)
    assert y.shape == (300, 3) and rel(y, y_ref) < 1e-3
    gy = torch.randn(300, 3)
    got = torch.autograd.grad(y, [x] + ws, gy)
    ref = torch.autograd.grad(y_ref, [x] + ws, gy)
    for a, b in zip(got, ref):
        assert rel(a, b) < 5e-3  # fp16 parameters/gradients in the tcnn path


@pytest.mark.skipif(not has_tcnn(), reason="tinycudann is not installed (it needs CUDA and a source build)")
def test_tcnn_matches_reference_mlp():
    from fieldforge.fields.networks import MLPConfig

    cfg = dict(width=64, n_hidden_layers=3, bias=False, output_activation="none")
    ref = MLPConfig(**cfg).setup(32, 4, 3).cuda()
    fast = MLPConfig(**cfg, backend="tcnn").setup(32, 4, 3).cuda()
    fast.load_state_dict(ref.state_dict())
    x = torch.rand(2**16 + 5, 32, device="cuda", requires_grad=True)
    y, y_ref = fast(x), ref(x)
    assert rel(y, y_ref) < 1e-2
    gy = torch.randn_like(y_ref)
    gx = torch.autograd.grad(y, x, gy.to(y.dtype))[0]
    gx_ref = torch.autograd.grad(y_ref, x, gy)[0]
    assert rel(gx, gx_ref) < 2e-2
