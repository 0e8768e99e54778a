"""Multi-resolution hash grid encoding (instant-ngp, Müller et al. 2022): a learned table, fp32.

The function it computes is fixed once in :mod:`fieldforge.fields.kernels.hashgrid_reference` (levels, table
layout, dense/hashed indexing, interpolation, init); :func:`hash_grid_encode` there is the pure-torch
reference every fast backend (Triton, tiny-cuda-nn) must reproduce exactly, forward and backward. This
module holds the ``nn.Module`` and its config, and dispatches to ``fieldforge.fields.kernels``.
"""

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from fieldforge.fields.encodings.base import Encoding, EncodingConfig
from fieldforge.fields.encodings.grids import param_group
from fieldforge.fields.kernels.hashgrid_reference import (
    HASH_PRIMES,
    HashGridLayout,
    hash_grid_encode,
    hash_grid_indices_weights,
    hash_grid_layout,
    level_resolutions,
)


class HashGridEncoding(Encoding):
    """Learned multi-resolution hash grid; see :func:`hash_grid_encode` for the exact convention."""

    def __init__(self, in_dim: int, config: "HashGridEncodingConfig") -> None:
        super().__init__(in_dim)
        self.config = config
        self.layout = hash_grid_layout(
            in_dim, config.n_levels, config.log2_table_size, config.base_resolution, config.max_resolution
        )
        self.table = nn.Parameter(torch.empty(self.layout.n_rows, config.features_per_level, dtype=torch.float32))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.table.uniform_(-self.config.init_scale, self.config.init_scale)

    @property
    def out_dim(self) -> int:
        return self.config.n_levels * self.config.features_per_level

    def forward(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n f"]:
        if self.config.backend == "torch":
            return hash_grid_encode(x, self.table, self.layout).to(x.dtype)
        from fieldforge.fields.kernels.hashgrid_backend import hash_grid_encode_backend  # fast paths (lazy; logged once)

        return hash_grid_encode_backend(x, self.table, self.layout, self.config.backend).to(x.dtype)

    def param_groups(self, lr: float) -> list[dict]:
        c = self.config
        return [param_group("encoding.hash_table", [self.table], lr, c.lr_multiplier, c.weight_decay)]


@dataclass(frozen=True)
class HashGridEncodingConfig(EncodingConfig):
    """Multi-resolution hash grid (instant-ngp): L levels × F features, 2^T rows per hashed level, fp32."""

    cli_name: ClassVar[str | None] = "hashgrid"

    n_levels: int = 16
    """Number of levels L."""
    features_per_level: int = 2
    """Features F per level (output has L·F features)."""
    log2_table_size: int = 19
    """T: rows per hashed level are 2^T (instant-ngp: 19 for NeRF; smaller is much faster on CPU)."""
    base_resolution: int = 16
    """Coarsest level's cells per axis N_min."""
    max_resolution: int = 2048
    """Finest level's cells per axis N_max (≈ the signal's resolution; 2048 for NeRF/SDF scenes)."""
    init_scale: float = 1e-4
    """Table init U(−s, s); FreSh uses a large s (e.g. 1) so the untrained output depends on the grid."""
    lr_multiplier: float = 1.0
    """Learning-rate multiplier of the table relative to the optimizer's lr."""
    weight_decay: float | None = None
    """Weight decay of the table (None: the optimizer's; instant-ngp uses none on the grid)."""
    backend: Literal["torch", "triton", "tcnn", "auto"] = "auto"
    """Implementation: 'torch' (reference), 'triton' (fused kernels on CUDA, fp32 table), 'auto' (Triton on
    CUDA, else torch; logged once). 'tcnn' falls back to torch: tcnn's HashGrid is another function."""

    def setup(self, in_dim: int) -> HashGridEncoding:
        return HashGridEncoding(in_dim, self)


__all__ = [
    "HASH_PRIMES",
    "HashGridEncoding",
    "HashGridEncodingConfig",
    "HashGridLayout",
    "hash_grid_encode",
    "hash_grid_indices_weights",
    "hash_grid_layout",
    "level_resolutions",
]
