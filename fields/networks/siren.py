"""SIREN: sinusoidal representation network (Sitzmann et al. 2020).

Hidden layers compute ``sin(ω·(W h + b))``; the last layer is linear. Initialization keeps the
pre-activations ~N(0, 1) after the ×ω: first layer ``W ~ U(−1/n, 1/n)``, later layers
``W ~ U(−√(6/n)/ω_h, √(6/n)/ω_h)`` (n = fan-in), biases keep PyTorch's default ``U(−1/√n, 1/√n)``.
SIREN expects coordinates in ``[−1, 1]``: pair it with the identity encoding (which centres ``[0,1]``).
``first_omega`` (ω₀) sets the frequency content of the untrained network; FreSh tunes it.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.networks.base import Network, NetworkConfig


class Siren(Network):
    """``n_hidden_layers`` sine layers of ``width`` units and a linear output layer."""

    def __init__(self, in_dim: int, out_dim: int, config: "SirenConfig") -> None:
        super().__init__(in_dim, out_dim)
        if config.n_hidden_layers < 1:
            raise ValueError(f"SIREN needs at least one sine layer, got n_hidden_layers={config.n_hidden_layers}")
        self.config = config
        dims = [in_dim] + [config.width] * config.n_hidden_layers + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                n = layer.in_features
                bound = 1.0 / n if i == 0 else math.sqrt(6.0 / n) / config.hidden_omega
                layer.weight.uniform_(-bound, bound)

    def omegas(self) -> list[float]:
        """ω of each sine layer (first, then hidden)."""
        return [self.config.first_omega] + [self.config.hidden_omega] * (len(self.layers) - 2)

    def forward(self, h: Float[Tensor, "n i"], coords: Tensor | None = None) -> Float[Tensor, "n o"]:
        x = h
        for omega, layer in zip(self.omegas(), self.layers[:-1]):
            x = torch.sin(omega * layer(x))
        return self.layers[-1](x)


@dataclass(frozen=True)
class SirenConfig(NetworkConfig):
    """Sinusoidal MLP (SIREN) with its initialization; use with the identity encoding (inputs in [-1,1])."""

    cli_name: ClassVar[str | None] = "siren"

    width: int = 256
    """Hidden width."""
    n_hidden_layers: int = 3
    """Number of sine layers (a 3×256 SIREN has 4 linear layers, like a 3×256 MLP)."""
    first_omega: float = 30.0
    """ω₀ of the first layer: the frequency scale of the representation (FreSh's tuned hyperparameter)."""
    hidden_omega: float = 30.0
    """ω of the later sine layers (also scales their initialization)."""

    def setup(self, in_dim: int, out_dim: int, coord_dim: int) -> Siren:
        return Siren(in_dim, out_dim, self)
