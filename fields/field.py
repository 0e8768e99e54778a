"""``Field``: encoding → network → head, for any input dimension. One class, configured.

The field owns the world → unit-cube transform (an axis-aligned box), so encodings always see ``[0,1]^d``.
"""

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.encodings import AnyEncodingConfig, FourierEncodingConfig
from fieldforge.fields.networks import AnyNetworkConfig, MLPConfig, activation_fn
from fieldforge.fields.outputs import FieldOutputs
from fieldforge.fields.radiance import RadianceHeadConfig

Head = Literal["rgb", "value", "sdf", "occupancy", "radiance"]


@dataclass(frozen=True)
class FieldConfig:
    """A neural field: which encoding, which network, which output head."""

    encoding: AnyEncodingConfig = dataclasses.field(default_factory=FourierEncodingConfig)
    """Coordinate encoding."""
    network: AnyNetworkConfig = dataclasses.field(default_factory=MLPConfig)
    """Decoder network."""
    head: Head = "rgb"
    """Output head: 'rgb' (sigmoid colour), 'value' (linear), 'sdf' (signed distance), 'occupancy' (logit)."""
    radiance: RadianceHeadConfig = dataclasses.field(default_factory=RadianceHeadConfig)
    """Density activation and view-dependent colour branch of the 'radiance' head (NeRF); unused otherwise."""


class Field(nn.Module):
    """Neural field ``f: R^d → outputs``; ``forward(points)`` takes world points ``(n, d)``."""

    def __init__(
        self,
        config: FieldConfig,
        in_dim: int,
        out_dim: int = 3,
        bbox: Float[Tensor, "2 d"] | None = None,
        max_steps: int = 1,
    ) -> None:
        super().__init__()
        self.config = config
        self.in_dim = in_dim
        self.out_dim = 1 if config.head in ("sdf", "occupancy") else out_dim
        if bbox is None:
            bbox = torch.stack([torch.zeros(in_dim), torch.ones(in_dim)])
        if bbox.shape != (2, in_dim) or not bool((bbox[1] > bbox[0]).all()):
            raise ValueError(f"bbox must be (2, {in_dim}) with max > min, got {bbox.tolist()}")
        self.register_buffer("bbox", bbox.float().clone())
        self.radiance_head = config.radiance.setup(max_steps) if config.head == "radiance" else None
        if self.radiance_head is not None:
            self.out_dim = self.radiance_head.raw_dim
            self.density = self._density
            self.rgb_density = self._rgb_density
        if config.head == "sdf":
            self.signed_distance = self._signed_distance  # HasSDF, only for SDF fields
        self.encoding = config.encoding.setup(in_dim, max_steps)
        self.network = config.network.setup(self.encoding.out_dim, self.out_dim, in_dim, max_steps)

    def to_unit(self, points: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        lo, hi = self.bbox[0], self.bbox[1]
        return (points - lo) / (hi - lo)

    def forward(self, points: Float[Tensor, "n d"], directions: Tensor | None = None) -> FieldOutputs:
        x = self.to_unit(points)
        raw = self.network(self.encoding(x), x)
        head = self.config.head
        if self.radiance_head is not None:
            return self.radiance_head(x, raw, directions)
        if head == "rgb":
            values = activation_fn("sigmoid", raw)
            return FieldOutputs(values=values, rgb=values if self.out_dim == 3 else None)
        if head == "sdf":
            return FieldOutputs(sdf=raw[:, 0])
        if head == "occupancy":
            return FieldOutputs(occupancy_logit=raw[:, 0])
        return FieldOutputs(values=raw)

    def update(self, step: int, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        """Progressive-encoding hook: ``coords`` are unit-cube training points, ``per_sample_loss`` ``(n,)``."""
        self.encoding.update(step, coords, per_sample_loss)
        self.network.update(step, coords, per_sample_loss)
        if self.radiance_head is not None:
            self.radiance_head.update(step, coords, per_sample_loss)

    def param_groups(self, lr: float) -> list[dict]:
        radiance = self.radiance_head.param_groups(lr) if self.radiance_head is not None else []
        return self.encoding.param_groups(lr) + self.network.param_groups(lr) + radiance

    # -- radiance-field capabilities (Renderable, HasDensity): present only with head='radiance' ----
    # They are bound per instance in ``__init__`` (not class attributes), so the runtime-checkable
    # capability protocols report them only for radiance fields.

    def _density(self, points: Float[Tensor, "n 3"]) -> Float[Tensor, " n"]:
        """Volume density σ ``(n,)`` at world points (zero outside the field's box)."""
        assert self.radiance_head is not None
        x = self.to_unit(points)
        return self.radiance_head.density(x, self.network(self.encoding(x), x))[0]

    def _rgb_density(self, points: Float[Tensor, "n 3"], directions: Float[Tensor, "n 3"]) -> tuple[Tensor, Tensor]:
        """Colour ``(n, 3)`` seen along unit ``directions`` and density ``(n,)`` at world points."""
        out = self(points, directions)
        assert out.rgb is not None and out.density is not None
        return out.rgb, out.density

    def _signed_distance(self, points: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
        """Signed distance ``(n,)`` at world points, negative inside (HasSDF; bound only when head='sdf')."""
        sdf = self(points).sdf
        assert sdf is not None
        return sdf

    @torch.no_grad()
    def query_chunked(self, points: Tensor, chunk: int = 65536) -> FieldOutputs:
        """Evaluate without gradients in chunks (bounded memory)."""
        return FieldOutputs.cat([self(points[i : i + chunk]) for i in range(0, points.shape[0], chunk)])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
