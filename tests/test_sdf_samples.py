"""Training samples and losses for shapes, checked against analytic spheres and brute-force references."""

import math

import numpy as np
import open3d as o3d
import pytest
import torch

from fieldforge.data.pointclouds import (
    MeshDistance,
    SDFSampler,
    SurfaceSampler,
    load_surface,
    mesh_sdf_samples,
    pseudo_occupancy,
)
from fieldforge.data.synthetic import AnalyticShape
from fieldforge.fields.encodings import ENCODING_CONFIGS, FourierEncodingConfig
from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig
from fieldforge.fields.field import FieldConfig, make_field
from fieldforge.fields.losses import (
    eikonal_per_sample,
    implicit_surface_loss,
    occupancy_bce_per_sample,
    sdf_l1_per_sample,
    spatial_gradient,
)
from fieldforge.fields.networks import MLPConfig


CENTRE = np.array([1.0, 2.0, -0.5])
RADIUS = 0.75
RES = 80


@pytest.fixture(scope="module")
def sphere_cloud(tmp_path_factory):
    path = tmp_path_factory.mktemp("sphere") / "sphere.ply"
    m = o3d.geometry.TriangleMesh.create_sphere(RADIUS, RES)
    m.translate(CENTRE)
    assert o3d.io.write_triangle_mesh(str(path), m)
    return load_surface(path, padding=0.1)


def _analytic_unit_sdf(cloud, pts: torch.Tensor) -> torch.Tensor:
    """Exact sphere SDF in unit-cube units (the normalization scales distances by ``scale``)."""
    c = torch.from_numpy(cloud.normalization.apply(CENTRE[None]))[0]
    return (pts.double() - c).norm(dim=-1) - RADIUS * cloud.normalization.scale


def test_mesh_sdf_samples_of_a_sphere_match_the_analytic_distance(sphere_cloud):
    s = mesh_sdf_samples(sphere_cloud, 40_000, sigmas=(0.002, 0.01, 0.05), uniform_fraction=0.25, seed=0)
    exact = _analytic_unit_sdf(sphere_cloud, s.points)
    # The mesh is a polyhedron inscribed in the sphere: its distance differs by at most the chord sagitta.
    r_unit = RADIUS * sphere_cloud.normalization.scale
    sagitta = r_unit * (1 - math.cos(math.pi / RES)) * 2
    err = (s.sdf.double() - exact).abs()
    assert float(err.max()) < sagitta + 1e-5, float(err.max())
    assert torch.equal(s.occupancy.bool(), s.sdf < 0)
    clear = exact.abs() > sagitta
    assert torch.equal((s.sdf < 0)[clear], (exact < 0)[clear])  # signs exact wherever the polyhedron does not decide
    # The pool is near-surface with the requested spread plus a uniform quarter.
    assert float((exact.abs() < 0.01).double().mean()) > 0.35
    assert float(s.points.min()) >= 0.0 and float(s.points.max()) <= 1.0


def test_mesh_distance_sign_is_deterministic_and_inside_is_negative(sphere_cloud):
    md = MeshDistance(sphere_cloud.points, sphere_cloud.triangles, sign_rays=5)
    c = torch.from_numpy(sphere_cloud.normalization.apply(CENTRE[None])).float()
    pts = torch.cat([c, torch.tensor([[0.0, 0.0, 0.0]])])
    d1, d2 = md.signed_distance(pts), md.signed_distance(pts)
    assert torch.equal(d1, d2)
    assert float(d1[0]) == pytest.approx(-RADIUS * sphere_cloud.normalization.scale, rel=2e-3)
    assert float(d1[1]) > 0


def test_pseudo_occupancy_from_oriented_points_matches_the_sphere():
    shape = AnalyticShape("sphere")
    surf, nrm = shape.sample_surface(20_000, seed=1)
    q = torch.rand(5000, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 1.6 - 0.8
    occ, sdf = pseudo_occupancy(q.float(), surf.float(), nrm.float())
    exact = shape.sdf(q)
    clear = exact.abs() > 0.02
    assert torch.equal(occ.bool()[clear], (exact < 0)[clear])
    assert float((sdf.double() - exact).abs().max()) < 0.02  # nearest-point distance of a dense sample


def test_surface_sampler_targets_and_resumable_state():
    shape = AnalyticShape("sphere")
    surf, nrm = shape.sample_surface(20_000, seed=3)
    pts = (surf * 0.6 + 0.5).float()
    sampler = SurfaceSampler(pts, nrm.float(), batch_size=4000, surface_size=500, sigmas=(0.002, 0.01, 0.04), uniform_fraction=0.25, seed=7)
    state = sampler.state_dict()
    b1 = sampler.sample()
    assert b1.surface.shape == (500, 3) and b1.normals.shape == (500, 3) and b1.points.shape == (4000, 3)
    exact = (b1.points.double() - 0.5).norm(dim=-1) - 0.3
    err = (b1.sdf.double() - exact).abs()
    plane = (torch.arange(3000) % 3) < 2  # σ = 0.002, 0.01: tangent plane of the nearest point
    assert float(err[:3000][plane].mean()) < 1e-3
    assert float(err.max()) < 0.01  # σ = 0.04 and uniform points: distance to the nearest point
    clear = exact.abs() > 0.005
    assert torch.equal((b1.sdf < 0)[clear], (exact < 0)[clear])
    sampler.load_state_dict(state)
    b2 = sampler.sample()
    assert torch.equal(b1.points, b2.points) and torch.equal(b1.surface, b2.surface) and torch.equal(b1.sdf, b2.sdf)


def test_sdf_sampler_draws_from_the_pool_reproducibly(sphere_cloud):
    s = mesh_sdf_samples(sphere_cloud, 5000, seed=0)
    a = SDFSampler(s, 512, seed=3)
    state = a.state_dict()
    p1, d1, o1 = a.sample()
    a.load_state_dict(state)
    p2, d2, o2 = a.sample()
    assert torch.equal(p1, p2) and torch.equal(d1, d2) and torch.equal(o1, o2)
    idx = torch.cdist(p1[:20].double(), s.points.double()).argmin(dim=1)
    assert torch.equal(d1[:20], s.sdf[idx])


# -- losses -------------------------------------------------------------------------------------------------


def test_sdf_losses_against_closed_forms():
    pred = torch.tensor([0.3, -0.02, 0.01, -0.5])
    target = torch.tensor([0.1, -0.01, -0.01, 0.2])
    assert torch.allclose(sdf_l1_per_sample(pred, target), torch.tensor([0.2, 0.01, 0.02, 0.7]))
    assert torch.allclose(sdf_l1_per_sample(pred, target, clamp=0.05), torch.tensor([0.0, 0.01, 0.02, 0.1]))
    logits, occ = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([1.0, 1.0, 0.0])
    expect = -(occ * torch.log(torch.sigmoid(logits)) + (1 - occ) * torch.log(1 - torch.sigmoid(logits)))
    assert torch.allclose(occupancy_bce_per_sample(logits, occ), expect)


def test_spatial_gradient_and_eikonal_of_an_exact_sdf_are_exact():
    shape = AnalyticShape("torus")
    x = (torch.rand(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5).requires_grad_(True)
    g = spatial_gradient(shape.sdf(x), x)
    h = 1e-6
    fd = torch.stack([(shape.sdf(x.detach() + h * e) - shape.sdf(x.detach() - h * e)) / (2 * h) for e in torch.eye(3, dtype=torch.float64)], -1)
    assert torch.allclose(g, fd, atol=1e-6)
    assert float(eikonal_per_sample(g.detach()).max()) < 1e-12


def test_implicit_loss_vanishes_except_off_surface_for_the_exact_sdf():
    shape = AnalyticShape("sphere")
    surf, nrm = shape.sample_surface(300, seed=0)
    off = torch.rand(200, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5
    near = surf[:100] + 0.01 * torch.randn(100, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = implicit_surface_loss(shape.sdf, surf, nrm, off, shape.sdf(off), near, shape.sdf(near), off_surface_alpha=100.0, off_surface_weight=2.0)
    expected_off = 2.0 * torch.exp(-100.0 * shape.sdf(off).abs()).mean()
    assert float(out.loss) == pytest.approx(float(expected_off), rel=1e-6)  # losses compute in float32
    assert out.terms["surface"] < 1e-7 and out.terms["normal"] < 1e-6 and out.terms["eikonal"] < 1e-6 and out.terms["distance"] < 1e-7
    assert out.per_sample.shape == (600,)


def _eikonal_param_grad_check(config: FieldConfig) -> None:
    """d/dθ of an eikonal + normal loss by autograd (double backward) vs central differences, in float64."""
    torch.manual_seed(0)
    field = make_field(config, in_dim=3).double()
    shape = AnalyticShape("sphere")
    surf, nrm = shape.sample_surface(64, seed=0)
    surf = surf * 0.3 + 0.5
    off = torch.rand(64, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss_fn() -> torch.Tensor:
        return implicit_surface_loss(field.signed_distance, surf, nrm, off, surface_weight=0.0, off_surface_weight=0.0).loss

    params = [p for p in field.parameters() if p.requires_grad]
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params)
    assert all(torch.isfinite(g).all() for g in grads)
    checked = 0
    for p, g in zip(params, grads):
        flat, gflat = p.data.view(-1), g.reshape(-1)  # the loss itself needs autograd: perturb .data
        for i in torch.topk(gflat.abs(), min(2, gflat.numel())).indices.tolist():
            old = float(flat[i])
            flat[i] = old + 1e-6
            up = float(loss_fn())
            flat[i] = old - 1e-6
            down = float(loss_fn())
            flat[i] = old
            fd = (up - down) / 2e-6
            assert float(gflat[i]) == pytest.approx(fd, rel=1e-4, abs=1e-7), (p.shape, i)
            checked += 1
    assert checked == sum(min(2, p.numel()) for p in params)


@pytest.mark.parametrize(
    "encoding",
    [FourierEncodingConfig(sigma=2.0, n_features=16, include_input=True), HashGridEncodingConfig(n_levels=4, log2_table_size=8, max_resolution=32)],
    ids=["fourier", "hashgrid"],
)
def test_eikonal_training_gradient_is_exact_through_the_encoding(encoding):
    cfg = FieldConfig(encoding=encoding, network=MLPConfig(width=16, n_hidden_layers=2, activation="softplus_beta100"), head="sdf")
    _eikonal_param_grad_check(cfg)


@pytest.mark.parametrize("cls", ENCODING_CONFIGS, ids=lambda c: c.__name__)
def test_every_encoding_supports_double_backward(cls):
    """The implicit loss must train every 3D encoding (finite, non-zero parameter gradients)."""
    if cls.__name__.startswith("SphericalHarmonics"):
        pytest.skip("spherical harmonics encode view directions, not positions")
    kwargs = {"n_features": 16} if "Fourier" in cls.__name__ or cls.__name__ == "SAPEConfig" else {}
    if cls is HashGridEncodingConfig:
        kwargs = {"n_levels": 4, "log2_table_size": 8, "max_resolution": 32}
    if cls.__name__ == "SAPEConfig":
        kwargs["grid_resolution"] = 8
    field = make_field(FieldConfig(encoding=cls(**kwargs), network=MLPConfig(width=16, n_hidden_layers=2), head="sdf"), in_dim=3)
    surf = torch.rand(64, 3)
    nrm = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    loss = implicit_surface_loss(field.signed_distance, surf, nrm, torch.rand(64, 3)).loss
    loss.backward()
    grads = [p.grad for p in field.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().max()) > 0 for g in grads)
