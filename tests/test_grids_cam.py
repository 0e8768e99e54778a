"""CAM and the dense/plane grid helpers: identity at init, modulation formula against a reference, the
tri-plane shift trains, optimizer groups; 1D/2D/3D grids."""

import pytest
import torch
import torch.nn.functional as F

from fieldforge.fields.encodings import FourierEncodingConfig, HashGridEncodingConfig
from fieldforge.fields.encodings.grids import plane_pairs, sample_grid, sample_grid_reference, sample_planes
from fieldforge.fields.field import FieldConfig, make_field
from fieldforge.fields.networks import CAMConfig, MLPConfig

SMALL_MLP = MLPConfig(width=16, n_hidden_layers=3)


@pytest.mark.parametrize("k,res", [(1, (5,)), (2, (4, 7)), (3, (3, 5, 4))])
def test_sample_grid_matches_corner_loop(k, res):
    gen = torch.Generator().manual_seed(k)
    grid = torch.randn(3, *res[::-1], generator=gen, dtype=torch.float64)  # storage: reversed axis order
    u = torch.rand(40, k, generator=gen, dtype=torch.float64)
    u[0], u[1] = 0.0, 1.0
    torch.testing.assert_close(sample_grid(grid, u), sample_grid_reference(grid, u), rtol=1e-12, atol=1e-12)
    # align-corners: the vertex (i_0, …) sits at u = i / (R − 1)
    idx = [r - 2 for r in res]
    vert = torch.tensor([[i / (r - 1) for i, r in zip(idx, res)]], dtype=torch.float64)
    torch.testing.assert_close(sample_grid(grid, vert)[0], grid[(slice(None), *idx[::-1])])


def test_sample_planes_matches_per_plane_reference():
    gen = torch.Generator().manual_seed(3)
    planes = torch.randn(3, 2, 6, 6, generator=gen, dtype=torch.float64)
    u = torch.rand(30, 3, generator=gen, dtype=torch.float64)
    pairs = plane_pairs(3)
    out = sample_planes(planes, u, pairs)
    for i, (a, b) in enumerate(pairs):
        torch.testing.assert_close(out[i], sample_grid_reference(planes[i], u[:, [a, b]]), rtol=1e-12, atol=1e-12)


def _mlp_reference(net, h, norm: bool, gamma=None, beta=None):
    """The un-modulated MLP (optionally with layer norm and given per-layer γ, β) written out by hand."""
    x = h
    for i, layer in enumerate(net.mlp.layers[:-1]):
        z = layer(x)
        if norm:
            z = (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, unbiased=False, keepdim=True) + 1e-5)
        if gamma is not None:
            z = gamma[:, i] * z + beta[:, i]
        x = F.relu(z)
    return net.mlp.layers[-1](x)


@pytest.mark.parametrize("d,kind", [(2, "auto"), (3, "auto"), (3, "dense")])
def test_cam_at_init_equals_its_mlp(d, kind):
    torch.manual_seed(0)
    net = CAMConfig(mlp=SMALL_MLP, norm="none", grid_kind=kind, grid_resolution=(8,)).setup(10, 3, d)
    h, coords = torch.randn(50, 10), torch.rand(50, d)
    torch.testing.assert_close(net(h, coords), net.mlp(h), rtol=0, atol=0)
    layer_net = CAMConfig(mlp=SMALL_MLP, norm="layer", grid_kind=kind, grid_resolution=(8,)).setup(10, 3, d)
    torch.testing.assert_close(layer_net(h, coords), _mlp_reference(layer_net, h, norm=True), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("d,per_channel", [(2, False), (2, True), (3, False), (3, True)])
def test_cam_modulation_formula(d, per_channel):
    torch.manual_seed(1)
    net = CAMConfig(mlp=SMALL_MLP, per_channel=per_channel, grid_resolution=(5,)).setup(7, 2, d).double()
    with torch.no_grad():
        net.scale_grid.normal_(0.0, 0.5)
        net.shift_grid.normal_(0.0, 0.5)
    h, coords = torch.randn(20, 7, dtype=torch.float64), torch.rand(20, d, dtype=torch.float64)
    c = net.n_layers * net.channels
    if net.kind == "dense":
        gamma = 1 + sample_grid_reference(net.scale_grid.detach(), coords)
        beta = sample_grid_reference(net.shift_grid.detach(), coords)
    else:  # tri-plane: γ = product of (1 + plane sample), β = sum of the plane samples
        gamma = torch.ones(20, c, dtype=torch.float64)
        beta = torch.zeros(20, c, dtype=torch.float64)
        for i, (a, b) in enumerate(plane_pairs(3)):
            gamma = gamma * (1 + sample_grid_reference(net.scale_grid[i].detach(), coords[:, [a, b]]))
            beta = beta + sample_grid_reference(net.shift_grid[i].detach(), coords[:, [a, b]])
    shape = (20, net.n_layers, net.channels)
    expected = _mlp_reference(net, h, norm=True, gamma=gamma.reshape(shape), beta=beta.reshape(shape))
    torch.testing.assert_close(net(h, coords), expected, rtol=1e-10, atol=1e-10)


def test_triplane_shift_trains_from_init():
    """The NerfAcc bug: β = product of zero-initialized planes never receives gradient. Ours (a sum) does."""
    torch.manual_seed(2)
    net = CAMConfig(mlp=SMALL_MLP, grid_resolution=(6,)).setup(5, 1, 3)
    assert net.kind == "planes"
    net(torch.randn(200, 5), torch.rand(200, 3)).pow(2).sum().backward()
    for i in range(3):
        assert net.shift_grid.grad[i].abs().sum() > 0, f"shift plane {i} got no gradient"
        assert net.scale_grid.grad[i].abs().sum() > 0, f"scale plane {i} got no gradient"


def test_grid_axes_subset_and_param_groups():
    net = CAMConfig(mlp=SMALL_MLP, grid_axes=(2,), grid_resolution=(5,), grid_weight_decay=0.0).setup(4, 1, 3)
    assert net.scale_grid.shape == (3, 5) and net.kind == "dense"
    with torch.no_grad():
        net.shift_grid[:, 4] = 3.0  # shift only where coords[:, 2] = 1
    h = torch.randn(6, 4)
    lo, hi = torch.rand(6, 3), torch.rand(6, 3)
    lo[:, 2], hi[:, 2] = 0.0, 1.0
    same_xy = torch.rand(6, 3)
    same_xy[:, 2] = 0.0
    torch.testing.assert_close(net(h, lo), net(h, same_xy))  # axes 0 and 1 are ignored
    assert not torch.allclose(net(h, lo), net(h, hi))
    groups = {g["name"]: g for g in net.param_groups(1e-3)}
    assert groups["network.cam_grids"]["lr"] == pytest.approx(1e-2) and groups["network.cam_grids"]["weight_decay"] == 0.0
    assert groups["network"]["lr"] == 1e-3 and "weight_decay" not in groups["network"]
    n_params = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n_params == sum(p.numel() for p in net.parameters())
    with pytest.raises(ValueError):
        net(h)


@pytest.mark.parametrize("encoding", [FourierEncodingConfig(n_features=8), HashGridEncodingConfig(n_levels=2, log2_table_size=8)])
def test_cam_composes_with_any_encoding_in_a_field(encoding):
    cfg = FieldConfig(encoding=encoding, network=CAMConfig(mlp=SMALL_MLP, grid_resolution=(4,)), head="sdf")
    field = make_field(cfg, in_dim=3, bbox=torch.tensor([[-1.0] * 3, [1.0] * 3]))
    pts = torch.rand(9, 3) * 2 - 1
    unit = (pts + 1) / 2
    torch.testing.assert_close(field(pts).sdf, field.network(field.encoding(unit), unit)[:, 0])
    names = [g["name"] for g in field.param_groups(1e-3)]
    assert "network.cam_grids" in names and len(names) == len(set(names))
