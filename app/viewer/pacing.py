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

DEFAULT_SHARE = 0.85
"""Training's share of wall time while a client renders (``--viewer-share``; the panel's initial value):
``scripts/bench_viewer.py`` measures what training keeps of its steps/s with the camera moving."""

MAX_CREDIT_S = 0.5
"""The most rendering time the viewer may bank (a few slow steps do not buy a long stall later)."""


class Pacer:
    def __init__(self, lock: Any, share: float = DEFAULT_SHARE) -> None:
        self.lock = lock
        self.share = share
        self.credit = 0.0
        self.waiting = 0
        self.active = 0
        self.free = False
        """No training is running (paused or finished): slots need no credit."""
        self.paused = False
        self.cond = threading.Condition()
        self.render_seconds = 0.0
        """Wall time spent rendering inside slots (for the measured share)."""

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
                spent = time.perf_counter() - t0
                self.render_seconds += spent
                if not self.free:
                    self.credit -= spent
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
            while self.credit > 0 and (self.waiting or self.active) and (now := time.perf_counter()) < deadline:
                self.cond.wait(deadline - now)  # a slot's end notifies: no polling delay between render and step

    def finish(self) -> None:
        with self.cond:
            self.free, self.paused = True, False
            self.cond.notify_all()
