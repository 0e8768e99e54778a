"""Numerical guard: a non-finite loss or gradient skips the step (weights and optimizer untouched); five in a
row, or weights made non-finite, roll back to the last checkpoint with the learning rate ×0.1 (logged); a
second divergence stops with one line and exit code 2; checkpoints and exports never hold NaN."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from fieldforge.app.callbacks import MetricsLog, PeriodicCheckpoint
from fieldforge.app.checkpoint import NonFiniteCheckpoint, save_checkpoint
from fieldforge.app.cli import main
from fieldforge.app.config import OptimizerConfig, TrainerConfig
from fieldforge.app.guard import LR_FACTOR, PATIENCE, TrainingDiverged
from fieldforge.app.runs import RunDir
from fieldforge.app.trainer import Callback, StepContext, StepResult, Trainer


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(3, 2)
        self.extra = nn.Parameter(torch.zeros(2))
        """Used by the loss only on ``zero_grad_at`` attempts, with a zero gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)

    def update(self, progress: float, coords=None, per_sample_loss=None) -> None: ...


class PoisonedTask:
    """Regress a fixed map; on the listed attempts (1-based calls of ``train_step``) the loss is NaN, or
    finite with an infinite gradient (``sqrt`` at 0), or a parameter's first gradient is zero (NaN with ε = 0)."""

    def __init__(self, nan_loss: frozenset[int] = frozenset(), inf_grad: frozenset[int] = frozenset(), nan_from: int | None = None,
                 zero_grad_at: frozenset[int] = frozenset()) -> None:
        self.model = Model()
        self.nan_loss, self.inf_grad, self.nan_from, self.zero_grad_at = nan_loss, inf_grad, nan_from, zero_grad_at
        self.attempt = 0
        self.generator = torch.Generator().manual_seed(1)

    def param_groups(self, lr: float) -> list[dict]:
        return [{"name": "layer", "params": list(self.model.parameters())}]

    def train_step(self, ctx: StepContext) -> StepResult:
        self.attempt += 1
        x = torch.randn(32, 3, generator=self.generator)
        loss = ((self.model(x) - x[:, :2] * 0.5) ** 2).mean()
        w = self.model.layer.weight
        if self.attempt in self.nan_loss or (self.nan_from is not None and self.attempt >= self.nan_from):
            loss = loss * float("nan")
        elif self.attempt in self.inf_grad:
            loss = loss + torch.sqrt((w - w.detach()).abs()).sum()  # value 0, gradient inf
        elif self.attempt in self.zero_grad_at:
            loss = loss + 0.0 * self.model.extra.sum()
        return StepResult(loss=loss)

    def evaluate(self, step: int, final: bool, track) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class Weights(Callback):
    """The weights after every step (by step)."""

    def __init__(self) -> None:
        self.by_step: dict[int, torch.Tensor] = {}

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        self.by_step[trainer.step] = trainer.task.model.layer.weight.detach().clone()


def make_trainer(tmp_path: Path, task: PoisonedTask, steps: int = 20, every: int = 4, eps: float = 1e-8) -> tuple[Trainer, Weights]:
    run = RunDir.create(tmp_path, "run", "toy")
    weights = Weights()
    config = TrainerConfig(steps=steps, checkpoint_every=every, progress=False, log_every=1)
    trainer = Trainer(config, OptimizerConfig(lr=1e-2, eps=eps), task, run, torch.device("cpu"),
                      callbacks=[MetricsLog(1), PeriodicCheckpoint(every), weights])
    return trainer, weights


def checkpoints_are_finite(run: RunDir) -> bool:
    found = run.checkpoints()
    return bool(found) and all(bool(torch.isfinite(t).all()) for _, p in found for t in load_file(str(p)).values())


@pytest.mark.parametrize("poison", ["nan_loss", "inf_grad"])
def test_a_non_finite_step_is_skipped(tmp_path: Path, poison: str) -> None:
    trainer, weights = make_trainer(tmp_path, PoisonedTask(**{poison: frozenset({3})}))
    trainer.train()
    assert trainer.guard.skipped == 1 and trainer.guard.rollbacks == 0
    assert torch.equal(weights.by_step[3], weights.by_step[2]), "the skipped step changed the weights"
    assert not torch.equal(weights.by_step[4], weights.by_step[3])
    state = trainer.optimizer.state_dict()["state"]
    assert all(bool(torch.isfinite(v).all()) for s in state.values() for v in s.values() if torch.is_tensor(v))
    assert trainer.step == 20 and checkpoints_are_finite(trainer.run)


def test_a_streak_rolls_back_to_the_last_checkpoint_with_a_lower_lr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    task = PoisonedTask(nan_loss=frozenset(range(7, 7 + PATIENCE)))
    trainer, weights = make_trainer(tmp_path, task)
    lr_before = trainer.scheduler.base_lrs[0]
    trainer.train()
    assert trainer.guard.rollbacks == 1 and trainer.step == 20
    assert trainer.scheduler.base_lrs[0] == pytest.approx(lr_before * LR_FACTOR)
    events = [r for r in map(json.loads, trainer.run.metrics_path.read_text().splitlines()) if r.get("event") == "rollback"]
    # the newest checkpoint (step 8, written during the streak) holds the last good weights, those of step 6
    assert len(events) == 1 and events[0]["step"] == 8 and events[0]["from_step"] == 6 + PATIENCE
    assert torch.equal(weights.by_step[8], weights.by_step[6])
    assert "rolled back to step 8 with the learning rate ×0.1" in " ".join(capsys.readouterr().err.split())
    assert checkpoints_are_finite(trainer.run)
    assert task.attempt == 20 + (6 + PATIENCE - 8)  # the steps after the checkpoint are redone


def test_diverging_again_after_the_rollback_stops(tmp_path: Path) -> None:
    trainer, _ = make_trainer(tmp_path, PoisonedTask(nan_from=7))
    with pytest.raises(TrainingDiverged, match="diverged again .* after rolling back to step 8"):
        trainer.train()
    assert trainer.guard.rollbacks == 1 and checkpoints_are_finite(trainer.run)


def test_diverging_before_the_first_checkpoint_stops(tmp_path: Path) -> None:
    trainer, _ = make_trainer(tmp_path, PoisonedTask(nan_from=1), every=100)
    with pytest.raises(TrainingDiverged, match="before the first checkpoint; lower --optim.lr"):
        trainer.train()
    assert trainer.run.checkpoints() == []


def test_a_step_that_makes_weights_nan_rolls_back(tmp_path: Path) -> None:
    """Adam with ε = 0 divides 0 by 0 on a parameter's first, all-zero gradient: NaN weights from a finite loss."""
    task = PoisonedTask(zero_grad_at=frozenset({6}))
    trainer, _ = make_trainer(tmp_path, task, eps=0.0)
    trainer.train()
    events = [r for r in map(json.loads, trainer.run.metrics_path.read_text().splitlines()) if r.get("event") == "rollback"]
    assert trainer.guard.rollbacks == 1 and events[0]["from_step"] == 6 and "made weights non-finite" in events[0]["reason"]
    assert trainer.step == 20 and checkpoints_are_finite(trainer.run)
    assert all(bool(torch.isfinite(p).all()) for p in task.model.parameters())


def test_a_checkpoint_with_nan_is_never_written(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "run", "toy")
    model = Model()
    with torch.no_grad():
        model.layer.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteCheckpoint, match="layer.weight"):
        save_checkpoint(run, 1, model, {"step": 1})
    assert not run.checkpoint_dir.exists() or not any(run.checkpoint_dir.iterdir())
    with pytest.raises(NonFiniteCheckpoint, match=r"optimizer"):
        save_checkpoint(run, 1, Model(), {"optimizer": {"exp_avg": torch.tensor([float("inf")])}})


def test_cli_eps_zero_stops_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The probe's case: ``--optim.eps 0 --checkpoint-every 1`` made NaN weights that were saved and exported."""
    from tests.test_bad_inputs import png

    png(tmp_path / "a.png", 12, 12)
    argv = ["train", "image", "--data", str(tmp_path / "a.png"), "--output-dir", str(tmp_path / "runs"), "--name", "r",
            "--steps", "6", "--batch-size", "64", "--optim.eps", "0", "--checkpoint-every", "1", "--progress", "False",
            "--field.encoding.log2-table-size", "10", "--field.encoding.n-levels", "4"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fieldforge: error: ") and "training diverged" in err[-1] and "raise --optim.eps" in err[-1]
    run = RunDir(tmp_path / "runs" / "r")
    assert all(bool(torch.isfinite(t).all()) for _, p in run.checkpoints() for t in load_file(str(p)).values())
