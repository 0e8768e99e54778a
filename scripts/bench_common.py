"""What the benchmark scripts share, on top of FieldForge's public API.

Every fit is a run of ``fieldforge.app.train.train`` (the code path of ``fieldforge train <task>``) in a
temporary output folder; trained runs are read back with ``fieldforge.app.loader.load_run``. What a
benchmark needs beyond a run's final metrics comes from trainer callbacks:

- ``Probe``: training time (wall and process CPU) without the time of its evaluations, evaluations at
  chosen steps (``trainer.evaluate``), and a clean stop (``StopTraining``) at the last step, at a
  wall-time budget or once an evaluation meets a target.
- ``HoldOut``: an image run trained on a subset of its pixels (Tancik et al.'s held-out protocol) and
  scored on both subsets.

A result file records the machine and the options, never a local path (``public_args``).
"""

import argparse
import math
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from fieldforge.app.loader import load_run
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks.image import ImageTrainConfig, image_train_config
from fieldforge.app.train import train
from fieldforge.app.trainer import Callback, StepResult, Trainer
from fieldforge.data.images import IMAGE_SUFFIXES
from fieldforge.data.samplers import PixelSampler
from fieldforge.fields.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "kodak"


# -- result files ----------------------------------------------------------------------------------------
def public_args(args: argparse.Namespace) -> dict[str, str]:
    """The options as strings, each path reduced to its name (a result file names no local path)."""

    def show(value: Any) -> str:
        if isinstance(value, Path):
            return value.name
        if isinstance(value, (list, tuple)) and any(isinstance(v, Path) for v in value):
            return str([v.name if isinstance(v, Path) else v for v in value])
        return str(value)

    return {k: show(v) for k, v in vars(args).items()}


def cpu_name() -> str:
    return platform.processor() or platform.machine()


# -- callbacks -------------------------------------------------------------------------------------------
class StopTraining(Exception):
    """Raised by ``Probe`` once it has recorded what a benchmark needs: ``train`` ends there (no final
    checkpoint, evaluation or renders)."""


def trained_parameters(model: torch.nn.Module) -> int:
    """Parameters of the field (a radiance model's field without its occupancy grid)."""
    field = getattr(model, "field", model)
    return sum(p.numel() for p in field.parameters())


class Probe(Callback):
    """Times training, evaluates at chosen steps, stops early.

    Training time counts from the first step to the last, less the probe's own evaluations (on CUDA each
    step is synchronized, so the time is the step's). An evaluation is ``trainer.evaluate(final=False)``:
    the task's periodic evaluation, recorded in ``curve`` as ``{"step", "seconds", "cpu_seconds", **metrics}``.

    At the last step (or once ``budget_s`` of training time is spent, or an evaluation satisfies
    ``stop_when``) the probe evaluates (``evaluate_at_stop``) and, with ``stop_at_end``, raises
    ``StopTraining``; without it a run that reaches its last step goes on to the trainer's own final
    checkpoint and evaluation, and ``train`` returns normally.
    """

    def __init__(
        self, eval_at: Iterable[int] = (), eval_every: int = 0, budget_s: float = math.inf,
        stop_when: Callable[[dict], bool] | None = None, evaluate_at_stop: bool = True, stop_at_end: bool = True,
        on_record: Callable[[dict], None] | None = None,
    ) -> None:  # fmt: skip
        self.eval_at = set(eval_at)
        self.eval_every = eval_every
        self.budget_s = budget_s
        self.stop_when = stop_when
        self.evaluate_at_stop = evaluate_at_stop
        self.stop_at_end = stop_at_end
        self.on_record = on_record
        self.curve: list[dict] = []
        self.final: dict | None = None
        """The evaluation at the stop (``None`` without ``evaluate_at_stop``)."""
        self.stopped_by = ""
        """``steps``, ``budget`` or ``target``."""
        self.run: RunDir | None = None
        self.params = 0
        self.steps = 0
        self.seconds = self.cpu_seconds = 0.0
        """Training time at the stop."""
        self.first_step_seconds = 0.0
        """Training time of the first step (warm-up: compilation, allocations)."""
        self.cuda = False
        self.wall0 = self.cpu0 = self.excluded_wall = self.excluded_cpu = 0.0

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def train_seconds(self) -> float:
        return time.perf_counter() - self.wall0 - self.excluded_wall

    def train_cpu_seconds(self) -> float:
        return time.process_time() - self.cpu0 - self.excluded_cpu

    def on_train_start(self, trainer: Trainer) -> None:
        self.cuda = trainer.device.type == "cuda"
        self.run = trainer.run
        self.params = trained_parameters(trainer.unwrap())
        self.sync()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.excluded_wall = self.excluded_cpu = 0.0

    def evaluate(self, trainer: Trainer) -> dict:
        record = {"step": trainer.step, "seconds": self.train_seconds(), "cpu_seconds": self.train_cpu_seconds()}
        w0, c0 = time.perf_counter(), time.process_time()
        metrics = trainer.evaluate(final=False)
        self.sync()
        self.excluded_wall += time.perf_counter() - w0
        self.excluded_cpu += time.process_time() - c0
        record.update(metrics)
        self.curve.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        self.sync()
        self.steps = trainer.step
        seconds = self.train_seconds()
        if trainer.step == 1:
            self.first_step_seconds = seconds
        last = trainer.step >= trainer.total_steps
        over = seconds >= self.budget_s
        due = trainer.step in self.eval_at or (self.eval_every > 0 and trainer.step % self.eval_every == 0)
        if last or over:
            self.seconds, self.cpu_seconds = seconds, self.train_cpu_seconds()
        record = self.evaluate(trainer) if due or ((last or over) and self.evaluate_at_stop) else None
        reached = record is not None and self.stop_when is not None and self.stop_when(record)
        if reached and not (last or over):
            self.seconds, self.cpu_seconds = record["seconds"], record["cpu_seconds"]
        if over or reached or (last and self.stop_at_end):
            self.stopped_by = "budget" if over else ("target" if reached else "steps")
            self.final = record
            raise StopTraining
        if last:
            self.stopped_by, self.final = "steps", record


def train_probed(config: Any, probe: Probe, callbacks: Iterable[Callback] = ()) -> tuple[RunDir | None, dict | None]:
    """``train(config)`` with ``probe`` (after ``callbacks``): ``(run, final metrics)``, or ``(None, None)``
    when the probe stopped it (its ``run`` still names the run directory)."""
    try:
        return train(config, callbacks=[*callbacks, probe])
    except StopTraining:
        return None, None


class SubsetSampler(PixelSampler):
    """Draws training batches only from the pixels in ``train_mask`` ``(h, w)``; evaluation still sees every pixel."""

    def __init__(self, image: Tensor, train_mask: Tensor, batch_size: int, device: torch.device | str, seed: int = 0) -> None:
        super().__init__(image, batch_size, device, seed)
        self.train_index = torch.nonzero(train_mask.reshape(-1)).reshape(-1)

    def sample(self) -> tuple[Tensor, Tensor]:
        pick = torch.randint(0, self.train_index.shape[0], (self.batch_size,), generator=self.generator)
        index = self.train_index[pick]
        return self.coords_of(index).to(self.device), self.pixels[index].to(self.device)


def holdout_mask(height: int, width: int) -> Tensor:
    """Tancik et al.'s split: train on every second pixel in both axes (25%), test on the other 75%."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[::2, ::2] = True
    return mask


class HoldOut(Callback):
    """An image run trained only on the pixels of ``mask`` ``(h, w)``: before the first step the task's pixel
    sampler is replaced by a ``SubsetSampler`` (same batch size, device and generator state); the final
    render is scored on the held-out pixels (``psnr``), the training ones (``train_psnr``) and all (``all_psnr``)."""

    def __init__(self, mask: Tensor) -> None:
        self.mask = mask
        self.scores: dict[str, float] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        task = trainer.task
        old = task.sampler  # type: ignore[attr-defined]
        sampler = SubsetSampler(task.target, self.mask, old.batch_size, old.device)  # type: ignore[attr-defined]
        sampler.generator.set_state(old.generator.get_state())
        task.sampler = sampler  # type: ignore[attr-defined]

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float], final: bool) -> None:
        if final:
            render, target = trainer.task.last_render, trainer.task.target  # type: ignore[attr-defined]
            self.scores = {"train_psnr": psnr(render[self.mask], target[self.mask]), "psnr": psnr(render[~self.mask], target[~self.mask]),
                           "all_psnr": metrics["psnr"]}


# -- image fits ------------------------------------------------------------------------------------------
def list_images(folder: Path, count: int) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]


def image_bench_config(method: str, steps: int, batch_size: int, seed: int, device: str, data: Path = Path(""),
                       downscale: int = 1) -> ImageTrainConfig:
    """An image preset's run config for a benchmark: no periodic evaluation, checkpoint, log or progress bar."""
    base = image_train_config(method)
    return replace(base, data=data, downscale=downscale, trainer=replace(
        base.trainer, steps=steps, batch_size=batch_size, eval_every=0, checkpoint_every=0, log_every=10**9, progress=False,
        seed=seed, device=device))  # fmt: skip


def fit_image(config: ImageTrainConfig, train_mask: Tensor | None = None) -> tuple[dict, dict]:
    """Train ``config`` in a temporary folder: ``({psnr, ssim, seconds, params}, the run's image info)``.

    ``seconds`` is the training loop's time (``train_seconds``: the final evaluation excluded). With
    ``train_mask``, only those pixels are trained on; ``psnr`` is then over the held-out pixels,
    ``train_psnr`` over the training ones and ``all_psnr`` over all."""
    holdout = HoldOut(train_mask) if train_mask is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        config = replace(config, trainer=replace(config.trainer, output_dir=Path(tmp)))
        run, metrics = train(config, callbacks=[holdout] if holdout is not None else [])
        loaded = load_run(run.path)
        out = {"psnr": metrics["psnr"], "ssim": metrics["ssim"], "seconds": metrics["train_seconds"],
               "params": trained_parameters(loaded.model)}
    if holdout is not None:
        out.update(holdout.scores)
    return out, loaded.info
