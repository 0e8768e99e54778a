"""The open trainer: stages (steps, loss weights, trainable groups; saved and resumed), callbacks, the
between-steps lock, rank seams (only rank 0 writes; per-rank seeds), ``unwrap`` of wrapped models, and
saving before the final evaluation."""

import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from fieldforge.app.callbacks import BetweenSteps, MetricsLog, PeriodicCheckpoint
from fieldforge.app.config import OptimizerConfig, TrainerConfig
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks.base import TaskContext
from fieldforge.app.trainer import Callback, Stage, StepContext, StepResult, Trainer


class TwoPartModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)
        self.progress: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))

    def update(self, progress: float, coords=None, per_sample_loss=None) -> None:
        self.progress.append(progress)


class ToyTask:
    """Regress a fixed random map; the loss weight 'fit' scales the loss."""

    def __init__(self, model: nn.Module, seed: int = 0) -> None:
        self.model = model
        self.generator = torch.Generator().manual_seed(seed)
        self.target = nn.Linear(3, 3)
        self.weights: list[float] = []
        self.lock_free_in_step: list[bool] = []
        self.lock: threading.RLock | None = None
        self.fail_final = False

    def param_groups(self, lr: float) -> list[dict]:
        inner = self.model.module if isinstance(self.model, nn.DataParallel) else self.model
        return [{"name": "a", "params": list(inner.a.parameters())}, {"name": "b", "params": list(inner.b.parameters())}]

    def train_step(self, ctx: StepContext) -> StepResult:
        if self.lock is not None:
            self.lock_free_in_step.append(_acquire_elsewhere(self.lock))
        x = torch.randn(64, 3, generator=self.generator)
        with torch.no_grad():
            y = self.target(x)
        w = ctx.weight("fit")
        self.weights.append(w)
        return StepResult(loss=w * ((self.model(x) - y) ** 2).mean())

    def evaluate(self, step: int, final: bool, track) -> dict[str, float]:
        if final and self.fail_final:
            raise KeyboardInterrupt
        return {"step_seen": float(step)}

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _acquire_elsewhere(lock: threading.RLock) -> bool:
    got: list[bool] = []

    def attempt() -> None:
        ok = lock.acquire(blocking=False)
        if ok:
            lock.release()
        got.append(ok)

    t = threading.Thread(target=attempt)
    t.start()
    t.join()
    return got[0]


STAGES = [Stage("warm", 6, {"fit": 2.0}, trainable=("a",)), Stage("main", 10, {"fit": 1.0}, trainable=("b",))]


def make_trainer(run: RunDir, callbacks=(), rank: int = 0, model: nn.Module | None = None, every: int = 0) -> Trainer:
    model = model if model is not None else TwoPartModel()
    config = TrainerConfig(steps=16, checkpoint_every=every, keep_checkpoints=10, progress=False, log_every=1)
    task = ToyTask(model)
    return Trainer(config, OptimizerConfig(lr=1e-2), task, run, torch.device("cpu"), stages=STAGES, callbacks=list(callbacks), rank=rank)


def test_stages_train_their_groups_with_their_weights(tmp_path: Path) -> None:
    trainer = make_trainer(RunDir.create(tmp_path, "r", "t"))
    model = trainer.task.model
    a0, b0 = model.a.weight.detach().clone(), model.b.weight.detach().clone()
    for _ in range(6):
        trainer.train_step()
    assert not torch.equal(model.a.weight, a0) and torch.equal(model.b.weight, b0)  # warm: only 'a'
    a1 = model.a.weight.detach().clone()
    trainer.step_into_next_stage()
    for _ in range(10):
        trainer.train_step()
    assert torch.equal(model.a.weight, a1) and not torch.equal(model.b.weight, b0)  # main: only 'b'
    assert trainer.task.weights == [2.0] * 6 + [1.0] * 10
    # progress runs through each stage: 1/6 … 6/6, then 1/10 … 10/10
    assert model.progress[:6] == pytest.approx([(i + 1) / 6 for i in range(6)])
    assert model.progress[6:] == pytest.approx([(i + 1) / 10 for i in range(10)])


def test_a_stage_scales_its_peak_learning_rate(tmp_path: Path) -> None:
    """Each stage restarts the schedule at ``lr_scale ×`` the optimizer's peak (KiloNeRF fine-tuning: 0.1)."""
    from fieldforge.app.trainer import schedule_factor

    model = TwoPartModel()
    task = ToyTask(model)
    stages = [Stage("warm", 4, {"fit": 1.0}), Stage("main", 4, {"fit": 1.0}, lr_scale=0.1)]
    config = TrainerConfig(steps=8, checkpoint_every=0, progress=False, log_every=1)
    optim = OptimizerConfig(lr=1e-2)
    trainer = Trainer(config, optim, task, RunDir.create(tmp_path, "r", "t"), torch.device("cpu"), stages=stages)
    seen = []
    for _ in range(4):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.train_step()
    trainer.step_into_next_stage()
    for _ in range(4):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.train_step()
    expected = [1e-2 * schedule_factor(optim, k, 4) for k in range(4)] + [1e-3 * schedule_factor(optim, k, 4) for k in range(4)]
    assert seen == pytest.approx(expected)


def test_train_runs_every_stage_and_the_stage_is_resumed(tmp_path: Path) -> None:
    full = make_trainer(RunDir.create(tmp_path, "full", "t"))
    full.train()
    assert full.step == 16 and full.stage.name == "main"

    run = RunDir.create(tmp_path, "cut", "t")
    first = make_trainer(run, callbacks=[PeriodicCheckpoint(8)])
    with pytest.raises(RuntimeError, match="stop"):  # killed at step 9, in the second stage

        class Stop(Callback):
            def on_step_end(self, trainer, result, loss) -> None:
                if trainer.step == 9:
                    raise RuntimeError("stop")

        first.callbacks.append(Stop())
        first.train()
    second = make_trainer(run)
    assert second.resume() == 8
    assert (second.stage_index, second.stage_start) == (1, 6)  # the checkpoint said: stage 'main' since step 6
    second.train()
    for p, q in zip(full.task.model.parameters(), second.task.model.parameters()):
        assert torch.equal(p, q)  # bit for bit the uninterrupted run


def test_lock_is_held_during_steps_only(tmp_path: Path) -> None:
    free_between: list[bool] = []
    trainer = make_trainer(RunDir.create(tmp_path, "r", "t"))
    trainer.task.lock = trainer.lock
    trainer.callbacks.append(BetweenSteps(lambda t: free_between.append(_acquire_elsewhere(t.lock))))
    trainer.train()
    assert trainer.task.lock_free_in_step and not any(trainer.task.lock_free_in_step)
    assert len(free_between) == 16 and all(free_between)


def test_only_rank_zero_writes(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r", "t")
    worker = make_trainer(run, callbacks=[MetricsLog(1), PeriodicCheckpoint(4)], rank=1)
    worker.train()
    assert run.checkpoints() == [] and not run.metrics_path.exists()
    main = make_trainer(run, callbacks=[MetricsLog(1), PeriodicCheckpoint(4)], rank=0)
    main.train()
    assert [s for s, _ in run.checkpoints()] == [4, 8, 12, 16] and run.metrics_path.exists()


def test_ranks_draw_different_samples() -> None:
    seeds = {TaskContext(torch.device("cpu"), rank=r, world_size=4).seed(7) for r in range(4)}
    assert len(seeds) == 4 and TaskContext(torch.device("cpu")).seed(7) == 7


def test_wrapped_model_saves_plain_keys(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r", "t")
    trainer = make_trainer(run, model=nn.DataParallel(TwoPartModel()))
    assert isinstance(trainer.unwrap(), TwoPartModel)
    trainer.train()
    from safetensors.torch import load_file

    keys = set(load_file(str(run.latest_checkpoint()[1])))
    assert keys == {"a.weight", "a.bias", "b.weight", "b.bias"}


def test_checkpoint_is_written_before_the_final_evaluation(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r", "t")
    trainer = make_trainer(run)
    trainer.task.fail_final = True  # Ctrl-C during the final evaluation
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert run.latest_checkpoint()[0] == 16
    again = make_trainer(run)
    assert again.resume() == 16
    metrics = again.train()  # nothing left to train: evaluates only
    assert metrics["steps"] == 16 and metrics["steps_this_session"] == 0 and metrics["step_seen"] == 16
