"""Fields: encoding → network → head, for any input dimension, built from one ``FieldConfig``.

The field owns the world → unit-cube transform (an axis-aligned box), so encodings always see ``[0,1]^d``.

What a field can do beyond ``forward`` is declared by its class, so the capability protocols of
``fieldforge.fields.capabilities`` hold for the class and survive ``copy.deepcopy``, pickling, DDP and
``torch.compile`` (reach the inner module with ``fieldforge.fields.wrapping.unwrap``):

- ``Field``: heads ``rgb``, ``value``, ``occupancy`` (``forward``, ``update``, ``param_groups``, ``to_unit``,
  ``query_chunked``, ``num_parameters``);
- ``SDFField(Field)``: head ``sdf``, adds ``signed_distance`` (``HasSDF``);
- ``RadianceField(Field)``: head ``radiance``, adds ``density`` and ``rgb_density`` (``HasDensity``, ``Renderable``).

``make_field(config, in_dim, out_dim, bbox)`` (also ``FieldConfig.setup``) picks the class from ``config.head``.
"""

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.activations import activation_fn
from fieldforge.fields.encodings import AnyEncodingConfig, FourierEncodingConfig
from fieldforge.fields.networks import AnyNetworkConfig, MLPConfig
from fieldforge.fields.networks.kilonerf import TileBank
from fieldforge.fields.outputs import FieldOutputs
from fieldforge.fields.radiance import RadianceHead, RadianceHeadConfig

Head = Literal["rgb", "value", "sdf", "occupancy", "radiance"]


@dataclass(frozen=True)
class FieldConfig:
    """A neural field: which encoding, which network, which output head."""

    encoding: AnyEncodingConfig = dataclasses.field(default_factory=FourierEncodingConfig)
    """Coordinate encoding."""
    network: AnyNetworkConfig = dataclasses.field(default_factory=MLPConfig)
    """Decoder network."""
    head: Head = "rgb"
    """Output head: 'rgb' (sigmoid colour), 'value' (linear), 'sdf' (signed distance), 'occupancy' (logit),
    'radiance' (density + view-dependent colour, NeRF)."""
    radiance: RadianceHeadConfig = dataclasses.field(default_factory=RadianceHeadConfig)
    """Density activation and view-dependent colour branch of the 'radiance' head (NeRF); unused otherwise."""

    def setup(self, in_dim: int, out_dim: int = 3, bbox: Float[Tensor, "2 d"] | None = None) -> "Field":
        """The field of this config (``make_field``)."""
        return make_field(self, in_dim, out_dim, bbox)


class Field(nn.Module):
    """Neural field ``f: R^d → outputs``; ``forward(points)`` takes world points ``(n, d)``.

    Heads 'rgb', 'value' and 'occupancy'; build fields with :func:`make_field`, which picks the subclass
    of the other heads ('sdf': :class:`SDFField`, 'radiance': :class:`RadianceField`).
    """

    HEADS: tuple[str, ...] = ("rgb", "value", "occupancy")
    """Heads this class implements."""

    def __init__(self, config: FieldConfig, in_dim: int, out_dim: int = 3, bbox: Float[Tensor, "2 d"] | None = None) -> None:
        super().__init__()
        if config.head not in self.HEADS:
            raise ValueError(f"{type(self).__name__} has no head {config.head!r} (heads {self.HEADS}); build fields with make_field")
        self.config = config
        self.in_dim = in_dim
        self.out_dim = self.head_dim(out_dim)
        if bbox is None:
            bbox = torch.stack([torch.zeros(in_dim), torch.ones(in_dim)])
        if bbox.shape != (2, in_dim) or not bool((bbox[1] > bbox[0]).all()):
            raise ValueError(f"bbox must be (2, {in_dim}) with max > min, got {bbox.tolist()}")
        self.register_buffer("bbox", bbox.float().clone())
        self.build_head()  # before the encoding and network: their initialization draws from the RNG after it
        self.encoding = config.encoding.setup(in_dim)
        self.network = config.network.for_box(self.bbox[1] - self.bbox[0]).setup(self.encoding.out_dim, self.out_dim, in_dim)

    def head_dim(self, out_dim: int) -> int:
        """Raw outputs the network produces for the head."""
        return 1 if self.config.head == "occupancy" else out_dim

    def build_head(self) -> None:
        """Create the head's own modules (none here)."""

    def to_unit(self, points: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        lo, hi = self.bbox[0], self.bbox[1]
        return (points - lo) / (hi - lo)

    def raw(self, unit: Float[Tensor, "n d"]) -> Float[Tensor, "n r"]:
        """Network output before the head, at unit-cube points."""
        return self.network(self.encoding(unit), unit)

    def forward(self, points: Float[Tensor, "n d"], directions: Tensor | None = None) -> FieldOutputs:
        """Query at world points (``directions`` is used by radiance fields only)."""
        x = self.to_unit(points)
        return self.apply_head(x, self.raw(x), directions)

    def apply_head(self, unit: Tensor, raw: Tensor, directions: Tensor | None) -> FieldOutputs:
        head = self.config.head
        if head == "rgb":
            values = activation_fn("sigmoid", raw)
            return FieldOutputs(values=values, rgb=values if self.out_dim == 3 else None)
        if head == "occupancy":
            return FieldOutputs(occupancy_logit=raw[:, 0])
        return FieldOutputs(values=raw)

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        """Progressive hook, called after every optimizer step: ``progress`` = step / steps of the training stage,
        in ``[0, 1]``; ``coords`` are unit-cube training points ``(n, d)``, ``per_sample_loss`` their loss ``(n,)``."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"update takes the progress through the training stage in [0, 1] (step / steps), got {progress}")
        self.encoding.update(progress, coords, per_sample_loss)
        self.network.update(progress, coords, per_sample_loss)

    def param_groups(self, lr: float) -> list[dict]:
        return self.encoding.param_groups(lr) + self.network.param_groups(lr)

    @torch.no_grad()
    def query_chunked(self, points: Tensor, chunk: int = 65536) -> FieldOutputs:
        """Evaluate without gradients in chunks (bounded memory)."""
        return FieldOutputs.cat([self(points[i : i + chunk]) for i in range(0, points.shape[0], chunk)])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class SDFField(Field):
    """Signed distance field (head 'sdf'): ``forward(points).sdf``, and ``signed_distance`` (``HasSDF``)."""

    HEADS = ("sdf",)

    def head_dim(self, out_dim: int) -> int:
        return 1

    def apply_head(self, unit: Tensor, raw: Tensor, directions: Tensor | None) -> FieldOutputs:
        return FieldOutputs(sdf=raw[:, 0])

    def signed_distance(self, points: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """Signed distance ``(n,)`` at world points, negative inside."""
        x = self.to_unit(points)
        return self.raw(x)[:, 0]


class RadianceField(Field):
    """Radiance field (head 'radiance'): density and view-dependent colour (``HasDensity``, ``Renderable``)."""

    HEADS = ("radiance",)
    radiance_head: RadianceHead

    def __init__(self, config: FieldConfig, in_dim: int, out_dim: int = 3, bbox: Float[Tensor, "2 d"] | None = None) -> None:
        if in_dim != 3:
            raise ValueError(f"a radiance field is 3D, got in_dim={in_dim}")
        super().__init__(config, in_dim, out_dim, bbox)

    def head_dim(self, out_dim: int) -> int:
        return 1 + self.config.radiance.geo_feat_dim  # raw density + geometry feature (RadianceHead.raw_dim)

    def build_head(self) -> None:
        radiance = self.config.radiance  # a colour branch may depend on the box (KiloNeRF tiles)
        radiance = dataclasses.replace(radiance, color_network=radiance.color_network.for_box(self.bbox[1] - self.bbox[0]))
        self.radiance_head = radiance.setup()

    def apply_head(self, unit: Tensor, raw: Tensor, directions: Tensor | None) -> FieldOutputs:
        return self.radiance_head(unit, raw, directions)

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        super().update(progress, coords, per_sample_loss)
        self.radiance_head.update(progress, coords, per_sample_loss)

    def param_groups(self, lr: float) -> list[dict]:
        return super().param_groups(lr) + self.radiance_head.param_groups(lr)

    def density(self, points: Float[Tensor, "n 3"]) -> Float[Tensor, " n"]:
        """Volume density σ ``(n,)`` at world points (zero outside the field's box)."""
        x = self.to_unit(points)
        return self.radiance_head.density(x, self.raw(x))[0]

    def rgb_density(
        self, points: Float[Tensor, "n 3"], directions: Float[Tensor, "r 3"], ray_indices: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Colour ``(n, 3)`` seen along ``directions`` and density ``(n,)`` at world points; ``directions`` are
        per point, or per ray with ``ray_indices (n,)`` (each point's ray: directions encoded once per ray)."""
        head = self.radiance_head
        x = self.to_unit(points)
        if not torch.is_grad_enabled() and isinstance(self.network, TileBank) and self.network.can_chain(head.color_network, points.device):
            h = self.encoding(x)  # KiloNeRF rendering: both tile banks in one packed pass
            raw_density, logits = self.network.chain(h, x, head.color_network, head.encode_directions(directions, h.dtype, ray_indices))
            return torch.sigmoid(logits), head.sigma(x, raw_density)[0]
        out = head(x, self.raw(x), directions, ray_indices)
        assert out.rgb is not None and out.density is not None
        return out.rgb, out.density


FIELD_CLASSES: dict[str, type[Field]] = {
    "rgb": Field,
    "value": Field,
    "occupancy": Field,
    "sdf": SDFField,
    "radiance": RadianceField,
}
"""The class of each head."""


def make_field(config: FieldConfig, in_dim: int, out_dim: int = 3, bbox: Float[Tensor, "2 d"] | None = None) -> Field:
    """Build the field of ``config``: the class is picked from ``config.head`` (see :data:`FIELD_CLASSES`)."""
    cls = FIELD_CLASSES.get(config.head)
    if cls is None:
        raise ValueError(f"unknown field head {config.head!r}; choose one of {tuple(FIELD_CLASSES)}")
    return cls(config, in_dim, out_dim, bbox)


__all__ = ["FIELD_CLASSES", "Field", "FieldConfig", "FieldOutputs", "Head", "RadianceField", "SDFField", "make_field"]
