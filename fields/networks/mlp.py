"""Plain MLP with a ``backend`` switch (pure torch is the reference for every fused backend).

Activations come from the one table in :mod:`fieldforge.fields.activations`.
"""

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.activations import (
    HIDDEN_ACTIVATIONS,
    OUTPUT_ACTIVATIONS,
    HiddenActivation,
    OutputActivation,
    activation_fn,
    check_activation,
    trunc_exp,
)
from fieldforge.fields.networks.base import Network, NetworkConfig

Activation = HiddenActivation
"""Hidden activations of networks (names of :data:`fieldforge.fields.activations.ACTIVATIONS`)."""


class MLP(Network):
    """``n_hidden_layers`` hidden layers of ``width`` units; ``skips`` re-inject the input (NeRF's skip at 4)."""

    def __init__(self, in_dim: int, out_dim: int, config: "MLPConfig") -> None:
        super().__init__(in_dim, out_dim)
        self.config = config
        check_activation(config.activation, HIDDEN_ACTIVATIONS, "MLP hidden activation")
        check_activation(config.output_activation, OUTPUT_ACTIVATIONS, "MLP output activation")
        layers: list[nn.Linear] = []
        d = in_dim
        for i in range(config.n_hidden_layers):
            if i in config.skips:
                d += in_dim
            layers.append(nn.Linear(d, config.width, bias=config.bias))
            d = config.width
        layers.append(nn.Linear(d, out_dim, bias=config.bias))
        self.layers = nn.ModuleList(layers)
        # Backend: resolved per device type at the first forward (a module may be built on CPU and moved).
        self._triton_unsupported = self._fused_unsupported()
        self._tcnn_unsupported = self._tcnn_config_unsupported()
        if config.backend == "triton" and self._triton_unsupported is not None:
            raise ValueError(f"MLP backend 'triton' cannot run this config: {self._triton_unsupported}")
        if config.backend == "tcnn" and self._tcnn_unsupported is not None:
            raise ValueError(f"MLP backend 'tcnn' cannot run this config: {self._tcnn_unsupported}")
        self._impl: dict[str, str] = {}
        self._tcnn_runner = None

    def _fused_unsupported(self) -> str | None:
        c = self.config
        if c.activation != "relu":
            return f"hidden activation {c.activation!r} (fused kernels implement relu)"
        if c.skips:
            return "skip connections are not fused"
        from fieldforge.fields.kernels.fused_mlp_reference import fused_mlp_unsupported

        return fused_mlp_unsupported(self.in_dim, c.width, self.out_dim, c.n_hidden_layers, c.output_activation)

    def _tcnn_config_unsupported(self) -> str | None:
        c = self.config
        from fieldforge.fields.kernels.tcnn_backend import tcnn_mlp_unsupported

        return tcnn_mlp_unsupported(
            self.in_dim, self.out_dim, c.width, c.n_hidden_layers, c.activation, c.output_activation, c.bias, c.skips
        )

    def backend_for(self, device: torch.device) -> str:
        """The implementation this MLP runs on ``device``: 'torch', 'triton' or 'tcnn' (decided once, logged)."""
        impl = self._impl.get(device.type)
        if impl is None:
            from fieldforge.fields.kernels.backends import choose_backend

            what = f"MLP {self.in_dim}→{self.config.width}×{self.config.n_hidden_layers}→{self.out_dim}"
            impl = choose_backend(what, self.config.backend, device, self._triton_unsupported, self._tcnn_unsupported)
            self._impl[device.type] = impl
        return impl

    def forward(self, h: Float[Tensor, "n i"], coords: Tensor | None = None) -> Float[Tensor, "n o"]:
        impl = "torch" if self.config.backend == "torch" else self.backend_for(h.device)
        if impl == "triton":
            from fieldforge.fields.kernels.fused_mlp import fused_mlp

            biases = [layer.bias for layer in self.layers] if self.config.bias else None
            return fused_mlp(h, [layer.weight for layer in self.layers], biases, self.config.output_activation)
        if impl == "tcnn":
            if self._tcnn_runner is None:
                from fieldforge.fields.kernels.tcnn_backend import TcnnMLP

                c = self.config
                self._tcnn_runner = TcnnMLP(self.in_dim, self.out_dim, c.width, c.n_hidden_layers, c.activation, c.output_activation)
            return self._tcnn_runner(h, [layer.weight for layer in self.layers])
        x = h
        for i, layer in enumerate(self.layers[:-1]):
            if i in self.config.skips:
                x = torch.cat([x, h], dim=-1)
            x = activation_fn(self.config.activation, layer(x))
        return activation_fn(self.config.output_activation, self.layers[-1](x))


@dataclass(frozen=True)
class MLPConfig(NetworkConfig):
    """Fully connected network."""

    cli_name: ClassVar[str | None] = "mlp"

    width: int = 256
    """Hidden width."""
    n_hidden_layers: int = 3
    """Number of hidden layers (a 3×256 MLP has 4 linear layers)."""
    activation: Activation = "relu"
    """Hidden activation ('softplus_beta100': the β=100 softplus of SDF networks; see fieldforge.fields.activations)."""
    output_activation: OutputActivation = "none"
    """Activation of the last layer (fields usually apply their own head activation instead)."""
    skips: tuple[int, ...] = ()
    """Hidden-layer indices that receive the network input again (NeRF: (4,))."""
    bias: bool = True
    """Linear layers have biases (tiny-cuda-nn's fused MLP has none)."""
    backend: Literal["torch", "triton", "tcnn", "auto"] = "auto"
    """Implementation: 'torch' (reference; any config and device), 'triton' (fused Triton kernels on CUDA:
    relu hidden layers, width 16/32/64/128, no skips), 'tcnn' (tiny-cuda-nn FullyFusedMLP: additionally
    bias=False), 'auto' (tcnn if installed and the config fits, else Triton on CUDA, else torch; logged once).
    Fused backends compute in the autocast dtype (else the input dtype; fp32 dots run as tf32)."""

    def setup(self, in_dim: int, out_dim: int, coord_dim: int) -> MLP:
        return MLP(in_dim, out_dim, self)


__all__ = ["Activation", "MLP", "MLPConfig", "OutputActivation", "activation_fn", "trunc_exp"]
