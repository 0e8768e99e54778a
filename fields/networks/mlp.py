"""Plain MLP with a ``backend`` switch (pure torch is the reference for every fused backend)."""

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from fields.networks.base import Network, NetworkConfig

Activation = Literal["relu", "softplus", "silu", "tanh", "none"]
OutputActivation = Literal["none", "sigmoid", "relu", "exp", "trunc_exp", "softplus"]


class _TruncExp(torch.autograd.Function):
    """exp with the gradient clamped at exp(15) (instant-ngp's density activation)."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


def activation_fn(name: str, x: Tensor) -> Tensor:
    """Apply a named activation (hidden or output)."""
    if name == "relu":
        return F.relu(x)
    if name == "softplus":
        return F.softplus(x, beta=100.0)
    if name == "silu":
        return F.silu(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "exp":
        return torch.exp(x)
    if name == "trunc_exp":
        return trunc_exp(x)
    if name == "none":
        return x
    raise ValueError(f"unknown activation {name!r}")


class MLP(Network):
    """``n_hidden_layers`` hidden layers of ``width`` units; ``skips`` re-inject the input (NeRF's skip at 4)."""

    def __init__(self, in_dim: int, out_dim: int, config: "MLPConfig") -> None:
        super().__init__(in_dim, out_dim)
        self.config = config
        layers: list[nn.Linear] = []
        d = in_dim
        for i in range(config.n_hidden_layers):
            if i in config.skips:
                d += in_dim
            layers.append(nn.Linear(d, config.width, bias=config.bias))
            d = config.width
        layers.append(nn.Linear(d, out_dim, bias=config.bias))
        self.layers = nn.ModuleList(layers)
        if config.backend not in ("torch", "auto"):
            raise ValueError(f"MLP backend {config.backend!r} is not available yet; use 'torch'")

    def forward(self, h: Float[Tensor, "n i"], coords: Tensor | None = None) -> Float[Tensor, "n o"]:
        x = h
        for i, layer in enumerate(self.layers[:-1]):
            if i in self.config.skips:
                x = torch.cat([x, h], dim=-1)
            x = activation_fn(self.config.activation, layer(x))
        return activation_fn(self.config.output_activation, self.layers[-1](x))


@dataclass(frozen=True)
class MLPConfig(NetworkConfig):
    """Fully connected network."""

    width: int = 256
    """Hidden width."""
    n_hidden_layers: int = 3
    """Number of hidden layers (a 3×256 MLP has 4 linear layers)."""
    activation: Activation = "relu"
    """Hidden activation."""
    output_activation: OutputActivation = "none"
    """Activation of the last layer (fields usually apply their own head activation instead)."""
    skips: tuple[int, ...] = ()
    """Hidden-layer indices that receive the network input again (NeRF: (4,))."""
    bias: bool = True
    backend: Literal["torch", "auto"] = "torch"
    """Implementation: 'torch' (reference). 'auto' picks the fastest installed backend."""

    def setup(self, in_dim: int, out_dim: int, coord_dim: int, max_steps: int = 1) -> MLP:
        return MLP(in_dim, out_dim, self)
