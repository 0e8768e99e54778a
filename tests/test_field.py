"""Fields: the world box, the heads, chunked queries, the update hook, the MLP skip, and capabilities by class."""

import copy
import pickle

import pytest
import torch
from torch import nn

from fieldforge.fields import unwrap
from fieldforge.fields.capabilities import HasDensity, HasSDF, Queryable, Renderable
from fieldforge.fields.encodings import FourierEncodingConfig, IdentityEncodingConfig
from fieldforge.fields.field import FIELD_CLASSES, Field, FieldConfig, RadianceField, SDFField, make_field
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.outputs import FieldOutputs
from fieldforge.fields.radiance import RadianceHeadConfig

SMALL = MLPConfig(width=16, n_hidden_layers=1)


def test_field_maps_world_box_to_unit_cube():
    bbox = torch.tensor([[-2.0, 0.0, 10.0], [2.0, 4.0, 12.0]])
    field = make_field(FieldConfig(encoding=IdentityEncodingConfig(centre=False), head="value"), in_dim=3, out_dim=3, bbox=bbox)
    pts = torch.tensor([[-2.0, 0.0, 10.0], [2.0, 4.0, 12.0], [0.0, 2.0, 11.0]])
    torch.testing.assert_close(field.to_unit(pts), torch.tensor([[0.0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]]))


def test_rgb_head_is_sigmoid_of_network_and_scalar_heads_are_1d():
    torch.manual_seed(0)
    field = make_field(FieldConfig(network=SMALL), in_dim=2, out_dim=3)
    x = torch.rand(10, 2)
    out = field(x)
    raw = field.network(field.encoding(x), x)
    torch.testing.assert_close(out.values, torch.sigmoid(raw))
    torch.testing.assert_close(out.rgb, out.values)
    sdf_field = make_field(FieldConfig(head="sdf", network=SMALL), in_dim=3)
    p = torch.rand(6, 3)
    sdf = sdf_field(p).sdf
    assert sdf is not None and sdf.shape == (6,)
    torch.testing.assert_close(sdf_field.signed_distance(p), sdf)
    occ = make_field(FieldConfig(head="occupancy", network=SMALL), in_dim=3)(p).occupancy_logit
    assert occ is not None and occ.shape == (6,)


def test_query_chunked_equals_full_query_and_outputs_cat():
    torch.manual_seed(0)
    field = make_field(FieldConfig(encoding=FourierEncodingConfig(n_features=8), network=MLPConfig(width=16)), in_dim=2)
    x = torch.rand(1000, 2)
    with torch.no_grad():
        full = field(x)
    chunked = field.query_chunked(x, chunk=97)
    torch.testing.assert_close(chunked.values, full.values)
    assert FieldOutputs.cat([full[:10], full[10:]]).values.shape == (1000, 3)


def test_update_hook_is_a_noop_for_static_encodings():
    torch.manual_seed(0)
    field = make_field(FieldConfig(encoding=FourierEncodingConfig(n_features=8), network=MLPConfig(width=16)), in_dim=2)
    before = {k: v.clone() for k, v in field.state_dict().items()}
    field.update(0.5, torch.rand(4, 2), torch.rand(4))
    assert all(torch.equal(before[k], v) for k, v in field.state_dict().items())
    with pytest.raises(ValueError, match="progress"):
        field.update(5.0)  # a step count where the progress (step / steps) belongs


def test_mlp_skip_connection_feeds_the_next_layer_hidden_then_input():
    """Layer ``s`` of an MLP with ``skips=(s,)`` sees ``concat(hidden, network input)``, in that order."""
    torch.manual_seed(0)
    mlp = MLPConfig(width=8, n_hidden_layers=3, skips=(2,), backend="torch").setup(5, 1, 5).double()
    assert mlp.layers[2].in_features == 8 + 5
    h = torch.rand(7, 5, dtype=torch.float64)
    # float64 reference forward, written out
    relu = torch.relu
    lin = [(layer.weight, layer.bias) for layer in mlp.layers]
    x = relu(h @ lin[0][0].T + lin[0][1])
    x = relu(x @ lin[1][0].T + lin[1][1])
    x = relu(torch.cat([x, h], dim=-1) @ lin[2][0].T + lin[2][1])
    torch.testing.assert_close(mlp(h), x @ lin[3][0].T + lin[3][1], rtol=0, atol=1e-12)
    # Known weights: layer 2 reads only its last 5 inputs (the re-injected input), so the output is Σ h.
    with torch.no_grad():
        mlp.layers[2].weight.zero_()
        mlp.layers[2].weight[:5, 8:] = torch.eye(5, dtype=torch.float64)
        mlp.layers[2].bias.zero_()
        mlp.layers[3].weight.zero_()
        mlp.layers[3].weight[0, :5] = 1.0
        mlp.layers[3].bias.zero_()
    torch.testing.assert_close(mlp(h)[:, 0], h.sum(-1), rtol=0, atol=1e-12)  # h ≥ 0, so relu(h) = h


# -- capabilities by class -----------------------------------------------------------------------------

HEADS = {
    "rgb": FieldConfig(network=SMALL),
    "value": FieldConfig(network=SMALL, head="value"),
    "occupancy": FieldConfig(network=SMALL, head="occupancy"),
    "sdf": FieldConfig(network=SMALL, head="sdf"),
    "radiance": FieldConfig(
        network=SMALL, head="radiance", radiance=RadianceHeadConfig(geo_feat_dim=3, color_network=MLPConfig(width=8, n_hidden_layers=1))
    ),
}


def wrapped(field: nn.Module) -> list[nn.Module]:
    """The field inside DataParallel (CPU: a plain pass-through), torch.compile (lazy: nothing compiles here), both."""
    return [nn.DataParallel(field), torch.compile(field), nn.DataParallel(torch.compile(field))]


@pytest.mark.parametrize("head", sorted(HEADS))
def test_capabilities_are_declared_by_the_class_and_survive_copies_and_wrappers(head):
    torch.manual_seed(0)
    field = make_field(HEADS[head], in_dim=3)
    assert type(field) is FIELD_CLASSES[head]
    expected = {HasSDF: head == "sdf", HasDensity: head == "radiance", Renderable: head == "radiance", Queryable: True}
    copies = [field, copy.deepcopy(field), pickle.loads(pickle.dumps(field))]
    for f in copies + [unwrap(w) for w in wrapped(field)]:
        for proto, has in expected.items():
            assert isinstance(f, proto) is has, (head, type(f).__name__, proto.__name__)
    cls = FIELD_CLASSES[head]  # the class itself declares the methods (nothing is bound per instance)
    assert hasattr(cls, "signed_distance") is expected[HasSDF]
    assert hasattr(cls, "density") is hasattr(cls, "rgb_density") is expected[HasDensity]
    assert not {"signed_distance", "density", "rgb_density"} & set(vars(field))
    for w in wrapped(field):
        assert unwrap(w) is field
    p = torch.rand(5, 3)
    if head == "sdf":
        torch.testing.assert_close(copies[1].signed_distance(p), field.signed_distance(p))
    if head == "radiance":
        torch.testing.assert_close(copies[2].density(p), field.density(p))


def test_unwrap_is_recursive_and_leaves_plain_modules():
    field = make_field(HEADS["rgb"], in_dim=2)
    assert unwrap(field) is field
    assert unwrap(nn.DataParallel(nn.DataParallel(torch.compile(field)))) is field


def test_the_factory_picks_the_class_and_classes_refuse_other_heads():
    assert [type(make_field(HEADS[h], 3)).__name__ for h in ("rgb", "sdf", "radiance")] == ["Field", "SDFField", "RadianceField"]
    assert type(HEADS["sdf"].setup(3)) is SDFField  # FieldConfig.setup is the same factory
    with pytest.raises(ValueError, match="make_field"):
        Field(HEADS["sdf"], in_dim=3)  # the base class has no signed_distance: it refuses the head
    with pytest.raises(ValueError, match="make_field"):
        SDFField(HEADS["rgb"], in_dim=3)
    with pytest.raises(ValueError, match="3D"):
        RadianceField(HEADS["radiance"], in_dim=2)
