import torch

from fieldforge.fields.encodings import FourierEncodingConfig, IdentityEncodingConfig
from fieldforge.fields.field import Field, FieldConfig
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.outputs import FieldOutputs


def test_field_maps_world_box_to_unit_cube():
    bbox = torch.tensor([[-2.0, 0.0, 10.0], [2.0, 4.0, 12.0]])
    field = Field(FieldConfig(encoding=IdentityEncodingConfig(centre=False), head="value"), in_dim=3, out_dim=3, bbox=bbox)
    pts = torch.tensor([[-2.0, 0.0, 10.0], [2.0, 4.0, 12.0], [0.0, 2.0, 11.0]])
    torch.testing.assert_close(field.to_unit(pts), torch.tensor([[0.0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]]))


def test_rgb_head_is_sigmoid_of_network_and_scalar_heads_are_1d():
    torch.manual_seed(0)
    field = Field(FieldConfig(network=MLPConfig(width=16, n_hidden_layers=1)), in_dim=2, out_dim=3)
    x = torch.rand(10, 2)
    out = field(x)
    raw = field.network(field.encoding(x), x)
    torch.testing.assert_close(out.values, torch.sigmoid(raw))
    torch.testing.assert_close(out.rgb, out.values)
    sdf = Field(FieldConfig(head="sdf", network=MLPConfig(width=16, n_hidden_layers=1)), in_dim=3)(torch.rand(6, 3)).sdf
    assert sdf is not None and sdf.shape == (6,)


def test_query_chunked_equals_full_query_and_outputs_cat():
    torch.manual_seed(0)
    field = Field(FieldConfig(encoding=FourierEncodingConfig(n_features=8), network=MLPConfig(width=16)), in_dim=2)
    x = torch.rand(1000, 2)
    with torch.no_grad():
        full = field(x)
    chunked = field.query_chunked(x, chunk=97)
    torch.testing.assert_close(chunked.values, full.values)
    assert FieldOutputs.cat([full[:10], full[10:]]).values.shape == (1000, 3)


def test_update_hook_is_a_noop_for_static_encodings():
    torch.manual_seed(0)
    field = Field(FieldConfig(encoding=FourierEncodingConfig(n_features=8), network=MLPConfig(width=16)), in_dim=2)
    before = {k: v.clone() for k, v in field.state_dict().items()}
    field.update(5, torch.rand(4, 2), torch.rand(4))
    assert all(torch.equal(before[k], v) for k, v in field.state_dict().items())


def test_mlp_skip_connection_reinjects_input():
    mlp = MLPConfig(width=8, n_hidden_layers=3, skips=(2,)).setup(5, 1, 5)
    assert mlp.layers[2].in_features == 8 + 5
    assert mlp(torch.rand(3, 5)).shape == (3, 1)
