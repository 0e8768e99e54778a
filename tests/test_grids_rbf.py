"""Gaussian RBF decoder: the matrix-product form equals the direct Gaussian sum, never builds an N×K×F
tensor, runs in fp32 under autocast, and composes with 2D and 3D grid encodings."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fieldforge.fields.encodings import HashGridEncodingConfig
from fieldforge.fields.field import FieldConfig, make_field
from fieldforge.fields.networks import RBFConfig
from fieldforge.fields.networks.rbf import gaussian_rbf


def direct_gaussian_sum(f, centers, log_prec, weight, bias):
    """y_o = Σ_k W_ok exp(−½ Σ_d e^{β_kd} (f_d − c_kd)²) + b_o, one point and one kernel at a time."""
    out = torch.zeros(f.shape[0], weight.shape[0], dtype=torch.float64)
    for n in range(f.shape[0]):
        for k in range(centers.shape[0]):
            q = sum(torch.exp(log_prec[k, d]) * (f[n, d] - centers[k, d]) ** 2 for d in range(f.shape[1]))
            out[n] += weight[:, k] * torch.exp(-0.5 * q)
        out[n] += bias
    return out


def test_gaussian_rbf_matches_definition():
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(30, 6, generator=gen, dtype=torch.float64)
    c = torch.randn(9, 6, generator=gen, dtype=torch.float64)
    beta = 0.5 * torch.randn(9, 6, generator=gen, dtype=torch.float64)
    direct = torch.exp(-0.5 * (beta.exp()[None] * (f[:, None] - c[None]) ** 2).sum(-1))
    torch.testing.assert_close(gaussian_rbf(f, c, beta), direct, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [2, 3])
def test_rbf_field_output_equals_direct_gaussian_sum(d):
    torch.manual_seed(d)
    enc = HashGridEncodingConfig(n_levels=3, features_per_level=2, log2_table_size=8, base_resolution=2, max_resolution=8,
                                 init_scale=0.5)
    field = make_field(FieldConfig(encoding=enc, network=RBFConfig(n_kernels=7, center_init=0.5), head="value"), in_dim=d, out_dim=3)
    field = field.double()
    with torch.no_grad():
        field.network.log_precisions.normal_(0.0, 0.3)
    x = torch.rand(12, d, dtype=torch.float64)
    feats = field.encoding(x)
    net = field.network
    expected = direct_gaussian_sum(feats, net.centers, net.log_precisions, net.readout.weight, net.readout.bias)
    torch.testing.assert_close(field(x).values, expected, rtol=1e-10, atol=1e-12)


class _MaxNumel(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_n_by_k_by_f_intermediate():
    n, k, f = 512, 32, 16
    net = RBFConfig(n_kernels=k).setup(f, 3, 2)
    h = torch.randn(n, f, requires_grad=True)
    with _MaxNumel() as mode:
        net(h).sum().backward()
    assert mode.largest <= n * k < n * k * f


def test_kernels_run_in_fp32_under_autocast_and_gradients_flow():
    net = RBFConfig(n_kernels=5).setup(4, 2, 2)
    h = torch.randn(16, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        phi = net.kernels(h)
        y = net(h)
    assert phi.dtype == torch.float32 and y.dtype == torch.float32
    torch.testing.assert_close(phi, gaussian_rbf(h, net.centers, net.log_precisions))
    y.pow(2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    (group,) = RBFConfig(weight_decay=1e-4, lr_multiplier=2.0).setup(4, 2, 2).param_groups(1e-3)
    assert group["weight_decay"] == 1e-4 and group["lr"] == pytest.approx(2e-3) and group["name"] == "network.rbf"


def test_initial_kernels_are_isotropic_unit_variance():
    net = RBFConfig(n_kernels=4).setup(3, 1, 3)
    assert net.centers.abs().max() <= 1e-4 and torch.equal(net.log_precisions, torch.zeros(4, 3))
    f = torch.tensor([[1.0, 0.0, 0.0]])  # distance ≈ 1 from every centre → φ ≈ exp(−½)
    torch.testing.assert_close(net.kernels(f), torch.full((1, 4), float(torch.exp(torch.tensor(-0.5)))), rtol=1e-3, atol=1e-4)
