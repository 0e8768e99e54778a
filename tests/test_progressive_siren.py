"""SIREN: forward equals the closed form, initialization follows Sitzmann et al., ω₀ sets the frequency content."""

import math

import numpy as np
import torch

from fieldforge.fields.fresh import spectrum
from fieldforge.fields.networks.siren import SirenConfig


def test_forward_is_sine_layers_then_linear():
    net = SirenConfig(width=16, n_hidden_layers=2, first_omega=25.0, hidden_omega=15.0).setup(2, 3, 2)
    x = torch.rand(7, 2, dtype=torch.float32) * 2 - 1
    Ws = [(layer.weight.double(), layer.bias.double()) for layer in net.layers]
    h = x.double()
    for (W, b), omega in zip(Ws[:-1], (25.0, 15.0)):
        h = torch.sin(omega * (h @ W.T + b))
    expected = h @ Ws[-1][0].T + Ws[-1][1]
    torch.testing.assert_close(net(x).double(), expected, atol=1e-5, rtol=0)


def test_initialization_bounds_and_unit_preactivations():
    torch.manual_seed(0)
    net = SirenConfig(width=256, n_hidden_layers=3, hidden_omega=30.0).setup(2, 3, 2)
    first = net.layers[0].weight.detach()
    assert float(first.abs().max()) <= 1 / 2 and float(first.abs().max()) > 0.45  # U(−1/n, 1/n), n = 2
    for layer in net.layers[1:]:
        bound = math.sqrt(6 / layer.in_features) / 30.0
        w = layer.weight.detach().abs().max()
        assert float(w) <= bound and float(w) > 0.95 * bound
    # Sitzmann et al.: with this init the weight part of the hidden pre-activations, ω·Wx, has std ≈ 1
    # (sin outputs have variance 1/2, Var(W) = 2/(ω²n)); biases keep PyTorch's default, as in the official code.
    with torch.no_grad():
        x = torch.rand(4096, 2) * 2 - 1
        h = torch.sin(30.0 * net.layers[0](x))
        pre = 30.0 * h @ net.layers[1].weight.T
    assert 0.85 < float(pre.std()) < 1.15


def test_larger_first_omega_shifts_the_untrained_spectrum_up():
    side = 64
    u = (torch.arange(side) + 0.5) / side * 2 - 1
    grid = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    centroids = []
    for omega in (5.0, 30.0, 120.0):
        torch.manual_seed(0)
        net = SirenConfig(width=64, n_hidden_layers=2, first_omega=omega).setup(2, 1, 2)
        with torch.no_grad():
            img = net(grid).reshape(side, side, 1)
        s = spectrum(img, crop=None).numpy()
        centroids.append(float((np.arange(len(s)) * s).sum() / s.sum()))
    assert centroids[0] < centroids[1] < centroids[2], centroids
