"""The trainer's standard callbacks: progress bar, metrics log, periodic evaluation and checkpoints, and a
between-steps hook (e.g. a viewer that renders while training)."""

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fieldforge.app.config import TrainerConfig
from fieldforge.app.trainer import Callback, StepResult, Trainer, no_track

T = TypeVar("T")
console = Console(stderr=True)


class ProgressBar(Callback):
    """A rich progress bar over the steps, plus one bar per evaluation / render (``trainer.track``)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress: Progress | None = None
        self.bar = None
        self.t0 = 0.0
        self.start_step = 0

    def on_train_start(self, trainer: Trainer) -> None:
        columns = [
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        ]
        self.progress = Progress(*columns, console=console, disable=not (self.enabled and trainer.is_main), transient=False)
        self.progress.start()
        self.bar = self.progress.add_task(trainer.stage.name, total=trainer.total_steps, completed=trainer.step, info="")
        self.t0, self.start_step = time.perf_counter(), trainer.step
        trainer.track = self.track

    def on_stage_start(self, trainer: Trainer, stage) -> None:
        if self.progress is not None and self.bar is not None:
            self.progress.update(self.bar, description=stage.name, total=trainer.total_steps)

    def track(self, items: Sequence[T], description: str = "") -> Iterable[T]:
        if self.progress is None:
            yield from items
            return
        bar = self.progress.add_task(description, total=len(items), info="")
        for item in items:
            yield item
            self.progress.advance(bar)
        self.progress.remove_task(bar)

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        assert self.progress is not None and self.bar is not None
        if trainer.step % 10 == 0 or trainer.step == trainer.total_steps:
            rate = (trainer.step - self.start_step) / max(1e-9, time.perf_counter() - self.t0)
            info = f"loss {loss:.3g} " + " ".join(f"{k} {v:.2f}" for k, v in result.log.items()) + f" {rate:.1f} it/s"
            self.progress.update(self.bar, completed=trainer.step, info=info)

    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.stop()
        trainer.track = no_track


class MetricsLog(Callback):
    """Appends a ``train`` record every ``every`` steps and an ``eval`` record per evaluation (rank 0)."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.t0 = 0.0
        self.start_step = 0

    def on_train_start(self, trainer: Trainer) -> None:
        self.t0, self.start_step = time.perf_counter(), trainer.step

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        if trainer.is_main and (trainer.step % self.every == 0 or trainer.step == trainer.total_steps):
            rate = (trainer.step - self.start_step) / max(1e-9, time.perf_counter() - self.t0)
            lr = trainer.scheduler.get_last_lr()[0]
            record = {"step": trainer.step, "kind": "train", "stage": trainer.stage.name, "loss": loss, "lr": lr, "steps_per_s": rate, **result.log}
            trainer.run.append_metrics(record)

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float], final: bool) -> None:
        if trainer.is_main:
            trainer.run.append_metrics({"step": trainer.step, "kind": "eval", "final": final, **metrics})


class PeriodicEvaluation(Callback):
    """A (bounded) evaluation every ``every`` steps before the last; the final one is the trainer's."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        if self.every and trainer.step % self.every == 0 and trainer.step < trainer.total_steps:
            trainer.evaluate(final=False)


class PeriodicCheckpoint(Callback):
    """A checkpoint every ``every`` steps before the last (the trainer always saves at the end)."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        if self.every and trainer.step % self.every == 0 and trainer.step < trainer.total_steps:
            trainer.save()


class BetweenSteps(Callback):
    """Calls ``fn(trainer)`` after every ``every`` steps, outside the training lock (a viewer's hook: it may
    take ``trainer.lock`` to render the model while no step runs)."""

    def __init__(self, fn: Callable[[Trainer], None], every: int = 1) -> None:
        self.fn, self.every = fn, max(1, every)

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        if trainer.step % self.every == 0:
            self.fn(trainer)


class TensorBoardLog(Callback):
    """Training curves as TensorBoard event files in ``<run>/tensorboard/`` (rank 0): loss, learning rate, steps/s
    and the task's logged values every ``every`` steps, and every evaluation's metrics. Needs ``tensorboard``
    (an optional install); ``standard_callbacks`` adds it only when that is importable."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.writer = None
        self.t0 = 0.0
        self.start_step = 0

    @staticmethod
    def available() -> bool:
        import importlib.util

        return importlib.util.find_spec("tensorboard") is not None

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(trainer.run.path / "tensorboard"))
        self.t0, self.start_step = time.perf_counter(), trainer.step

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        if self.writer is None or not (trainer.step % self.every == 0 or trainer.step == trainer.total_steps):
            return
        rate = (trainer.step - self.start_step) / max(1e-9, time.perf_counter() - self.t0)
        scalars = {"train/loss": loss, "train/lr": trainer.scheduler.get_last_lr()[0], "train/steps_per_s": rate,
                   **{f"train/{k}": v for k, v in result.log.items()}}
        for tag, value in scalars.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag, value, trainer.step)

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float], final: bool) -> None:
        if self.writer is None:
            return
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self.writer.add_scalar(f"eval/{k}", v, trainer.step)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class EvaluationPreview(Callback):
    """Writes ``renders/eval-stepNNNNNN.png`` after each periodic evaluation (rank 0), so progress can be seen
    without a browser: the task's ``preview()`` (PNG bytes of what it just evaluated, or ``None``)."""

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float], final: bool) -> None:
        preview = getattr(trainer.task, "preview", None)
        if final or not trainer.is_main or preview is None:
            return
        png = preview()
        if png is not None:
            from fieldforge.app.atomic import atomic_write_bytes

            atomic_write_bytes(trainer.run.renders_dir / f"eval-step{trainer.step:06d}.png", png)


def standard_callbacks(config: TrainerConfig) -> list[Callback]:
    """What every ``fieldforge train`` run uses, in order (plus TensorBoard event files when it is installed)."""
    callbacks: list[Callback] = [ProgressBar(config.progress), MetricsLog(config.log_every), EvaluationPreview(),
                                 PeriodicEvaluation(config.eval_every), PeriodicCheckpoint(config.checkpoint_every)]
    if TensorBoardLog.available():
        callbacks.append(TensorBoardLog(config.log_every))
    return callbacks
