"""Sharing the machine between training and the viewer.

``Pacer`` is the one rule both sides obey. The training loop calls ``between_steps(seconds)`` after each step
(outside ``trainer.lock``) with the wall time that step took; that earns the viewer
``seconds · (1 − share) / share`` of rendering, and the loop waits while a client spends it. The viewer renders
each band inside ``slot()``: it waits for credit, holds ``trainer.lock`` while it renders and pays for the band
afterwards, so a band longer than the credit is a debt the next steps repay without waiting. Over time the loop
keeps ``share`` of the wall time whenever a client is rendering, and all of it when nobody is.
"""

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from fieldforge.app.trainer import Callback, StepResult, Trainer

MAX_CREDIT_S = 0.5
"""The most rendering time the viewer may bank (a few slow steps do not buy a long stall later)."""


class Pacer:
    def __init__(self, lock: Any, share: float = 0.8) -> None:
        self.lock = lock
        self.share = share
        self.credit = 0.0
        self.waiting = 0
        self.active = 0
        self.free = False
        """No training is running (paused or finished): slots need no credit."""
        self.paused = False
        self.cond = threading.Condition()

    def set_share(self, share: float) -> None:
        with self.cond:
            self.share = min(1.0, max(0.05, float(share)))
            self.cond.notify_all()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self.cond:
            self.waiting += 1
            try:
                while not self.free and self.credit <= 0:
                    self.cond.wait(0.25)
            finally:
                self.waiting -= 1
            self.active += 1
        t0 = time.perf_counter()
        try:
            with self.lock:
                yield
        finally:
            with self.cond:
                self.active -= 1
                if not self.free:
                    self.credit -= time.perf_counter() - t0
                self.cond.notify_all()

    def between_steps(self, step_seconds: float) -> None:
        """Called by the training loop after a step that took ``step_seconds``; returns when it may go on."""
        with self.cond:
            while self.paused:
                self.free = True
                self.cond.notify_all()
                self.cond.wait(0.25)
            self.free = False
            if self.share >= 1.0:
                self.credit = min(self.credit, 0.0)
                return
            grant = step_seconds * (1.0 - self.share) / self.share
            self.credit = min(self.credit + grant, MAX_CREDIT_S)
            if self.waiting == 0 and self.active == 0:
                self.credit = min(self.credit, grant)  # nobody renders: do not bank
                return
            self.cond.notify_all()
            deadline = time.perf_counter() + max(self.credit, 0.0) + 0.5
            while self.credit > 0 and (self.waiting or self.active) and time.perf_counter() < deadline:
                self.cond.wait(0.01)

    def finish(self) -> None:
        with self.cond:
            self.free, self.paused = True, False
            self.cond.notify_all()


class LiveViewer(Callback):
    """Serves the viewer while a run trains (rank 0 only): renders between steps under ``trainer.lock`` with
    the time share the panel's "training share" control sets; shows step, loss, steps/s and PSNR."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, share: float = 0.8, keep_open: bool = False) -> None:
        self.host, self.port, self.share, self.keep_open = host, port, share, keep_open
        self.viewer = None
        self.pacer: Pacer | None = None
        self.last = 0.0
        self.t0 = 0.0
        self.start_step = 0
        self.last_stats = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        from fieldforge.app.loader import LoadedRun
        from fieldforge.app.tasks import task_for_config
        from fieldforge.app.viewer.server import Viewer

        config = trainer.run.read_config()
        task = task_for_config(config)
        info = task.read_info(trainer.run)
        loaded = LoadedRun(trainer.run, task, config, trainer.unwrap(), trainer.step, info, task.frame(info))
        self.pacer = Pacer(trainer.lock, self.share)
        self.viewer = Viewer(loaded, self.host, self.port, pacer=self.pacer, live=True)
        self.viewer.announce()
        self.t0 = self.last = time.perf_counter()
        self.start_step = trainer.step

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        if self.viewer is None or self.pacer is None:
            return
        now = time.perf_counter()
        if now - self.last_stats > 0.25 or trainer.step == trainer.total_steps:
            rate = (trainer.step - self.start_step) / max(1e-9, now - self.t0)
            self.viewer.update_stats(step=trainer.step, total=trainer.total_steps, loss=loss, rate=rate, stage=trainer.stage.name)
            self.last_stats = now
        self.viewer.model_changed()
        self.pacer.between_steps(now - self.last)
        self.last = time.perf_counter()

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float], final: bool) -> None:
        if self.viewer is not None:
            self.viewer.add_evaluation(trainer.step, metrics)

    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.viewer is None or self.pacer is None:
            return
        self.pacer.finish()
        self.viewer.update_stats(step=trainer.step, total=trainer.total_steps, finished=True)
        if self.keep_open:
            from fieldforge.app.callbacks import console

            console.print(f"training finished; the viewer stays at {self.viewer.url} (Ctrl-C to exit)")
            try:
                while True:
                    time.sleep(1.0)
            except KeyboardInterrupt:
                pass
        self.viewer.stop()
