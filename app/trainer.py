"""The training loop every task shares: Adam + schedule, mixed precision, stages, callbacks, checkpoints.

A task supplies the model and two functions (``train_step``, ``evaluate``); the trainer knows nothing
about images, rays or SDFs. Everything around the loop is a callback (``fieldforge.app.callbacks``):
progress bar, metrics log, periodic evaluation, periodic checkpoints, a between-steps hook.

- **Stages**: a run is a sequence of phases, each with its own steps, loss weights and trainable
  parameter groups (one stage by default). The stage index is saved in the checkpoint and resumed.
  Progressive components receive the progress through their stage (``model.update(progress, ...)``).
- **Ranks**: the trainer knows ``rank`` and ``world_size``; only rank 0 writes files, each rank's task
  seeds its own sampler, and ``unwrap()`` reaches the module inside a DDP / ``torch.compile`` wrapper.
- **Lock**: each optimizer step runs under ``trainer.lock``; a viewer thread that takes the lock renders
  the model between two steps, never during one.
"""

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch

from fieldforge.app.checkpoint import load_state, load_weights, save_checkpoint
from fieldforge.app.guard import NumericalGuard
from fieldforge.app.config import OptimizerConfig, TrainerConfig
from fieldforge.app.runs import RunDir
from fieldforge.fields.wrapping import unwrap

T = TypeVar("T")
Track = Callable[[Sequence[T], str], Iterable[T]]
"""``track(items, description)``: iterate ``items`` while showing progress (evaluations, renders)."""


def no_track(items: Sequence[T], description: str = "") -> Iterable[T]:
    return items


@dataclass(frozen=True)
class Stage:
    """One phase of training."""

    name: str
    steps: int
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    """Weights the task's ``train_step`` reads (``ctx.weight(name, default)``)."""
    trainable: tuple[str, ...] | None = None
    """Prefixes of the parameter-group names trained in this stage (``None``: every group)."""
    lr_scale: float = 1.0
    """The stage's peak learning rate as a multiple of the optimizer's (every stage restarts the schedule)."""


@dataclass(frozen=True)
class StepContext:
    """Where a training step is: global step, its stage, and the progress through that stage."""

    step: int
    stage: Stage
    stage_index: int
    stage_step: int

    @property
    def progress(self) -> float:
        """Fraction of the stage done before this step, in ``[0, 1)``."""
        return self.stage_step / max(1, self.stage.steps)

    def weight(self, name: str, default: float = 1.0) -> float:
        return float(self.stage.loss_weights.get(name, default))


@dataclass
class StepResult:
    loss: torch.Tensor
    """Scalar loss to minimize."""
    coords: torch.Tensor | None = None
    """Unit-cube coordinates of the batch ``(n, d)`` (for progressive encodings)."""
    per_sample_loss: torch.Tensor | None = None
    """Unreduced loss ``(n,)`` (for SAPE's feedback)."""
    log: dict[str, float] = field(default_factory=dict)


class Task(Protocol):
    model: torch.nn.Module

    def param_groups(self, lr: float) -> list[dict]: ...

    def train_step(self, ctx: StepContext) -> StepResult: ...

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class Callback:
    """Hooks of the training loop; override any. ``trainer.is_main`` tells whether this rank writes."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_stage_start(self, trainer: "Trainer", stage: Stage) -> None: ...

    def on_step_end(self, trainer: "Trainer", result: StepResult, loss: float) -> None: ...

    def on_evaluation(self, trainer: "Trainer", metrics: dict[str, float], final: bool) -> None: ...

    def on_train_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...


def resolve_device(name: str) -> torch.device:
    from fieldforge.data.errors import InputError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError(None, "--device cuda: CUDA is not available on this machine (use --device cpu or auto)")
    return torch.device(name)


def schedule_factor(config: OptimizerConfig, step: int, total_steps: int) -> float:
    """Multiplier of the peak lr at a step of a stage: linear warm-up, then the chosen decay."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    t = min(1.0, max(0, step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    r = config.final_lr_ratio
    if config.schedule == "exponential":
        return r**t
    if config.schedule == "cosine":
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def is_trained(group_name: str, stage: Stage) -> bool:
    return stage.trainable is None or any(group_name.startswith(p) for p in stage.trainable)


class Trainer:
    def __init__(
        self, config: TrainerConfig, optim: OptimizerConfig, task: Task, run: RunDir, device: torch.device,
        stages: Sequence[Stage] | None = None, callbacks: Sequence[Callback] = (), rank: int = 0, world_size: int = 1,
        parallel: Any = None,
    ) -> None:
        self.config, self.optim_config, self.task, self.run, self.device = config, optim, task, run, device
        self.stages = list(stages) if stages else [Stage("train", config.steps)]
        self.callbacks = list(callbacks)
        self.rank, self.world_size = rank, world_size
        self.parallel = parallel
        """A ``fieldforge.app.distributed.DataParallel`` when ranks train together: gradients are averaged over
        them, rank 0 evaluates while the others wait, checkpoints hold every rank's sampler state."""
        self.step = 0
        self.stage_index = 0
        self.stage_start = 0
        groups = task.param_groups(optim.lr)
        for i, g in enumerate(groups):
            g.setdefault("name", f"group{i}")
        self.optimizer = torch.optim.Adam(groups, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, [self._lr_lambda(g["name"]) for g in groups])
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if (device.type == "cuda" and config.mixed_precision) else nullcontext()
        )
        self.last_eval: dict[str, float] = {}
        self.guard = NumericalGuard()
        """Skips non-finite steps, rolls back to the last checkpoint with a lower lr, stops if that fails too."""
        self.lock = threading.RLock()
        self.track: Track = no_track
        """Set by the progress-bar callback; tasks use it to show progress of evaluations and renders."""

    # -- stages ------------------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return self.stage_start + sum(s.steps for s in self.stages[self.stage_index :])

    @property
    def stage(self) -> Stage:
        return self.stages[self.stage_index]

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def unwrap(self) -> torch.nn.Module:
        """The task's model without its DDP / ``torch.compile`` wrapper."""
        return unwrap(self.task.model)

    def _lr_lambda(self, group_name: str) -> Callable[[int], float]:
        def fn(step: int) -> float:
            stage = self.stage
            if not is_trained(group_name, stage):
                return 0.0
            return stage.lr_scale * schedule_factor(self.optim_config, step - self.stage_start, stage.steps)

        return fn

    def _enter_stage(self, index: int) -> None:
        self.stage_index, self.stage_start = index, self.step
        self._apply_stage()

    def _apply_stage(self) -> None:
        """Train only the stage's parameter groups (the others get no gradient and lr 0)."""
        names = {g["name"]: is_trained(g["name"], self.stage) for g in self.optimizer.param_groups}
        for g in self.optimizer.param_groups:
            for p in g["params"]:
                p.requires_grad_(names[g["name"]])
        for cb in self.callbacks:
            cb.on_stage_start(self, self.stage)

    # -- checkpoints -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "stage": self.stage_index,
            "stage_name": self.stage.name,
            "stage_start": self.stage_start,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "task": self.task.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "last_eval": self.last_eval,
        }

    def save(self) -> None:
        """Write a checkpoint of the current step (rank 0 only; every rank calls it when training data-parallel)."""
        ranks = self.parallel.all_gather_object(self.task.state_dict()) if self.parallel is not None else None
        if self.is_main:
            state = self.state() if ranks is None else {**self.state(), "task_ranks": ranks}
            save_checkpoint(self.run, self.step, self.unwrap(), state, keep=self.config.keep_checkpoints)
        if self.parallel is not None:
            self.parallel.barrier()  # the checkpoint exists before any rank goes on (a roll-back reads the newest)

    def resume(self) -> int:
        """Restore the newest checkpoint of the run; returns its step (0 if there is none)."""
        latest = self.run.latest_checkpoint()
        if latest is None:
            return 0
        step, path = latest
        load_weights(path, self.unwrap(), total_steps=self.total_steps)
        state = load_state(path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule's lambdas depend on the configured stages, which a resume may extend.
        self.scheduler.lr_lambdas = [self._lr_lambda(g["name"]) for g in self.optimizer.param_groups]
        from fieldforge.app.distributed import rank_task_state

        task_state = rank_task_state(state, self.rank)  # each rank's own samplers when the checkpoint has them
        if task_state is not None:
            self.task.load_state_dict(task_state)
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.last_eval = state.get("last_eval", {})
        self.step = int(state["step"])
        self.stage_index = min(int(state.get("stage", 0)), len(self.stages) - 1)
        self.stage_start = int(state.get("stage_start", 0))
        if self.is_main:
            self.run.truncate_metrics(self.step)
        if self.parallel is not None:  # ranks > 0 drop their copy of rank 0's per-rank accumulators (SAPE's splats)
            self.parallel.attach(self.unwrap())
        return self.step

    # -- loop --------------------------------------------------------------------------------------
    def evaluate(self, final: bool = False) -> dict[str, float]:
        if self.parallel is not None and not self.is_main:  # rank 0 evaluates; the others wait for it (periodic)
            if not final:
                self.parallel.barrier()
            return {}
        model = self.task.model
        was_training = model.training
        model.eval()
        with self.lock, torch.no_grad():
            metrics = self.task.evaluate(self.step, final, self.track)
        model.train(was_training)
        self.last_eval = metrics
        for cb in self.callbacks:
            cb.on_evaluation(self, metrics, final)
        if self.parallel is not None and not final:
            self.parallel.barrier()
        return metrics

    def _context(self) -> StepContext:
        return StepContext(self.step, self.stage, self.stage_index, self.step - self.stage_start)

    def train_step(self) -> tuple[StepResult, float]:
        """One optimizer step (under the lock); returns the task's result and the loss value."""
        ctx = self._context()
        with self.lock:
            with self.autocast:
                result = self.task.train_step(ctx)
            self.optimizer.zero_grad(set_to_none=True)
            result.loss.backward()
            if self.parallel is not None:  # every rank steps with the ranks' mean gradient (and logs the mean loss)
                result.loss = self.parallel.average_gradients([p for g in self.optimizer.param_groups for p in g["params"]], result.loss)
            loss_value = float(result.loss.detach())
            if not self.guard.step_is_finite(loss_value, self.optimizer):  # skipped: weights and optimizer untouched
                self.guard.skip(self)
                return result, loss_value
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            psl = result.per_sample_loss.detach().float() if result.per_sample_loss is not None else None
            self.unwrap().update((ctx.stage_step + 1) / max(1, ctx.stage.steps), result.coords, psl)
            self.guard.after_step(self)  # weights the step made non-finite: back to the last good checkpoint
        return result, loss_value

    def train(self) -> dict[str, float]:
        """Train to the end of the last stage, save, then evaluate on everything; returns the final metrics."""
        start_step, t0 = self.step, time.perf_counter()
        self.task.model.train()
        for cb in self.callbacks:
            cb.on_train_start(self)
        self._apply_stage()
        while self.step < self.total_steps:
            if self.step - self.stage_start >= self.stage.steps:
                self.step_into_next_stage()
                continue
            result, loss = self.train_step()
            for cb in self.callbacks:
                cb.on_step_end(self, result, loss)
        train_seconds = time.perf_counter() - t0
        self.save()  # before the final evaluation: an interrupted evaluation never loses the run
        metrics = self.evaluate(final=True)
        metrics = {**metrics, "train_seconds": train_seconds, "steps": self.step, "steps_this_session": self.step - start_step}
        for cb in self.callbacks:
            cb.on_train_end(self, metrics)
        return metrics

    def step_into_next_stage(self) -> None:
        if self.stage_index + 1 >= len(self.stages):
            raise RuntimeError("no stage left")  # total_steps guards this
        self._enter_stage(self.stage_index + 1)
