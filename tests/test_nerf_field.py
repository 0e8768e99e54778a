"""Radiance head on Field: SH basis against its definition, density/colour properties, capabilities."""

import numpy as np
import pytest
import torch

from fieldforge.fields.capabilities import HasDensity, Renderable
from fieldforge.fields.encodings import FrequencyEncodingConfig, SphericalHarmonicsEncodingConfig
from fieldforge.fields.encodings.spherical_harmonics import spherical_harmonics
from fieldforge.fields.field import Field, FieldConfig
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.radiance import RadianceHeadConfig


def test_spherical_harmonics_are_orthonormal_on_the_sphere():
    # Gauss–Legendre in cos θ × uniform φ integrates these polynomials (degree ≤ 6) exactly
    x, w = np.polynomial.legendre.leggauss(12)
    phi = (np.arange(24) + 0.5) * 2 * np.pi / 24
    ct, ph = np.meshgrid(x, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    d = torch.from_numpy(np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1).reshape(-1, 3))
    weights = torch.from_numpy((w[:, None] * np.full(24, 2 * np.pi / 24)[None]).reshape(-1))
    y = spherical_harmonics(d, 4)
    gram = (y * weights[:, None]).T @ y
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=1e-12)
    # a few closed forms: Y_0^0 = 1/(2√π), Y_1^0 = √(3/4π) z
    assert torch.allclose(y[:, 0], torch.full_like(y[:, 0], 0.5 / np.sqrt(np.pi)))
    assert torch.allclose(y[:, 2], np.sqrt(3 / (4 * np.pi)) * d[:, 2])


def test_sh_encoding_takes_unit_cube_directions():
    enc = SphericalHarmonicsEncodingConfig(degree=3).setup(3)
    d = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    assert enc.out_dim == 9 and torch.allclose(enc((d + 1) / 2), spherical_harmonics(d, 3), atol=1e-6)


@pytest.mark.parametrize("act", ["trunc_exp", "softplus", "relu"])
def test_radiance_field_outputs_and_capabilities(act):
    torch.manual_seed(0)
    cfg = FieldConfig(
        encoding=FrequencyEncodingConfig(n_frequencies=4),
        network=MLPConfig(width=32, n_hidden_layers=2),
        head="radiance",
        radiance=RadianceHeadConfig(density_activation=act, geo_feat_dim=7, color_network=MLPConfig(width=16, n_hidden_layers=1)),
    )
    box = torch.tensor([[-1.0, -2.0, -1.0], [1.0, 2.0, 3.0]])
    f = Field(cfg, 3, bbox=box)
    assert isinstance(f, Renderable) and isinstance(f, HasDensity)
    assert not isinstance(Field(FieldConfig(), 2), HasDensity)  # capabilities only for radiance heads
    p = torch.rand(64, 3) * (box[1] - box[0]) + box[0]
    d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    out = f(p, d)
    assert out.rgb.shape == (64, 3) and out.density.shape == (64,) and out.features.shape == (64, 7)
    assert bool((out.rgb > 0).all() and (out.rgb < 1).all()) and bool((out.density >= 0).all())
    assert torch.allclose(f.density(p), out.density)
    rgb2, _ = f.rgb_density(p, -d)
    assert not torch.allclose(rgb2, out.rgb)  # colour depends on the view direction
    assert f(p, None).rgb is None
    outside = torch.tensor([[5.0, 0.0, 0.0], [0.0, -3.0, 0.0]])
    assert torch.equal(f.density(outside), torch.zeros(2))
    (out.rgb.sum() + out.density.sum()).backward()
    assert f.radiance_head.color_network.layers[0].weight.grad.abs().sum() > 0
    assert f.network.layers[0].weight.grad.abs().sum() > 0
    names = {g["name"] for g in f.param_groups(1e-3)}
    assert any(n.startswith("radiance.") for n in names)
