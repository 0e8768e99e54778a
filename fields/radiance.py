"""The radiance-field head of ``RadianceField`` (``head="radiance"``): density + view-dependent colour.

The field's position network outputs ``1 + geo_feat_dim`` values per point: a raw density and a geometry
feature. Density is ``act(raw)`` (``trunc_exp`` as in instant-ngp, ``softplus`` (β = 1) or ``relu`` as in
NeRF; the names of the one activation table, ``fieldforge.fields.activations``), and zero
outside the field's box. Colour is ``sigmoid(color_net([dir_enc(d), geo_feat]))`` with a direction
encoding of the unit view direction (spherical harmonics or frequency PE), as in instant-ngp and NeRF.
"""

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.activations import DENSITY_ACTIVATIONS, DensityActivation, activation_fn, check_activation
from fieldforge.fields.encodings import AnyEncodingConfig
from fieldforge.fields.encodings.spherical_harmonics import SphericalHarmonicsEncodingConfig
from fieldforge.fields.networks import AnyNetworkConfig, MLPConfig
from fieldforge.fields.outputs import FieldOutputs


def density_activation(name: str, raw: Tensor) -> Tensor:
    """σ = act(raw) for a density activation name (one of ``DENSITY_ACTIVATIONS``, from the one table)."""
    check_activation(name, DENSITY_ACTIVATIONS, "density activation")
    return activation_fn(name, raw)


@dataclass(frozen=True)
class RadianceHeadConfig:
    """Density activation and view-dependent colour branch (used when ``head='radiance'``)."""

    density_activation: DensityActivation = "trunc_exp"
    """σ = act(raw): 'trunc_exp' (instant-ngp), 'softplus' (β=1) or 'relu' (NeRF)."""
    density_bias: float = 0.0
    """Added to the raw density before the activation (negative values start the field emptier)."""
    geo_feat_dim: int = 15
    """Geometry features passed from the position network to the colour branch."""
    direction_encoding: AnyEncodingConfig = dataclasses.field(default_factory=SphericalHarmonicsEncodingConfig)
    """Encoding of the unit view direction (given as (d+1)/2 in the unit cube)."""
    color_network: AnyNetworkConfig = dataclasses.field(default_factory=lambda: MLPConfig(width=64, n_hidden_layers=2))
    """Colour branch: [direction encoding, geometry feature] → rgb logits."""

    def setup(self) -> "RadianceHead":
        return RadianceHead(self)


class RadianceHead(nn.Module):
    def __init__(self, config: RadianceHeadConfig) -> None:
        super().__init__()
        check_activation(config.density_activation, DENSITY_ACTIVATIONS, "density activation")
        self.config = config
        self.direction_encoding = config.direction_encoding.setup(3)
        self.color_network = config.color_network.setup(self.direction_encoding.out_dim + config.geo_feat_dim, 3, 3)

    @property
    def raw_dim(self) -> int:
        """Outputs the position network must produce: raw density + geometry feature."""
        return 1 + self.config.geo_feat_dim

    def density(self, unit: Float[Tensor, "n 3"], raw: Float[Tensor, "n r"]) -> tuple[Tensor, Tensor]:
        """``(σ (n,), σ_raw (n,))``; σ is zero outside the unit cube."""
        return self.sigma(unit, raw[:, 0])

    def sigma(self, unit: Float[Tensor, "n 3"], raw_density: Float[Tensor, " n"]) -> tuple[Tensor, Tensor]:
        """``(σ (n,), σ_raw (n,))`` from the position network's raw density output ``(n,)``."""
        density_raw = raw_density + self.config.density_bias
        inside = ((unit >= 0.0) & (unit <= 1.0)).all(dim=-1)
        sigma = density_activation(self.config.density_activation, density_raw) * inside.to(density_raw.dtype)
        return sigma, density_raw

    def encode_directions(
        self, directions: Float[Tensor, "r 3"], dtype: torch.dtype, ray_indices: Tensor | None = None
    ) -> Float[Tensor, "n e"]:
        """The colour branch's encoding of view directions (normalized here): one per direction, or, with
        ``ray_indices (n,)``, ``directions`` are per ray, encoded once each, and each point gets its ray's."""
        d = F.normalize(directions.to(dtype), dim=-1)
        enc = self.direction_encoding((d + 1.0) * 0.5)
        return enc if ray_indices is None else enc.index_select(0, ray_indices)

    def forward(
        self, unit: Float[Tensor, "n 3"], raw: Float[Tensor, "n r"], directions: Tensor | None, ray_indices: Tensor | None = None
    ) -> FieldOutputs:
        """Density and (with ``directions``: per point, or per ray with ``ray_indices``) colour."""
        sigma, density_raw = self.density(unit, raw)
        features = raw[:, 1:]
        rgb = None
        if directions is not None:
            enc = self.encode_directions(directions, raw.dtype, ray_indices)
            rgb = torch.sigmoid(self.color_network(torch.cat([enc, features], dim=-1), unit))
        return FieldOutputs(rgb=rgb, density=sigma, density_raw=density_raw, features=features)

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        self.direction_encoding.update(progress, None, None)
        self.color_network.update(progress, None, None)

    def param_groups(self, lr: float) -> list[dict]:
        groups = self.direction_encoding.param_groups(lr) + self.color_network.param_groups(lr)
        for g in groups:
            g["name"] = "radiance." + g.get("name", "params")
        return groups
