"""CAM: Coordinate-Aware Modulation (Lee et al., ICLR 2024) on top of any encoding.

An MLP whose every hidden layer computes ``h ← act(γ(u) · Norm(W h + b) + β(u))``, where ``γ`` and ``β`` are
read by linear interpolation from small learnable grids indexed by (a subset of) the unit-cube input
coordinates ``u`` (the ``coords`` argument of :meth:`Network.forward`, supplied by ``Field``).

- Grids start at ``γ = 1``, ``β = 0``. The scale grid stores ``γ − 1`` (zeros), so interpolation at init gives
  exactly ``γ = 1`` (interpolating ones is off by an ulp): with ``norm="none"`` CAM at init is bit-identical to
  its un-modulated MLP, and weight decay on the grids pulls ``γ`` towards 1.
- Scalar (one ``γ, β`` per grid cell, broadcast over channels: CAM's image/NeRF setting) or per-channel
  (CAM's video setting).
- ≤ 2 grid axes: one dense grid per layer. 3 axes: a dense volume or a tri-plane (``grid_kind``). On the
  tri-plane ``γ`` is the product of the three plane samples ``Π(1 + s_p)`` (each starts at 1) and ``β`` the **sum**
  (each starts at 0). The reference NerfAcc code multiplies the β-planes; a product of zero-initialized
  factors has zero gradient forever, so its shift never trains. The sum avoids that.
- Sampling: ``grid_sample`` bilinear/trilinear, ``align_corners=True``, border padding (see
  ``fields.encodings.grids``).
- The grids get their own optimizer group with a learning-rate multiplier (10× for images in CAM).
"""

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.encodings.grids import param_group, plane_pairs, sample_grid, sample_planes
from fieldforge.fields.networks.base import Network, NetworkConfig
from fieldforge.fields.activations import activation_fn
from fieldforge.fields.networks.mlp import MLP, MLPConfig

NormKind = Literal["layer", "rms", "none"]


def normalize_features(z: Float[Tensor, "n c"], kind: str, eps: float = 1e-5) -> Float[Tensor, "n c"]:
    """Per-sample normalization over the channel vector, no affine parameters.

    ``layer``: ``(z − mean)/sqrt(var + eps)`` (biased variance), what CAM's image code does with
    ``F.instance_norm`` on shape ``(1, N, C)``. ``rms``: ``z / sqrt(mean(z²) + eps)``. ``none``: identity.
    Per-sample (not per-batch) so a field's output never depends on how a query is chunked.
    """
    if kind == "layer":
        return F.layer_norm(z, (z.shape[-1],), eps=eps)
    if kind == "rms":
        return z * torch.rsqrt(z.pow(2).mean(-1, keepdim=True) + eps)
    if kind == "none":
        return z
    raise ValueError(f"unknown normalization {kind!r}")


class CAMNetwork(Network):
    """MLP (``self.mlp``, built from ``config.mlp``) with coordinate-aware modulation of every hidden layer."""

    def __init__(self, in_dim: int, out_dim: int, coord_dim: int, config: "CAMConfig") -> None:
        super().__init__(in_dim, out_dim)
        self.config = config
        if config.mlp.backend not in ("torch", "auto"):
            raise ValueError("CAM modulates hidden layers in between matmuls; it needs the torch MLP backend")
        self.mlp = MLP(in_dim, out_dim, config.mlp)
        axes = config.grid_axes or tuple(range(coord_dim))
        if any(not 0 <= a < coord_dim for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"grid_axes {axes} must be distinct axes of the {coord_dim}-D coordinates")
        if not 1 <= len(axes) <= 3:
            raise ValueError(f"CAM grids index 1–3 coordinates, got {len(axes)}")
        self.grid_axes = axes
        res = config.grid_resolution
        if len(res) == 1:
            res = res * len(axes)
        if len(res) != len(axes) or min(res) < 2:
            raise ValueError(f"grid_resolution {config.grid_resolution} must give ≥ 2 vertices for each of {len(axes)} axes")
        self.resolution = res
        self.n_layers = config.mlp.n_hidden_layers
        self.channels = config.mlp.width if config.per_channel else 1
        kind = config.grid_kind
        self.kind = ("dense" if len(axes) <= 2 else "planes") if kind == "auto" else kind
        if self.kind == "planes" and len(axes) < 2:
            raise ValueError("grid_kind='planes' needs at least 2 grid axes")
        c = self.n_layers * self.channels
        if self.kind == "dense":
            spatial = tuple(res[::-1])  # storage is reversed axis order (grid_sample's x is the last dim)
            self.scale_grid = nn.Parameter(torch.zeros(c, *spatial))  # γ − 1
            self.shift_grid = nn.Parameter(torch.zeros(c, *spatial))  # β
        else:
            self.pairs = plane_pairs(len(axes))
            if len(set(res)) != 1:
                raise ValueError("tri-plane CAM grids need one resolution for all axes")
            p = len(self.pairs)
            self.scale_grid = nn.Parameter(torch.zeros(p, c, res[0], res[0]))  # per plane: factor − 1
            self.shift_grid = nn.Parameter(torch.zeros(p, c, res[0], res[0]))  # per plane: summand

    def modulation(self, coords: Float[Tensor, "n d"]) -> tuple[Float[Tensor, "n l c"], Float[Tensor, "n l c"]]:
        """Scale and shift ``(n, n_hidden_layers, C)`` at the coordinates (``C`` = width or 1)."""
        u = coords[:, list(self.grid_axes)]
        n, c = u.shape[0], self.n_layers * self.channels
        if self.kind == "dense":
            both = sample_grid(torch.cat([self.scale_grid, self.shift_grid], dim=0), u)  # one grid_sample for γ and β
            gamma, beta = 1.0 + both[:, :c], both[:, c:]
        else:
            both = sample_planes(torch.cat([self.scale_grid, self.shift_grid], dim=1), u, self.pairs)  # (P, n, 2c)
            gamma, beta = (1.0 + both[..., :c]).prod(0), both[..., c:].sum(0)
        return gamma.reshape(n, self.n_layers, self.channels), beta.reshape(n, self.n_layers, self.channels)

    def forward(self, h: Float[Tensor, "n i"], coords: Float[Tensor, "n d"] | None = None) -> Float[Tensor, "n o"]:
        if coords is None:
            raise ValueError("CAM needs the input coordinates (Network.forward(h, coords))")
        cfg = self.config.mlp
        gamma, beta = self.modulation(coords.to(h.dtype))
        x = h
        for i, layer in enumerate(self.mlp.layers[:-1]):
            if i in cfg.skips:
                x = torch.cat([x, h], dim=-1)
            z = normalize_features(layer(x), self.config.norm)
            x = activation_fn(cfg.activation, gamma[:, i].to(z.dtype) * z + beta[:, i].to(z.dtype))
        return activation_fn(cfg.output_activation, self.mlp.layers[-1](x))

    def param_groups(self, lr: float) -> list[dict]:
        c = self.config
        return [
            param_group("network", list(self.mlp.parameters()), lr),
            param_group("network.cam_grids", [self.scale_grid, self.shift_grid], lr, c.grid_lr_multiplier, c.grid_weight_decay),
        ]


@dataclass(frozen=True)
class CAMConfig(NetworkConfig):
    """MLP with Coordinate-Aware Modulation: h ← act(γ(u)·Norm(Wh+b) + β(u)), γ/β from small learnable grids."""

    cli_name: ClassVar[str | None] = "cam"

    mlp: MLPConfig = dataclasses.field(default_factory=MLPConfig)
    """The modulated MLP (torch backend)."""
    grid_resolution: tuple[int, ...] = (32,)
    """Grid vertices per axis (one value for all axes, or one per grid axis). CAM: 32×32 for images."""
    grid_axes: tuple[int, ...] = ()
    """Which input coordinates index the grids (empty: all)."""
    per_channel: bool = False
    """One γ, β per channel (CAM video) instead of one scalar per grid cell (CAM image/NeRF)."""
    grid_kind: Literal["auto", "dense", "planes"] = "auto"
    """'dense' grid, or 'planes' (tri-plane: γ = product, β = sum of plane samples); 'auto': planes for 3 axes."""
    norm: NormKind = "layer"
    """Feature normalization before modulation ('layer' = CAM's per-sample instance_norm over channels)."""
    grid_lr_multiplier: float = 10.0
    """Learning rate of the grids relative to the MLP's (CAM images: 10×)."""
    grid_weight_decay: float | None = None
    """Weight decay of the grids (None: the optimizer's)."""

    def setup(self, in_dim: int, out_dim: int, coord_dim: int) -> CAMNetwork:
        return CAMNetwork(in_dim, out_dim, coord_dim, self)
