"""Generic training loop: Adam + schedule, mixed precision, progress, metrics, atomic checkpoints, resume.

A task supplies the model and two functions (``train_step``, ``evaluate``); the trainer knows nothing
about images, rays or SDFs, nor about progressive encodings beyond calling ``model.update`` after
each optimizer step.
"""

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fieldforge.app.checkpoint import load_state, load_weights, save_checkpoint
from fieldforge.app.config import OptimizerConfig, TrainerConfig
from fieldforge.app.runs import RunDir

console = Console(stderr=True)


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

    def train_step(self, step: int) -> StepResult: ...

    def evaluate(self, step: int) -> dict[str, float]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but CUDA is not available")
    return torch.device(name)


def lr_lambda(config: OptimizerConfig, total_steps: int):
    """Multiplier of the peak lr at a step: linear warm-up, then the chosen decay."""

    def fn(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        t = min(1.0, max(0, step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
        r = config.final_lr_ratio
        if config.schedule == "exponential":
            return r**t
        if config.schedule == "cosine":
            return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    return fn


class Trainer:
    def __init__(self, config: TrainerConfig, optim: OptimizerConfig, task: Task, run: RunDir, device: torch.device) -> None:
        self.config, self.optim_config, self.task, self.run, self.device = config, optim, task, run, device
        self.optimizer = torch.optim.Adam(
            task.param_groups(optim.lr), lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(optim, config.steps))
        self.step = 0
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if (device.type == "cuda" and config.mixed_precision) else nullcontext()
        )
        self.last_eval: dict[str, float] = {}

    # -- checkpoints -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "task": self.task.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "last_eval": self.last_eval,
        }

    def save(self) -> None:
        save_checkpoint(self.run, self.step, self.task.model, self.state(), keep=self.config.keep_checkpoints)

    def resume(self) -> int:
        """Restore the newest checkpoint of the run; returns its step (0 if there is none)."""
        latest = self.run.latest_checkpoint()
        if latest is None:
            return 0
        step, path = latest
        load_weights(path, self.task.model)
        state = load_state(path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule's lambda depends on the configured total steps, which a resume may extend.
        self.scheduler.lr_lambdas = [lr_lambda(self.optim_config, self.config.steps)] * len(self.optimizer.param_groups)
        self.task.load_state_dict(state["task"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.last_eval = state.get("last_eval", {})
        self.step = state["step"]
        self.run.truncate_metrics(self.step)
        return self.step

    # -- loop --------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        self.task.model.eval()
        with torch.no_grad():
            metrics = self.task.evaluate(self.step)
        self.task.model.train()
        self.last_eval = metrics
        self.run.append_metrics({"step": self.step, "kind": "eval", **metrics})
        return metrics

    def train(self) -> dict[str, float]:
        cfg = self.config
        start_step, t0 = self.step, time.perf_counter()
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
        with Progress(*columns, console=console, disable=not cfg.progress, transient=False) as progress:
            bar = progress.add_task("train", total=cfg.steps, completed=self.step, info="")
            self.task.model.train()
            while self.step < cfg.steps:
                with self.autocast:
                    result = self.task.train_step(self.step)
                self.optimizer.zero_grad(set_to_none=True)
                result.loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                psl = result.per_sample_loss.detach().float() if result.per_sample_loss is not None else None
                self.task.model.update(self.step, result.coords, psl)
                loss_value = float(result.loss.detach())
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"loss became {loss_value} at step {self.step}; lower --optim.lr")
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    rate = (self.step - start_step) / max(1e-9, time.perf_counter() - t0)
                    record = {"step": self.step, "kind": "train", "loss": loss_value, "lr": self.scheduler.get_last_lr()[0], "steps_per_s": rate, **result.log}
                    self.run.append_metrics(record)
                    info = f"loss {loss_value:.3g} " + " ".join(f"{k} {v:.2f}" for k, v in result.log.items()) + f" {rate:.1f} it/s"
                    progress.update(bar, info=info)
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    self.evaluate()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < cfg.steps:
                    self.save()
                progress.update(bar, completed=self.step)
        metrics = self.evaluate()
        self.save()
        metrics = {**metrics, "train_seconds": time.perf_counter() - t0, "steps": self.step}
        return metrics
