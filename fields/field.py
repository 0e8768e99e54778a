"""``Field``: encoding → network → head, for any input dimension. One class, configured.

The field owns the world → unit-cube transform (an axis-aligned box), so encodings always see ``[0,1]^d``.
"""

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from fields.encodings import AnyEncodingConfig, FourierEncodingConfig
from fields.networks import AnyNetworkConfig, MLPConfig, activation_fn
from fields.outputs import FieldOutputs

Head = Literal["rgb", "value", "sdf", "occupancy"]


@dataclass(frozen=True)
class FieldConfig:
    """A neural field: which encoding, which network, which output head."""

    encoding: AnyEncodingConfig = dataclasses.field(default_factory=FourierEncodingConfig)
    """Coordinate encoding."""
    network: AnyNetworkConfig = dataclasses.field(default_factory=MLPConfig)
    """Decoder network."""
    head: Head = "rgb"
    """Output head: 'rgb' (sigmoid colour), 'value' (linear), 'sdf' (signed distance), 'occupancy' (logit)."""


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
        self.encoding = config.encoding.setup(in_dim, max_steps)
        self.network = config.network.setup(self.encoding.out_dim, self.out_dim, in_dim, max_steps)

    def to_unit(self, points: Float[Tensor, "n d"]) -> Float[Tensor, "n d"]:
        lo, hi = self.bbox[0], self.bbox[1]
        return (points - lo) / (hi - lo)

    def forward(self, points: Float[Tensor, "n d"], directions: Tensor | None = None) -> FieldOutputs:
        x = self.to_unit(points)
        raw = self.network(self.encoding(x), x)
        head = self.config.head
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

    def param_groups(self, lr: float) -> list[dict]:
        return self.encoding.param_groups(lr) + self.network.param_groups(lr)

    @torch.no_grad()
    def query_chunked(self, points: Tensor, chunk: int = 65536) -> FieldOutputs:
        """Evaluate without gradients in chunks (bounded memory)."""
        return FieldOutputs.cat([self(points[i : i + chunk]) for i in range(0, points.shape[0], chunk)])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
