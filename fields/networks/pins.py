"""PINs: progressive implicit networks (Landgraf, Sorkine-Hornung, Cabral, ICML 2022), reimplemented.

A hierarchy of ``L`` small MLPs. The encoded features (which must be ordered by frequency: sorted
Fourier features, or NeRF PE without its raw input) are split into ``L`` contiguous bands
``Γ_1 < … < Γ_L``. With ``x`` the centred coordinates:

    h_1 = MLP_1([x, Γ_1]),            y_1 = head_1(h_1)
    h_l = MLP_l([h_{l−1}, Γ_l]),      y_l = y_{l−1} + g_l·head_l(h_l)

Only the finest output is supervised. Levels switch on progressively, as functions of the training
progress ``p ∈ [0, 1]`` (step / steps of the stage, passed to ``update``): level ``l ≥ 2`` opens at
``p_l = (l−1)/(L−1)·schedule_end`` and its gate ``g_l`` rises from 0 to 1 along a cosine ramp of length
``ramp`` (in progress), so enabling a level never makes the output jump. Because the outputs are residual,
truncating at any level ``l`` (``set_level``) gives a valid lower level of detail; levels beyond the
truncation are not even evaluated. The last progress is a registered buffer (checkpoints restore the
gates); a run resumed with more steps continues on the longer schedule from its new progress.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.networks.base import Network, NetworkConfig
from fieldforge.fields.activations import HIDDEN_ACTIVATIONS, activation_fn, check_activation
from fieldforge.fields.networks.mlp import Activation


def band_sizes(n_features: int, n_levels: int) -> list[int]:
    """Split ``n_features`` into ``n_levels`` contiguous bands, keeping (sin, cos) pairs together when possible."""
    unit = 2 if n_features % 2 == 0 else 1
    units = n_features // unit
    if units < n_levels:
        raise ValueError(f"cannot split {n_features} encoded features into {n_levels} PINs levels")
    q, r = divmod(units, n_levels)
    return [unit * (q + (1 if i < r else 0)) for i in range(n_levels)]


class _Level(nn.Module):
    def __init__(self, in_dim: int, width: int, depth: int, out_dim: int, activation: str) -> None:
        super().__init__()
        dims = [in_dim] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(width, out_dim)
        self.activation = activation

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        for layer in self.layers:
            z = activation_fn(self.activation, layer(z))
        return z, self.head(z)


class PINs(Network):
    """Hierarchical residual MLP over frequency bands, with progressive level gates."""

    def __init__(self, in_dim: int, out_dim: int, coord_dim: int, config: "PINsConfig") -> None:
        super().__init__(in_dim, out_dim)
        if config.n_levels < 1 or config.layers_per_level < 1:
            raise ValueError("PINs needs n_levels ≥ 1 and layers_per_level ≥ 1")
        if not (0.0 <= config.schedule_end <= 1.0 and config.ramp >= 0.0):
            raise ValueError(f"PINs schedule_end must be in [0, 1] and ramp ≥ 0, got {config.schedule_end}, {config.ramp}")
        check_activation(config.activation, HIDDEN_ACTIVATIONS, "PINs activation")
        self.config = config
        self.coord_dim = coord_dim
        self.sizes = band_sizes(in_dim, config.n_levels)
        levels = []
        for i, size in enumerate(self.sizes):  # built in order: level l's init never depends on L
            first_in = coord_dim if i == 0 else config.width
            levels.append(_Level(first_in + size, config.width, config.layers_per_level, out_dim, config.activation))
        self.levels = nn.ModuleList(levels)
        self.register_buffer("progress", torch.zeros((), dtype=torch.float64))  # of the last update, in [0, 1]
        self.max_level: int | None = None

    @property
    def n_levels(self) -> int:
        return self.config.n_levels

    def set_level(self, level: int | None) -> None:
        """Truncate the output at ``level`` (1-based) for export; ``None`` uses every level."""
        if level is not None and not 1 <= level <= self.n_levels:
            raise ValueError(f"level must be in 1..{self.n_levels}, got {level}")
        self.max_level = level

    def level_start(self, level: int) -> float:
        """Progress (fraction of training) at which 1-based ``level`` starts to open (level 1 is always on)."""
        if level <= 1 or self.n_levels == 1:
            return 0.0
        return (level - 1) / (self.n_levels - 1) * self.config.schedule_end

    def gates(self, progress: float | None = None) -> list[float]:
        """Gate ``g_l ∈ [0, 1]`` of every level at ``progress`` (default: the progress of the last update)."""
        t = float(self.progress) if progress is None else float(progress)
        ramp = self.config.ramp
        out = []
        for level in range(1, self.n_levels + 1):
            start = self.level_start(level)
            if level == 1:
                out.append(1.0)
            elif ramp <= 0.0:
                out.append(1.0 if t > start else 0.0)
            else:
                u = min(1.0, max(0.0, (t - start) / ramp))
                out.append((1.0 - math.cos(math.pi * u)) / 2.0)
        return out

    def forward(self, h: Float[Tensor, "n i"], coords: Float[Tensor, "n d"] | None = None) -> Float[Tensor, "n o"]:
        if coords is None:
            raise ValueError("PINs needs the unit-cube coordinates (Field passes them)")
        return self.level_outputs(h, coords, self.max_level or self.n_levels, use_gates=True)[-1]

    def level_outputs(self, h: Tensor, coords: Tensor, up_to: int, use_gates: bool = True) -> list[Tensor]:
        """Outputs ``y_1..y_up_to`` (raw, before the field's head activation); closed levels are skipped."""
        bands = torch.split(h, self.sizes, dim=-1)
        gates = self.gates() if use_gates else [1.0] * self.n_levels
        z, y = self.levels[0](torch.cat([coords * 2.0 - 1.0, bands[0]], dim=-1))
        outputs = [y]
        for i in range(1, up_to):
            if gates[i] == 0.0:  # gates open in level order, so every later level is closed too
                outputs.extend([y] * (up_to - i))
                break
            z, delta = self.levels[i](torch.cat([z, bands[i]], dim=-1))
            y = y + gates[i] * delta
            outputs.append(y)
        return outputs

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        self.progress.fill_(float(progress))


@dataclass(frozen=True)
class PINsConfig(NetworkConfig):
    """Progressive implicit network: one residual MLP level per frequency band, switched on coarse to fine."""

    cli_name: ClassVar[str | None] = "pins"

    n_levels: int = 4
    """Number of levels L (the paper uses 3–5)."""
    width: int = 128
    """Hidden width of every level."""
    layers_per_level: int = 2
    """Hidden layers per level."""
    activation: Activation = "relu"
    """Hidden activation."""
    schedule_end: float = 0.5
    """Progress (fraction of training) at which the last level starts to open (levels open at equal intervals before it)."""
    ramp: float = 0.05
    """Length of each level's cosine warm-up ramp, as a fraction of training (0: hard switch)."""

    def setup(self, in_dim: int, out_dim: int, coord_dim: int) -> PINs:
        return PINs(in_dim, out_dim, coord_dim, self)
