"""Network base class: ``(n, in_dim)`` features → ``(n, out_dim)`` raw outputs, plus the progressive hook."""

from dataclasses import dataclass
from typing import ClassVar

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

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        """Progressive hook (PINs levels), called after every optimizer step; no-op by default.

        ``progress`` is the fraction of the current training stage done, in ``[0, 1]`` (step / stage steps):
        schedules are functions of it, so a component never needs to know the run's length.
        """

    def param_groups(self, lr: float) -> list[dict]:
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "name": "network"}] if params else []


@dataclass(frozen=True)
class NetworkConfig:
    """Base of every network config: ``setup(in_dim, out_dim, coord_dim)`` builds the paired module."""

    cli_name: ClassVar[str | None] = None
    """Name of ``--network NAME`` (``None``: not offered on the command line)."""

    def setup(self, in_dim: int, out_dim: int, coord_dim: int) -> Network:
        raise NotImplementedError

    def for_box(self, extent: Tensor) -> "NetworkConfig":
        """This config adapted to the extent ``(d,)`` of the field's box (KiloNeRF's tile grid); unchanged by default."""
        return self
