"""NeRF frequency positional encoding (Mildenhall et al. 2020).

γ(p) = [p, sin(2^k π p'), cos(2^k π p')]_{k=0..L-1} per coordinate, with p' = 2p − 1 ∈ [-1,1].
Layout: for each band k, all d sines, then all d cosines (``[sin_k(x_1..x_d), cos_k(x_1..x_d)]``).
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.encodings.base import Encoding, EncodingConfig, unit_to_signed


def frequency_bands(n_frequencies: int, max_log2: float | None = None) -> Tensor:
    """Angular multipliers ``π·2^k`` for ``k = 0..L-1`` (or log-spaced up to ``2^max_log2``)."""
    top = n_frequencies - 1 if max_log2 is None else max_log2
    exps = torch.linspace(0.0, float(top), n_frequencies, dtype=torch.float64) if n_frequencies > 1 else torch.zeros(1, dtype=torch.float64)
    return (torch.pi * 2.0**exps).float()


class FrequencyEncoding(Encoding):
    """NeRF positional encoding; ``band_weights`` (all ones here) is the hook coarse-to-fine windows use."""

    def __init__(self, in_dim: int, config: "FrequencyEncodingConfig") -> None:
        super().__init__(in_dim)
        self.config = config
        self.register_buffer("bands", frequency_bands(config.n_frequencies, config.max_log2_frequency), persistent=False)

    @property
    def n_bands(self) -> int:
        return self.config.n_frequencies

    @property
    def out_dim(self) -> int:
        return self.in_dim * (2 * self.config.n_frequencies + int(self.config.include_input))

    def band_weights(self) -> Tensor | None:
        """Per-band weights ``(L,)`` applied to sin/cos features; ``None`` means all ones."""
        return None

    def forward(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n f"]:
        p = unit_to_signed(x)
        angles = p[:, None, :] * self.bands[:, None].to(p.dtype)  # (n, L, d)
        feats = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # (n, L, 2d)
        w = self.band_weights()
        if w is not None:
            feats = feats * w.to(feats.dtype)[None, :, None]
        feats = feats.flatten(1)
        return torch.cat([p, feats], dim=-1) if self.config.include_input else feats


@dataclass(frozen=True)
class FrequencyEncodingConfig(EncodingConfig):
    """NeRF positional encoding with frequencies π·2^k, k = 0..L−1, on coordinates in [-1,1]."""

    cli_name: ClassVar[str | None] = "frequency"

    n_frequencies: int = 10
    """Number of octave bands L."""
    max_log2_frequency: float | None = None
    """If set, bands are log-spaced from 2^0 to 2^max (FF paper's "PE" scale); default: octaves 0..L−1."""
    include_input: bool = True
    """Concatenate the (centred) raw coordinates."""

    def setup(self, in_dim: int) -> FrequencyEncoding:
        return FrequencyEncoding(in_dim, self)
