"""Coarse-to-fine positional encoding: BARF's cosine window over frequency bands (Lin et al. 2021; Nerfies).

Band ``k`` is weighted by ``w_k(α) = (1 − cos(π·clamp(α − k, 0, 1))) / 2`` with
``α = L·(p − s)/(e − s)``, ``p`` the training progress (step / steps of the stage, given to ``update``) and
``[s, e]`` the window's start and end fractions of training. Before ``s`` every band is off (the raw input,
when included, is always on); after ``e`` every band is fully on, so the encoding is then exactly the plain one.

Two encodings use it: the NeRF frequency encoding (bands are its octaves) and Gaussian Fourier features,
whose frequencies are sorted by magnitude, so the window reveals them from low to high (a band is one
frequency, or a contiguous group of ``n_bands`` of the sorted frequencies).
The only state is the progress of the last update (a float64 buffer), so checkpoints restore the window
exactly, and a run resumed with more steps opens its bands as a run of that length would from then on.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.encodings.fourier import FourierEncodingConfig, FourierFeatureEncoding
from fieldforge.fields.encodings.frequency import FrequencyEncoding, FrequencyEncodingConfig


def window_alpha(progress: float, n_bands: int, start: float, end: float) -> float:
    """``α = L·(progress − start)/(end − start)`` (unclamped; the window clamps per band)."""
    return n_bands * (progress - start) / (end - start)


def cosine_window(alpha: float, n_bands: int) -> Float[Tensor, " n_bands"]:
    """BARF weights ``(1 − cos(π·clamp(α − k, 0, 1)))/2`` for ``k = 0..L−1``, float64."""
    k = torch.arange(n_bands, dtype=torch.float64)
    return (1.0 - torch.cos(math.pi * (alpha - k).clamp(0.0, 1.0))) / 2.0


@dataclass(frozen=True)
class CoarseToFineWindow:
    """Start and end of the coarse-to-fine window, as fractions of training."""

    window_start: float = 0.0
    """Fraction of training at which the first band starts to open (BARF: 0 for images, 0.1 for NeRF)."""
    window_end: float = 0.4
    """Fraction of training at which every band is fully open (BARF: 0.4 for images, 0.5 for NeRF)."""

    def check_window(self) -> None:
        if not 0.0 <= self.window_start < self.window_end:
            raise ValueError(f"coarse-to-fine window needs 0 ≤ start < end, got [{self.window_start}, {self.window_end}]")


class _Progress:
    """Mixin: a persistent float64 buffer holding the progress of the last ``update``."""

    progress: Tensor

    def _init_progress(self) -> None:
        self.register_buffer("progress", torch.zeros((), dtype=torch.float64))  # type: ignore[attr-defined]

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        self.progress.fill_(float(progress))


class CoarseToFineFrequencyEncoding(_Progress, FrequencyEncoding):
    """NeRF positional encoding whose octaves open one after another (BARF)."""

    def __init__(self, in_dim: int, config: "CoarseToFineFrequencyConfig") -> None:
        config.check_window()
        super().__init__(in_dim, config)
        self._init_progress()

    def alpha(self) -> float:
        c = self.config
        return window_alpha(float(self.progress), self.n_bands, c.window_start, c.window_end)  # type: ignore[attr-defined]

    def band_weights(self) -> Tensor:
        return cosine_window(self.alpha(), self.n_bands).to(self.bands.device, torch.float32)


class CoarseToFineFourierEncoding(_Progress, FourierFeatureEncoding):
    """Gaussian Fourier features (sorted by ‖b‖) revealed from low to high frequency by the cosine window."""

    def __init__(self, in_dim: int, config: "CoarseToFineFourierConfig") -> None:
        config.check_window()
        super().__init__(in_dim, config)
        self._init_progress()
        m = config.n_features
        self.n_bands = m if config.n_bands is None else config.n_bands
        if not 1 <= self.n_bands <= m:
            raise ValueError(f"n_bands must be in [1, {m}], got {self.n_bands}")
        # Band of each (sorted) frequency: contiguous groups of the sorted order.
        self.register_buffer("band_of_feature", (torch.arange(m) * self.n_bands) // m, persistent=False)

    def alpha(self) -> float:
        c = self.config
        return window_alpha(float(self.progress), self.n_bands, c.window_start, c.window_end)  # type: ignore[attr-defined]

    def feature_weights(self, x: Tensor) -> Tensor:
        w = cosine_window(self.alpha(), self.n_bands).to(self.B.device, torch.float32)
        return w[self.band_of_feature]


@dataclass(frozen=True)
class CoarseToFineFrequencyConfig(FrequencyEncodingConfig, CoarseToFineWindow):
    """NeRF positional encoding with BARF's coarse-to-fine cosine window over its octaves."""

    cli_name: ClassVar[str | None] = "c2f-frequency"

    def setup(self, in_dim: int) -> CoarseToFineFrequencyEncoding:
        return CoarseToFineFrequencyEncoding(in_dim, self)


@dataclass(frozen=True)
class CoarseToFineFourierConfig(FourierEncodingConfig, CoarseToFineWindow):
    """Gaussian Fourier features, sorted by magnitude, opened from low to high by a coarse-to-fine window."""

    cli_name: ClassVar[str | None] = "c2f-fourier"

    n_bands: int | None = None
    """Window bands: the sorted frequencies split into this many contiguous groups (default: one per frequency)."""

    def setup(self, in_dim: int) -> CoarseToFineFourierEncoding:
        return CoarseToFineFourierEncoding(in_dim, self)
