"""Losses that return per-sample values too, for progressive encodings' feedback (SAPE)."""

import torch
from jaxtyping import Float
from torch import Tensor


def mse_per_sample(pred: Float[Tensor, "n c"], target: Float[Tensor, "n c"]) -> Float[Tensor, " n"]:
    """Squared error averaged over channels, one value per sample."""
    return ((pred.float() - target.float()) ** 2).mean(dim=-1)


def l1_per_sample(pred: Float[Tensor, "n c"], target: Float[Tensor, "n c"]) -> Float[Tensor, " n"]:
    return (pred.float() - target.float()).abs().mean(dim=-1)


def per_sample_loss(kind: str, pred: Tensor, target: Tensor) -> Tensor:
    if kind == "mse":
        return mse_per_sample(pred, target)
    if kind == "l1":
        return l1_per_sample(pred, target)
    raise ValueError(f"unknown loss {kind!r}")


__all__ = ["mse_per_sample", "l1_per_sample", "per_sample_loss", "torch"]
