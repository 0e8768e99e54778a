"""Gaussian random Fourier features (Tancik et al. 2020).

γ(v) = [sin(2π B v), cos(2π B v)] with B ∈ R^{m×d}, B_ij ~ N(0, σ²), v ∈ [0,1]^d.
Rows of B are sorted by ‖b_j‖ so progressive methods (coarse-to-fine, SAPE, PINs) can unmask them in
order; sorting does not change the plain encoding. Layout: sin and cos of each frequency interleaved
(``[sin b_1·v, cos b_1·v, sin b_2·v, ...]``).
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.encodings.base import Encoding, EncodingConfig, unit_to_signed


def gaussian_frequencies(n_features: int, in_dim: int, sigma: float, seed: int) -> Float[Tensor, "m d"]:
    """``(m, d)`` Gaussian frequency matrix (cycles per unit), rows sorted by norm, reproducible by seed."""
    gen = torch.Generator().manual_seed(seed)
    b = torch.randn(n_features, in_dim, generator=gen, dtype=torch.float64) * sigma
    order = torch.argsort(b.norm(dim=-1))
    return b[order].float()


class FourierFeatureEncoding(Encoding):
    """Random Fourier features; ``feature_weights`` (all ones here) is the hook for progressive masks."""

    def __init__(self, in_dim: int, config: "FourierEncodingConfig") -> None:
        super().__init__(in_dim)
        self.config = config
        self.register_buffer("B", gaussian_frequencies(config.n_features, in_dim, config.sigma, config.seed))

    @property
    def n_features(self) -> int:
        return self.config.n_features

    @property
    def out_dim(self) -> int:
        return 2 * self.config.n_features + (self.in_dim if self.config.include_input else 0)

    def feature_weights(self, x: Tensor) -> Tensor | None:
        """Weights ``(m,)`` or ``(n, m)`` per frequency; ``None`` means all ones."""
        return None

    def forward(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n f"]:
        angles = 2.0 * torch.pi * (x @ self.B.T.to(x.dtype))  # (n, m)
        feats = torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1)  # (n, m, 2)
        w = self.feature_weights(x)
        if w is not None:
            feats = feats * (w[..., None] if w.ndim == 2 else w[None, :, None]).to(feats.dtype)
        feats = feats.reshape(x.shape[0], 2 * angles.shape[-1])
        if self.config.include_input:
            return torch.cat([unit_to_signed(x), feats], dim=-1)
        return feats


@dataclass(frozen=True)
class FourierEncodingConfig(EncodingConfig):
    """Gaussian random Fourier features γ(v) = [sin 2πBv, cos 2πBv], B ~ N(0, σ²), v ∈ [0,1]^d."""

    cli_name: ClassVar[str | None] = "fourier"

    sigma: float = 10.0
    """Standard deviation σ of the frequencies, in cycles per unit (10: natural images, Tancik et al.)."""
    n_features: int = 256
    """Number of frequencies m (the encoding has 2m features)."""
    include_input: bool = False
    """Prepend the centred raw coordinates (SAPE does)."""
    seed: int = 0
    """Seed of the frequency matrix (independent of the training seed)."""

    def setup(self, in_dim: int) -> FourierFeatureEncoding:
        return FourierFeatureEncoding(in_dim, self)
