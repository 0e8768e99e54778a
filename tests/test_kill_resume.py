"""Kill test: SIGKILL a tiny training run at random moments (≥ 10 times), resume it each time; every resume
must start cleanly, lose at most one checkpoint interval, and the final weights must be bit-identical to an
uninterrupted run. Training runs in forked children (torch is already imported: a kill/resume cycle costs
only the training itself), each killed with SIGKILL after a random delay."""

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import fieldforge.app.cli_train  # noqa: F401  (imported before forking: a child starts training at once)
import fieldforge.app.tasks.image  # noqa: F401
import fieldforge.app.train  # noqa: F401
from fieldforge.app.cli import main

STEPS, EVERY = 80, 4
KILLS = 10


def options(root: Path) -> list[str]:
    return ["--output-dir", str(root), "--steps", str(STEPS), "--batch-size", "256", "--checkpoint-every", str(EVERY),
            "--log-every", "1", "--eval-every", "0", "--progress", "False", "--field.encoding.log2-table-size", "10",
            "--field.encoding.n-levels", "4", "--field.network.width", "16"]


def _child(argv: list[str]) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os._exit(main(argv))


def launch(argv: list[str]) -> multiprocessing.Process:
    p = multiprocessing.get_context("fork").Process(target=_child, args=(argv,))
    p.start()
    return p


def last_logged_step(run: Path) -> int:
    steps = [0]
    if (run / "metrics.jsonl").is_file():
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                steps.append(int(json.loads(line).get("step", 0)))
            except json.JSONDecodeError:
                pass  # the line the kill cut short
    return max(steps)


def latest_checkpoint(run: Path) -> int:
    done = [int(p.name[5:11]) for p in (run / "checkpoints").glob("step-*.safetensors") if p.with_suffix(".state.pt").is_file()] if (run / "checkpoints").is_dir() else []
    return max(done, default=0)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{STEPS:06d}.safetensors"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the kill test forks training processes (POSIX only)")
def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    iio.imwrite(image, (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8))
    base = ["train", "image", "--data", str(image)]

    reference = launch([*base, *options(tmp_path / "ref"), "--name", "run"])
    t0 = time.perf_counter()
    reference.join(120)
    assert reference.exitcode == 0
    per_step = (time.perf_counter() - t0) / STEPS  # an upper bound (includes start-up and the final evaluation)

    run = tmp_path / "killed" / "run"
    rng = random.Random(14)
    kills, lost, resumes = 0, [], 0
    argv = [*base, *options(tmp_path / "killed"), "--name", "run"]
    while True:
        child = launch(argv)
        if kills < KILLS:  # a random moment while training: after a random logged step, plus a fraction of a step
            target = min(latest_checkpoint(run) + rng.randint(1, 6), STEPS - 2)
            while last_logged_step(run) < target and child.is_alive():
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 2 * per_step))
            if child.is_alive():
                os.kill(child.pid, signal.SIGKILL)
        child.join(120)
        if child.exitcode == 0:
            assert kills >= KILLS, f"the run finished after only {kills} kills"
            break
        else:
            assert child.exitcode == -signal.SIGKILL, f"a resume failed with exit code {child.exitcode}"
            kills += 1
            lost.append(last_logged_step(run) - latest_checkpoint(run))
            assert lost[-1] <= EVERY, f"kill {kills}: {lost[-1]} steps lost (checkpoints every {EVERY})"
        # every later start resumes (also after a run that finished before its kill: it extends nothing)
        argv = ["train", "image", "--resume", str(run), "--progress", "False"]
        resumes += 1
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name], "stale temp files left"
    ref, got = final_weights(tmp_path / "ref" / "run"), final_weights(run)
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref), "resumed weights differ from the uninterrupted run"
    print(f"kill test: {kills} SIGKILLs survived, {resumes} resumes, steps lost per kill {lost} (max {max(lost)}, interval {EVERY})")
