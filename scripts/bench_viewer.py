#!/usr/bin/env python
"""Viewer benchmark: what training keeps of its steps/s while a client's camera moves, per training share.

A tiny NeRF on the procedural capture trains ``--steps`` steps without a viewer, then the same steps with the
viewer's render path busy: a thread renders frames of the run's own model from an orbiting camera through
``make_renderer`` under the viewer's guard (``Pacer.slot`` around the trainer's lock, band by band, exactly as
``fieldforge train ... --viewer`` does for a client; no browser, whose own CPU cost depends on its WebGL). Runs
alternate (without, with) ``--pairs`` times so the machine's load affects both alike; the table gives the
median ratio of steps/s and the wall-time share the viewer used.

    python scripts/bench_viewer.py --shares 0.85,0.5 --steps 150 --pairs 3

Writes a table and JSON to scripts/results/bench_viewer[-TAG].json.
"""

import os

# as `fieldforge train --viewer` sets it (app/cli.py): OpenMP workers must not spin between parallel regions
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import ROOT, cpu_name
from rich.console import Console
from rich.table import Table

from fieldforge.app.cli import main as cli
from fieldforge.app.loader import LoadedRun
from fieldforge.app.tasks import task_for_config
from fieldforge.app.trainer import Callback, StepResult, Trainer
from fieldforge.app.viewer.cameras import View
from fieldforge.app.viewer.pacing import DEFAULT_SHARE, Pacer
from fieldforge.app.viewer.renderers import make_renderer

TINY = ["--field.encoding.n-levels", "8", "--field.encoding.log2-table-size", "14", "--field.encoding.max-resolution", "128",
        "--render.grid-resolution", "32", "--render.steps-per-ray", "192", "--render.target-samples", "16384", "--render.grid-warmup-steps", "32", "--eval-views", "1",
        "--eval-every", "0", "--checkpoint-every", "0", "--progress", "False"]  # fmt: skip


class Measure(Callback):
    """Steps/s of a run; with ``share`` set, a render thread plays a client whose camera never stops."""

    def __init__(self, share: float | None, side: int, warmup: int) -> None:
        self.share, self.side, self.warmup = share, side, warmup
        self.pacer: Pacer | None = None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.frames = 0
        self.t0 = self.t1 = 0.0
        self.steps = 0
        self.last = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        self.t0 = self.last = time.perf_counter()
        if self.share is None:
            return
        config = trainer.run.read_config()
        task = task_for_config(config)
        info = task.read_info(trainer.run)
        loaded = LoadedRun(trainer.run, task, config, trainer.unwrap(), trainer.step, info, task.frame(info))
        renderer = make_renderer(loaded)
        self.pacer = Pacer(trainer.lock, self.share)
        pacer = self.pacer

        def guard():
            return pacer.slot()

        def client() -> None:
            angle = 0.0
            h = renderer.home
            radius = float(np.linalg.norm(h.position - h.look_at))
            while not self.stop.is_set():
                angle += 0.15  # the camera keeps moving: every frame is a new view at the moving resolution
                pos = h.look_at + radius * np.array([math.cos(angle), 0.35, math.sin(angle)])
                fwd = (h.look_at - pos) / np.linalg.norm(h.look_at - pos)
                right = np.cross(fwd, h.up)
                right /= np.linalg.norm(right)
                c2w = torch.eye(4)
                c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = (torch.tensor(v, dtype=torch.float32) for v in
                                                                  (right, np.cross(right, fwd), -fwd, pos))
                was = loaded.model.training
                if renderer.render(View(c2w, math.radians(50), 4 / 3), self.side, self.side * 3 // 4, "rgb",
                                   cancelled=self.stop.is_set, guard=guard) is not None:
                    self.frames += 1
                loaded.model.train(was)

        self.thread = threading.Thread(target=client, daemon=True)
        self.thread.start()

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        now = time.perf_counter()
        if self.pacer is not None:
            self.pacer.between_steps(now - self.last)
        self.last = time.perf_counter()
        if trainer.step == self.warmup:  # the occupancy grid's warm-up sweeps are over: start the clock
            self.t0, self.steps = self.last, 0
            if self.pacer is not None:
                self.pacer.render_seconds, self.frames = 0.0, 0
        self.steps += 1
        if trainer.step == trainer.total_steps:  # training time only (the final evaluation is not a step)
            self.t1 = self.last
            self.stop.set()
            if self.pacer is not None:
                self.pacer.finish()

    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.stop.set()
        if self.pacer is not None:
            self.pacer.finish()
        if self.thread is not None:
            self.thread.join(30)

    @property
    def rate(self) -> float:
        return (self.steps - 1) / max(self.t1 - self.t0, 1e-9)


def train_once(capture: Path, out: Path, name: str, steps: int, measure: Measure) -> Measure:
    from fieldforge.app.cli_train import parse_train
    from fieldforge.app.tasks import get_task
    from fieldforge.app.train import train

    argv = ["--data", str(capture), "--output-dir", str(out), "--name", name, "--steps", str(steps), *TINY]
    config = parse_train(get_task("nerf"), argv, "fieldforge train nerf")
    train(config, callbacks=[measure])
    return measure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shares", default=f"{DEFAULT_SHARE},0.5", help="comma-separated training shares to measure")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--pairs", type=int, default=3, help="alternating (without, with) runs per share")
    p.add_argument("--warmup", type=int, default=40, help="steps before the clock starts (the occupancy grid's full sweeps)")
    p.add_argument("--side", type=int, default=160, help="frame width the client asks for")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "cap"
        assert cli(["capture", "synthetic", "--output", str(capture), "--width", "64", "--height", "48", "--views", "24",
                    "--supersample", "1"]) == 0
        for share in [float(s) for s in args.shares.split(",") if s]:
            ratios, used, fps = [], [], []
            for k in range(args.pairs):
                base = train_once(capture, Path(tmp) / "runs", f"base-{share}-{k}", args.steps, Measure(None, args.side, args.warmup))
                live = train_once(capture, Path(tmp) / "runs", f"live-{share}-{k}", args.steps, Measure(share, args.side, args.warmup))
                wall = live.t1 - live.t0
                ratios.append(live.rate / base.rate)
                used.append(live.pacer.render_seconds / wall if live.pacer else 0.0)
                fps.append(live.frames / wall)
                console.print(f"share {share}: pair {k + 1}: {base.rate:.2f} → {live.rate:.2f} steps/s ({ratios[-1]:.0%}), "
                              f"viewer {used[-1]:.0%} of wall time, {fps[-1]:.1f} frames/s")
            rows.append({"share": share, "kept": statistics.median(ratios), "kept_all": ratios, "viewer_share": statistics.median(used),
                         "frames_per_s": statistics.median(fps)})
    table = Table(title=f"Training with a moving viewer camera ({args.steps} steps × {args.pairs} pairs, {args.side} px frames)")
    for col in ("share", "steps/s kept (median)", "each pair", "viewer's wall time", "frames/s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['share']:.2f}", f"{r['kept']:.0%}", " ".join(f"{x:.0%}" for x in r["kept_all"]), f"{r['viewer_share']:.0%}",
                      f"{r['frames_per_s']:.1f}")
    console.print(table)
    env = {"device": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "load_average_at_end": os.getloadavg(), "argv": sys.argv[1:]}
    out = ROOT / "scripts" / "results" / f"bench_viewer{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps({"env": env, "results": rows}, indent=1))
    console.print(f"→ {out}")


if __name__ == "__main__":
    main()
