"""Numerical guard of the training loop: no NaN is ever stepped into the weights or saved.

- A step whose loss or gradients are not finite is skipped (weights and optimizer state untouched; the
  step counter and schedule advance, as AMP's loss scaler does).
- After ``PATIENCE`` skipped steps in a row, or a step that made a weight non-finite, the trainer rolls
  back to its newest checkpoint (checkpoints only ever hold finite values) with the learning rate times
  ``LR_FACTOR``, logged on stderr and in ``metrics.jsonl``.
- Checkpoints written during a streak hold the last good weights (skipped steps change nothing), so the
  newest checkpoint is always a good one.
- If it diverges again before a good step and a newer checkpoint (or there is no checkpoint to return to),
  training stops with ``TrainingDiverged``: one line, exit code 2.
"""

import math
import warnings
from typing import Any

import torch
from rich.console import Console

from fieldforge.data.errors import InputError

PATIENCE = 5
"""Non-finite steps in a row before rolling back."""
LR_FACTOR = 0.1
"""Learning-rate multiplier applied at a rollback."""

console = Console(stderr=True)


class TrainingDiverged(InputError):
    """Training produced non-finite values again after a rollback (or before any checkpoint existed)."""


def all_finite(tensors: list[torch.Tensor]) -> bool:
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


class NumericalGuard:
    def __init__(self, patience: int = PATIENCE, lr_factor: float = LR_FACTOR) -> None:
        self.patience, self.lr_factor = patience, lr_factor
        self.bad_in_a_row = 0
        self.skipped = 0
        """Steps skipped in this session (all streaks)."""
        self.rollbacks = 0
        self.rolled_back_to: int | None = None
        """Checkpoint step of the last rollback: diverging again before a good step and a newer checkpoint stops."""
        self.good_since_rollback = 0

    def step_is_finite(self, loss: float, optimizer: torch.optim.Optimizer) -> bool:
        """Whether the loss and every gradient about to be applied are finite."""
        if not math.isfinite(loss):
            return False
        return all_finite([p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None])

    def skip(self, trainer: Any) -> None:
        """Drop this step's gradients; the step counter and the schedule advance (as AMP's loss scaler does)."""
        trainer.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # torch warns when the schedule steps before any optimizer step
            warnings.simplefilter("ignore", UserWarning)
            trainer.scheduler.step()
        trainer.step += 1
        self.after_skip(trainer)

    def after_skip(self, trainer: Any) -> None:
        self.bad_in_a_row += 1
        self.skipped += 1
        if self.bad_in_a_row >= self.patience:
            self.roll_back(trainer, f"{self.patience} steps in a row had a non-finite loss or gradient")

    def after_step(self, trainer: Any) -> None:
        self.bad_in_a_row = 0
        if not all_finite([p.detach() for p in trainer.unwrap().parameters()]):
            self.roll_back(trainer, "an optimizer step made weights non-finite")
        else:
            self.good_since_rollback += 1

    def roll_back(self, trainer: Any, why: str) -> None:
        """Restore the newest checkpoint with a lower learning rate, or raise ``TrainingDiverged``."""
        at = trainer.step
        latest = trainer.run.latest_checkpoint()
        hint = "lower --optim.lr" + (" or raise --optim.eps" if trainer.optim_config.eps == 0 else "")
        if latest is None:
            raise TrainingDiverged(trainer.run.path, f"training diverged at step {at} ({why}) before the first checkpoint; {hint}")
        if self.rolled_back_to is not None and (self.good_since_rollback == 0 or latest[0] <= self.rolled_back_to):
            raise TrainingDiverged(
                trainer.run.path,
                f"training diverged again at step {at} ({why}) after rolling back to step {self.rolled_back_to} with the learning rate ×{self.lr_factor:g}; {hint}",
            )
        trainer.resume()
        scheduler, optimizer = trainer.scheduler, trainer.optimizer
        scheduler.base_lrs = [b * self.lr_factor for b in scheduler.base_lrs]
        for group, base, fn in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["initial_lr"] = base
            group["lr"] = base * fn(scheduler.last_epoch)
        self.rolled_back_to, self.bad_in_a_row, self.good_since_rollback = latest[0], 0, 0
        self.rollbacks += 1
        lr = optimizer.param_groups[0]["lr"]
        if trainer.is_main:
            console.print(f"[yellow]warning:[/] step {at}: {why}; rolled back to step {latest[0]} with the learning rate ×{self.lr_factor:g} (now {lr:.3g})", soft_wrap=True)
            trainer.run.append_metrics({"step": trainer.step, "event": "rollback", "from_step": at, "reason": why, "lr": lr})
