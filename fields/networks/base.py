"""Network base class: ``(n, in_dim)`` features → ``(n, out_dim)`` raw outputs, plus the progressive hook."""

from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor, nn


class Network(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim

    def forward(self, h: Float[Tensor, "n i"], coords: Float[Tensor, "n d"] | None = None) -> Float[Tensor, "n o"]:
        """``coords`` are the unit-cube inputs, for networks modulated by position (CAM); others ignore it."""
        raise NotImplementedError

    def update(self, step: int, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        """Progressive hook (PINs levels); no-op by default."""

    def param_groups(self, lr: float) -> list[dict]:
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "name": "network"}] if params else []


@dataclass(frozen=True)
class NetworkConfig:
    def setup(self, in_dim: int, out_dim: int, coord_dim: int, max_steps: int = 1) -> Network:
        raise NotImplementedError
