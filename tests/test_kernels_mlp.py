"""Parity of the fused Triton MLP (forward + backward) with its pure-torch reference.

Without CUDA the kernels run on the CPU through Triton's interpreter (``TRITON_INTERPRET=1``, set here
before the kernel module is imported) at small sizes; with CUDA the same tests run compiled at full size.
Error measure: ‖a − b‖ / ‖b‖ over the whole tensor. Tolerances per compute dtype (``TOL``): the
reference rounds exactly like the kernel, so what remains is fp32 summation order (and, on CUDA, the kernel's
fp32 dots run as tf32: 10-bit mantissa, hence the fp32 tolerance there). Gradients of deep
low-precision networks may also differ by up to half of the reference's own error against exact
(float64) arithmetic: one rounding flip early in the backward pass moves everything after it.
"""

import logging
import os

import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fieldforge.fields.kernels import has_triton  # noqa: E402

pytestmark = pytest.mark.skipif(not has_triton(), reason="triton is not installed (pip install fieldforge[gpu])")

DEV = torch.device("cuda" if CUDA else "cpu")
N = 2**17 + 77 if CUDA else 200  # not a multiple of any block size
TOL = {torch.float32: 1e-2 if CUDA else 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# (width, hidden layers, output activation, in_dim, out_dim): widths 16 and 128, depths 1 and 8
SHAPES = [
    (16, 1, "sigmoid", 3, 4),
    (128, 8, "none", 32, 16),
    (32, 3, "trunc_exp", 20, 1),
    (64, 2, "softplus_beta100", 63, 3),
    (128, 1, "exp", 16, 16),
    (16, 8, "relu", 130, 7),
]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def make_params(width, n_hidden, in_dim, out_dim, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    ws = [torch.randn(width, in_dim, generator=g) * (2 / in_dim) ** 0.5]
    ws += [torch.randn(width, width, generator=g) * (2 / width) ** 0.5 for _ in range(n_hidden - 1)]
    ws += [torch.randn(out_dim, width, generator=g) * (1 / width) ** 0.5]
    bs = [torch.randn(width, generator=g) * 0.1 for _ in range(n_hidden)] + [torch.randn(out_dim, generator=g) * 0.1]
    ws = [w.to(DEV).requires_grad_(True) for w in ws]
    bs = [b.to(DEV).requires_grad_(True) for b in bs] if bias else None
    return ws, bs


@pytest.fixture(scope="module")
def fm():
    from fieldforge.fields.kernels import fused_mlp

    if not CUDA:
        assert type(fused_mlp._mlp_fwd_kernel).__name__ == "InterpretedFunction", "TRITON_INTERPRET was set too late"
    return fused_mlp


CASES = [(s, d, "atomic") for s in SHAPES for d in DTYPES] + [(s, d, "splitk") for s in SHAPES for d in DTYPES[1:2]]


@pytest.mark.parametrize(
    ("shape", "dtype", "wgrad"), CASES, ids=[f"w{s[0]}-d{s[1]}-{s[2]}-{str(d)[6:]}-{w}" for s, d, w in CASES]
)
def test_forward_backward_match_reference(fm, shape, dtype, wgrad):
    from fieldforge.fields.kernels.fused_mlp_reference import fused_mlp_reference

    width, n_hidden, act, in_dim, out_dim = shape
    ws, bs = make_params(width, n_hidden, in_dim, out_dim)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, in_dim, generator=g).to(DEV).requires_grad_(True)
    y = fm.fused_mlp(x, ws, bs, act, dtype=dtype, wgrad=wgrad)
    y_ref = fused_mlp_reference(x, ws, bs, act, dtype)
    assert y.dtype == dtype and y.shape == (N, out_dim)
    assert torch.isfinite(y).all()
    tol = TOL[dtype]
    assert rel(y, y_ref) < (max(tol, 2 * rel(fused_mlp_reference(x, ws, bs, act, torch.float16), y_ref)) if CUDA and dtype == torch.float32 else tol)
    gy = torch.randn(N, out_dim, generator=g).to(DEV, dtype)
    params = [x] + ws + bs
    grads = torch.autograd.grad(y, params, gy)
    grads_ref = torch.autograd.grad(y_ref, params, gy)
    # Exact arithmetic: deep low-precision backward passes drift from it (ReLU masks flip near 0), and
    # the kernel may drift differently from the reference by a fraction of that.
    y64 = fused_mlp_reference(x.double(), [w.double() for w in ws], [b.double() for b in bs], act, torch.float64)
    grads64 = torch.autograd.grad(y64, params, gy.double())
    if CUDA and dtype == torch.float32:
        # tf32 dots carry fp16's 10-bit mantissa: the fp32 kernel must be as close to exact arithmetic
        # as the fp16 reference is (the fp32 reference, with true fp32 products, is much closer).
        grads16 = torch.autograd.grad(fused_mlp_reference(x, ws, bs, act, torch.float16), params, gy.half())
        for i, (a, c, h) in enumerate(zip(grads, grads64, grads16)):
            bound = max(1e-2, 4 * rel(h, c))  # H100 measured up to 6.4e-3 (width 16, depth 8)
            assert rel(a, c) < bound, f"gradient {i}: {rel(a, c):.2e} vs bound {bound:.2e}"
        return
    for i, (a, b, c) in enumerate(zip(grads, grads_ref, grads64)):
        assert a.dtype == b.dtype == params[i].dtype
        assert torch.isfinite(a).all()
        bound = max(tol, 0.5 * rel(b, c))
        assert rel(a, b) < bound, f"gradient {i}: {rel(a, b):.2e} vs bound {bound:.2e}"


def test_no_bias_and_input_without_grad(fm):
    """Bias-free network (tcnn-style) and a constant input: only weight gradients come back."""
    from fieldforge.fields.kernels.fused_mlp_reference import fused_mlp_reference

    ws, _ = make_params(32, 2, 8, 3)
    x = torch.rand(N, 8, device=DEV)
    y = fm.fused_mlp(x, ws, None, "none", dtype=torch.float16)
    y_ref = fused_mlp_reference(x, ws, None, "none", torch.float16)
    assert rel(y, y_ref) < TOL[torch.float16]
    gw = torch.autograd.grad(y.float().square().sum(), ws)
    gw_ref = torch.autograd.grad(y_ref.float().square().sum(), ws)
    assert all(rel(a, b) < TOL[torch.float16] for a, b in zip(gw, gw_ref))


def test_fp16_kernel_close_to_fp32_math(fm):
    """The low-precision result approximates the full-precision network (the rounding is only rounding)."""
    from fieldforge.fields.kernels.fused_mlp_reference import fused_mlp_reference

    ws, bs = make_params(64, 3, 16, 4)
    x = torch.rand(N, 16, device=DEV)
    with torch.no_grad():
        y16 = fm.fused_mlp(x, ws, bs, "sigmoid", dtype=torch.float16)
        y64 = fused_mlp_reference(x.double(), [w.double() for w in ws], [b.double() for b in bs], "sigmoid", torch.float64)
    assert rel(y16, y64) < 5e-3


def test_double_backward_eikonal_matches_reference(fm):
    """create_graph=True (the SDF eikonal loss) is supported: the second derivative matches the reference."""
    from fieldforge.fields.kernels.fused_mlp_reference import fused_mlp_reference

    ws, bs = make_params(32, 2, 3, 1)
    x = torch.rand(64 if not CUDA else 4096, 3, device=DEV, requires_grad=True)

    def eikonal(fn):
        y = fn()
        (gx,) = torch.autograd.grad(y.float().sum(), x, create_graph=True)
        loss = (gx.norm(dim=-1) - 1).square().mean()
        grads = torch.autograd.grad(loss, ws + bs, allow_unused=True)  # the last bias does not move ∇x
        return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, ws + bs)]

    got = eikonal(lambda: fm.fused_mlp(x, ws, bs, "none", dtype=torch.float32))
    ref = eikonal(lambda: fused_mlp_reference(x, ws, bs, "none", torch.float32))
    assert float(got[-1].abs().max()) == 0.0
    for a, b in zip(got[:-1], ref[:-1]):
        assert rel(a, b) < (5e-3 if CUDA else 1e-5)  # fp32 (tf32 on CUDA)


def test_inference_stores_no_activations_and_matches(fm):
    from fieldforge.fields.kernels.fused_mlp_reference import fused_mlp_reference

    ws, bs = make_params(16, 4, 5, 2)
    x = torch.rand(N, 5, device=DEV)
    with torch.no_grad():
        y = fm.fused_mlp(x, ws, bs, "none", dtype=torch.float16)
        assert not y.requires_grad
        y_ref = fused_mlp_reference(x, ws, bs, "none", torch.float16)
    assert rel(y, y_ref) < TOL[torch.float16]


def test_unsupported_shapes_are_rejected(fm):
    ws, bs = make_params(16, 1, 4, 2)
    with pytest.raises(ValueError, match="width"):
        fm.fused_mlp(torch.rand(8, 4, device=DEV), [torch.zeros(48, 4, device=DEV), torch.zeros(2, 48, device=DEV)], None)
    with pytest.raises(ValueError, match="input width"):
        fm.fused_mlp(torch.rand(8, 5, device=DEV), ws, bs)


def test_mlp_module_triton_backend_matches_torch_backend(fm, caplog):
    """``MLPConfig(backend='triton')`` uses the kernels, keeps the state_dict keys, matches the torch MLP."""
    from fieldforge.fields.networks import MLPConfig

    ref = MLPConfig(width=64, n_hidden_layers=3, output_activation="sigmoid").setup(10, 3, 2).to(DEV)
    with caplog.at_level(logging.INFO, logger="fieldforge.fields.kernels"):
        fused = MLPConfig(width=64, n_hidden_layers=3, output_activation="sigmoid", backend="triton").setup(10, 3, 2).to(DEV)
        fused.load_state_dict(ref.state_dict())
        assert list(fused.state_dict()) == list(ref.state_dict())
        x = torch.rand(N, 10, device=DEV)
        y = fused(x)
    assert fused.backend_for(DEV) == "triton"
    assert "backend 'triton'" in caplog.text
    y_ref = ref(x)
    assert rel(y, y_ref) < (5e-3 if CUDA else 1e-5)  # fp32 input: fp32 kernel (tf32 on CUDA)
    y.float().sum().backward()
    y_ref.float().sum().backward()
    for (name, a), b in zip(fused.named_parameters(), ref.parameters()):
        assert rel(a.grad, b.grad) < (5e-3 if CUDA else 1e-5), name


def test_auto_backend_on_cpu_is_torch_and_logged(caplog):
    from fieldforge.fields.networks import MLPConfig

    m = MLPConfig(width=32, n_hidden_layers=2, backend="auto").setup(4, 2, 2)
    with caplog.at_level(logging.INFO, logger="fieldforge.fields.kernels"):
        impl = m.backend_for(torch.device("cpu"))
    assert impl == "torch"
    assert "auto → 'torch'" in caplog.text or impl in m._impl.values()


def test_explicit_backend_rejects_configs_that_do_not_fit():
    from fieldforge.fields.networks import MLPConfig

    with pytest.raises(ValueError, match="width 256"):
        MLPConfig(width=256, backend="triton").setup(4, 2, 2)
    with pytest.raises(ValueError, match="hidden activation"):
        MLPConfig(width=64, activation="silu", backend="triton").setup(4, 2, 2)
    with pytest.raises(ValueError, match="biases"):
        MLPConfig(width=64, backend="tcnn").setup(4, 2, 2)


@pytest.mark.skipif(not CUDA, reason="needs CUDA: checks that the kernels are compiled, not interpreted")
def test_kernels_are_compiled_on_cuda(fm):
    assert os.environ.get("TRITON_INTERPRET", "0") != "1"
    assert type(fm._mlp_fwd_kernel).__name__ == "JITFunction"
    ws, bs = make_params(64, 2, 32, 16)
    with torch.no_grad():
        fm.fused_mlp(torch.rand(4096, 32, device=DEV), ws, bs, "none", dtype=torch.float16)
    ptx = fm.LAST_FWD_KERNEL.asm["ptx"]
    assert "mma" in ptx  # tensor-core instructions (mma.sync or wgmma)
