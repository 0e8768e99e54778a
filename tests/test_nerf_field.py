"""Radiance fields: SH basis against its definition, density/colour properties, capabilities, the one activation
table, and ``NerfModel`` (fields.radiance_model) as a teacher query."""

import copy

import numpy as np
import pytest
import torch

from fieldforge.fields.activations import ACTIVATIONS, activation_fn
from fieldforge.fields.capabilities import HasDensity, HasSDF, Queryable, Renderable
from fieldforge.fields.encodings import CoarseToFineFrequencyConfig, FrequencyEncodingConfig, SphericalHarmonicsEncodingConfig
from fieldforge.fields.encodings.spherical_harmonics import spherical_harmonics
from fieldforge.fields.field import FieldConfig, RadianceField, make_field
from fieldforge.fields.networks import MLPConfig, PINsConfig, RBFConfig
from fieldforge.fields.radiance import RadianceHeadConfig, density_activation
from fieldforge.fields.radiance_model import NerfModel, RenderConfig


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
    f = make_field(cfg, 3, bbox=box)
    assert type(f) is RadianceField and isinstance(f, Renderable) and isinstance(f, HasDensity)
    assert not isinstance(make_field(FieldConfig(), 2), HasDensity)  # capabilities only for radiance heads
    p = torch.rand(64, 3) * (box[1] - box[0]) + box[0]
    d = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    out = f(p, d)
    assert out.rgb.shape == (64, 3) and out.density.shape == (64,) and out.features.shape == (64, 7)
    assert bool((out.rgb > 0).all() and (out.rgb < 1).all()) and bool((out.density >= 0).all())
    assert torch.allclose(f.density(p), out.density)
    rgb2, _ = f.rgb_density(p, -d)
    assert not torch.allclose(rgb2, out.rgb)  # colour depends on the view direction
    rays, ri = torch.randn(5, 3), torch.randint(0, 5, (64,))  # directions per ray: encoded once, same values
    per_ray, per_ray_sigma = f.rgb_density(p, rays, ri)
    per_point, _ = f.rgb_density(p, rays[ri])
    assert torch.equal(per_ray, per_point) and torch.equal(per_ray_sigma, out.density.detach())
    assert f(p, None).rgb is None
    outside = torch.tensor([[5.0, 0.0, 0.0], [0.0, -3.0, 0.0]])
    assert torch.equal(f.density(outside), torch.zeros(2))
    (out.rgb.sum() + out.density.sum()).backward()
    assert f.radiance_head.color_network.layers[0].weight.grad.abs().sum() > 0
    assert f.network.layers[0].weight.grad.abs().sum() > 0
    names = {g["name"] for g in f.param_groups(1e-3)}
    assert any(n.startswith("radiance.") for n in names)


def test_one_activation_table_each_name_one_function():
    x = torch.linspace(-0.3, 0.3, 13, dtype=torch.float64)
    plain = torch.log1p(torch.exp(x))
    torch.testing.assert_close(activation_fn("softplus", x), plain)  # β = 1 everywhere
    torch.testing.assert_close(density_activation("softplus", x), plain)  # the density uses the same table
    torch.testing.assert_close(activation_fn("softplus_beta100", x), torch.log1p(torch.exp(100 * x)) / 100)
    assert len(set(ACTIVATIONS.values())) == len(ACTIVATIONS)  # no two names for one function, no name twice
    # A network config saved before the table said 'softplus' for β = 100: it is refused with the new name, never
    # silently read as β = 1 (the Literal types refuse it at construction; a YAML load bypasses them).
    for cfg, field_name, what in (
        (MLPConfig(), "activation", "softplus_beta100"),
        (PINsConfig(n_levels=1), "activation", "softplus_beta100"),
        (RBFConfig(), "output_activation", "output activation"),
        (RadianceHeadConfig(), "density_activation", "density activation"),
    ):
        object.__setattr__(cfg, field_name, "softplus_beta100" if field_name == "density_activation" else "softplus")
        with pytest.raises(ValueError, match=what):
            cfg.setup() if isinstance(cfg, RadianceHeadConfig) else cfg.setup(4, 1, 2)
    mlp = MLPConfig(width=8, n_hidden_layers=1, activation="softplus_beta100", backend="torch").setup(3, 1, 3).double()
    h = torch.rand(5, 3, dtype=torch.float64)
    w0, b0, w1, b1 = (t for layer in mlp.layers for t in (layer.weight, layer.bias))
    z = h @ w0.T + b0
    torch.testing.assert_close(mlp(h), (torch.log1p(torch.exp(100 * z)) / 100) @ w1.T + b1)


def _small_radiance(encoding=None) -> FieldConfig:
    return FieldConfig(
        encoding=encoding or FrequencyEncodingConfig(n_frequencies=3),
        network=MLPConfig(width=16, n_hidden_layers=1),
        head="radiance",
        radiance=RadianceHeadConfig(geo_feat_dim=4, color_network=MLPConfig(width=8, n_hidden_layers=1)),
    )


@pytest.mark.parametrize("contraction", [False, True])
def test_nerf_model_is_the_teacher_query_with_class_level_capabilities(contraction):
    torch.manual_seed(0)
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    model = NerfModel(_small_radiance(), box, RenderConfig(grid_resolution=4, steps_per_ray=16, contraction=contraction))
    for m in (model, copy.deepcopy(model)):
        assert isinstance(m, Queryable) and isinstance(m, Renderable) and isinstance(m, HasDensity) and not isinstance(m, HasSDF)
    assert all(name in vars(NerfModel) for name in ("forward", "density", "rgb_density"))
    p = torch.rand(32, 3) * 6 - 3  # inside and outside the scene box
    d = torch.nn.functional.normalize(torch.randn(32, 3), dim=-1)
    out = model(p, d)
    ref = model.field(model.to_field(p), d)
    assert torch.equal(out.rgb, ref.rgb) and torch.equal(out.density, ref.density) and torch.equal(out.features, ref.features)
    assert torch.equal(model.density(p), out.density)
    rgb, sigma = model.rgb_density(p, d)
    assert torch.equal(rgb, out.rgb) and torch.equal(sigma, out.density)
    assert model(p).rgb is None and model(p).density is not None
    if contraction:
        assert bool((model.to_field(p).abs() <= 2.0).all()) and bool((out.density > 0).any())  # all of space is inside
    else:
        assert torch.equal(model.to_field(p), p)
    c2w = torch.eye(4)
    c2w[2, 3] = 3.0  # on +z, looking down −z at the box
    rgb_img, depth, acc = model.render_image(c2w, torch.tensor([8.0, 8.0, 4.0, 3.0]), 8, 6, None, torch.ones(3), chunk=20)
    assert rgb_img.shape == (6, 8, 3) and depth.shape == acc.shape == (6, 8)


def test_nerf_model_update_passes_the_progress_to_its_field():
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    model = NerfModel(_small_radiance(CoarseToFineFrequencyConfig(n_frequencies=4)), box, RenderConfig(grid_resolution=4))
    model.update(0.3)
    assert float(model.field.encoding.progress) == 0.3
    assert "field.encoding.progress" in model.state_dict()
    with pytest.raises(ValueError, match="radiance"):
        NerfModel(FieldConfig(), box, RenderConfig())
