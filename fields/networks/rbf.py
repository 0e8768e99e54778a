"""Gaussian RBF decoder (Gaussian RBFNet / GNF, Bouzidi et al. 2025): one layer of K Gaussian kernels in
feature space followed by a linear read-out, replacing the MLP decoder of a grid field.

For a feature vector ``f ∈ R^F`` (from the encoding, typically a low-resolution feature grid):
``φ_k(f) = exp(−½ Σ_d e^{β_kd} (f_d − c_kd)²)``, ``y = W φ(f) + b``. Centres ``c_k`` start ``U(−1e-4, 1e-4)``,
log-precisions ``β = 0`` (isotropic, unit variance). The squared distances are computed with two matrix
products, ``(f²) Pᵀ − 2 f (P⊙C)ᵀ + Σ_d P⊙C²`` with ``P = e^β``, so no ``N × K × F`` tensor is formed. The
kernel layer always runs in fp32 (autocast off): the expansion subtracts nearly equal terms.
"""

from dataclasses import dataclass
from typing import ClassVar
import torch
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.encodings.grids import param_group
from fieldforge.fields.networks.base import Network, NetworkConfig
from fieldforge.fields.activations import OUTPUT_ACTIVATIONS, OutputActivation, activation_fn, check_activation


def gaussian_rbf(
    f: Float[Tensor, "n f"], centers: Float[Tensor, "k f"], log_precisions: Float[Tensor, "k f"]
) -> Float[Tensor, "n k"]:
    """``φ[n, k] = exp(−½ Σ_d exp(β_kd)(f_nd − c_kd)²)`` via matrix products (no ``n×k×f`` intermediate)."""
    precision = log_precisions.exp()  # (K, F)
    pc = precision * centers
    dist2 = (f * f) @ precision.T - 2.0 * (f @ pc.T) + (pc * centers).sum(-1)
    return torch.exp(-0.5 * dist2.clamp_min(0.0))


class RBFNetwork(Network):
    """``features → K Gaussian kernels → linear``; ``forward`` ignores ``coords``."""

    def __init__(self, in_dim: int, out_dim: int, config: "RBFConfig") -> None:
        super().__init__(in_dim, out_dim)
        check_activation(config.output_activation, OUTPUT_ACTIVATIONS, "RBF output activation")
        self.config = config
        k = config.n_kernels
        self.centers = nn.Parameter(torch.empty(k, in_dim).uniform_(-config.center_init, config.center_init))
        self.log_precisions = nn.Parameter(torch.full((k, in_dim), float(config.log_precision_init)))
        self.readout = nn.Linear(k, out_dim)

    def kernels(self, h: Float[Tensor, "n i"]) -> Float[Tensor, "n k"]:
        """Kernel responses ``(n, K)``, in the parameters' precision but at least fp32 (autocast off)."""
        dtype = torch.promote_types(self.centers.dtype, torch.float32)
        with torch.autocast(device_type=h.device.type, enabled=False):
            return gaussian_rbf(h.to(dtype), self.centers.to(dtype), self.log_precisions.to(dtype))

    def forward(self, h: Float[Tensor, "n i"], coords: Tensor | None = None) -> Float[Tensor, "n o"]:
        phi = self.kernels(h)
        with torch.autocast(device_type=h.device.type, enabled=False):
            out = self.readout(phi.to(self.readout.weight.dtype))
        return activation_fn(self.config.output_activation, out)

    def param_groups(self, lr: float) -> list[dict]:
        c = self.config
        return [param_group("network.rbf", list(self.parameters()), lr, c.lr_multiplier, c.weight_decay)]


@dataclass(frozen=True)
class RBFConfig(NetworkConfig):
    """Gaussian RBF decoder: K learned centres with diagonal precisions exp(β), then a linear read-out."""

    cli_name: ClassVar[str | None] = "rbf"

    n_kernels: int = 64
    """Number of Gaussian kernels K (GNF: 64 for images and SDF, 32 for NeRF)."""
    center_init: float = 1e-4
    """Centres start U(−s, s) (GNF); use a larger s when the encoding's features start large."""
    log_precision_init: float = 0.0
    """Initial log-precision β (0: unit-variance isotropic kernels)."""
    output_activation: OutputActivation = "none"
    """Activation after the read-out (fields apply their own head activation)."""
    lr_multiplier: float = 1.0
    """Learning rate of the decoder relative to the optimizer's."""
    weight_decay: float | None = None
    """Weight decay of the decoder (None: the optimizer's; GNF's SDF setting: 1e-4)."""

    def setup(self, in_dim: int, out_dim: int, coord_dim: int) -> RBFNetwork:
        return RBFNetwork(in_dim, out_dim, self)
