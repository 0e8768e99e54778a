"""Encoding base class and the config pattern every encoding follows.

Contract: ``forward`` takes points in the unit cube ``[0,1]^d`` (tiny-cuda-nn convention) with shape
``(n, d)`` and returns features ``(n, out_dim)``. Each encoding maps to its own internal range itself.
Progressive encodings override ``update(progress, coords, per_sample_loss)``, where ``progress`` is the
fraction of the current training stage done (step / stage steps, in ``[0, 1]``): schedules are functions of
it, so no encoding needs to know the run's length. Their state lives in buffers so checkpoints capture it.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn


class Encoding(nn.Module):
    """Maps ``(n, in_dim)`` unit-cube points to ``(n, out_dim)`` features."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim

    @property
    def out_dim(self) -> int:
        raise NotImplementedError

    def forward(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n f"]:
        raise NotImplementedError

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        """Progressive-encoding hook, called by the trainer after every optimizer step. No-op here.

        ``progress``: fraction of the training stage done, in ``[0, 1]``; ``coords``: the step's unit-cube
        points ``(n, d)``; ``per_sample_loss``: their unreduced loss ``(n,)``.
        """

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer groups for this module's parameters (encodings with grids override the lr)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "lr": lr, "name": "encoding"}] if params else []


@dataclass(frozen=True)
class EncodingConfig:
    """Base of every encoding config: ``setup(in_dim)`` builds the paired module."""

    cli_name: ClassVar[str | None] = None
    """Name of ``--encoding NAME`` / ``--network NAME`` (``None``: not offered on the command line)."""

    def setup(self, in_dim: int) -> Encoding:
        raise NotImplementedError


def unit_to_signed(x: Tensor) -> Tensor:
    """``[0,1]`` → ``[-1,1]``."""
    return x * 2.0 - 1.0


def check_points(x: Tensor, in_dim: int) -> None:
    if x.ndim != 2 or x.shape[-1] != in_dim:
        raise ValueError(f"expected points of shape (n, {in_dim}), got {tuple(x.shape)}")


__all__ = ["Encoding", "EncodingConfig", "unit_to_signed", "check_points", "torch"]
