"""Image-quality metrics. PSNR is a one-liner; SSIM comes from pytorch-msssim (Wang et al. 2004 setting)."""

import math

import torch
from jaxtyping import Float
from pytorch_msssim import ssim as _ssim
from torch import Tensor


def mse(pred: Tensor, target: Tensor) -> Tensor:
    return torch.mean((pred.float() - target.float()) ** 2)


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over all elements; ``inf`` for identical inputs."""
    m = float(mse(pred, target))
    return math.inf if m == 0.0 else 10.0 * math.log10(data_range**2 / m)


def ssim(pred: Float[Tensor, "h w c"], target: Float[Tensor, "h w c"], data_range: float = 1.0) -> float:
    """Structural similarity of two ``(h, w, c)`` images (11×11 Gaussian window, σ = 1.5)."""
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"ssim needs two (h, w, c) images of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    a = pred.float().clamp(0, 1).permute(2, 0, 1)[None]
    b = target.float().clamp(0, 1).permute(2, 0, 1)[None]
    win = 11 if min(pred.shape[:2]) >= 11 else (min(pred.shape[:2]) // 2) * 2 - 1
    return float(_ssim(a, b, data_range=data_range, size_average=True, win_size=max(win, 1)))
