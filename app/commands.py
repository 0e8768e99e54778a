"""Commands other than ``train`` and ``export``: ``info``, ``capture synthetic``, ``demo``, ``demo nerf``.

Each parses its options with tyro, runs, and prints a one-line summary on stdout.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from fieldforge.app.cli_train import TYRO_CONF
from fieldforge.data.errors import InputError


@dataclass(frozen=True)
class InfoConfig:
    """Show a run's task, method, config, training progress, last evaluation and checkpoints."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run directory."""
    config: bool = True
    """Also print the full config."""


def info(argv: list[str], prog: str) -> int:
    from fieldforge.app.config_io import dump_yaml
    from fieldforge.app.loader import load_run

    config = tyro.cli(InfoConfig, args=argv, prog=prog, config=TYRO_CONF)
    loaded = load_run(config.run)
    run = loaded.run
    n_params = sum(p.numel() for p in loaded.model.parameters())
    print(f"run: {run.path}")
    print(f"task: {loaded.kind}, method {loaded.config.method}, {n_params:,} parameters")
    if config.config:
        print("config:")
        print("  " + dump_yaml(loaded.config).replace("\n", "\n  ").rstrip())
    records = run.read_metrics()
    evals = [r for r in records if r.get("kind") == "eval"]
    trains = [r for r in records if r.get("kind") == "train"]
    if trains:
        print(f"training: {trains[-1]['step']} of {loaded.config.trainer.steps} steps logged, last loss {trains[-1]['loss']:.4g}")
    if evals:
        print("last evaluation: " + json.dumps(evals[-1]))
    ckpts = run.checkpoints()
    print("checkpoints: " + ", ".join(f"step {s} ({p.name})" for s, p in ckpts))
    return 0


@dataclass(frozen=True)
class SyntheticCaptureCommand:
    """Write the procedural capture (textured SDF shapes, exact poses) in nerfstudio format."""

    output: Path = Path("outputs/synthetic-capture")
    """Folder to write transforms.json and images/ into."""
    views: int = 40
    """Number of views."""
    width: int = 64
    """Image width in pixels."""
    height: int = 64
    """Image height in pixels."""
    supersample: int = 2
    """Rays per pixel per axis (anti-aliasing)."""
    points: int = 0
    """Also write this many surface points (points.ply, referenced as ply_file_path)."""


def capture_synthetic(argv: list[str], prog: str) -> int:
    from fieldforge.app.demos import write_synthetic_capture

    c = tyro.cli(SyntheticCaptureCommand, args=argv, prog=prog, config=TYRO_CONF)
    if c.views < 1 or c.width < 8 or c.height < 8:
        raise InputError(None, "--views must be ≥ 1 and --width/--height ≥ 8")
    t0 = time.perf_counter()
    tf = write_synthetic_capture(c.output, c.views, c.width, c.height, c.supersample, c.points)
    print(f"wrote a {c.views}-view {c.width}×{c.height} synthetic capture in {time.perf_counter() - t0:.1f} s → {tf}")
    return 0


@dataclass(frozen=True)
class DemoConfig:
    """Fit an image method to scikit-image's bundled 'astronaut' photo (no download needed)."""

    method: str = "ngp"
    """Image method (see fieldforge train image --help)."""
    steps: int = 400
    """Training steps."""
    size: int = 256
    """Side of the square demo image (the 512² photo is box-downscaled)."""
    batch_size: int = 8192
    """Pixels per step."""
    output_dir: Path = Path("outputs")
    """Where the demo run directory is created."""
    progress: bool = True
    """Show a progress bar."""


def demo(argv: list[str], prog: str) -> int:
    from fieldforge.app.demos import demo_image
    from fieldforge.app.tasks import get_task

    config = tyro.cli(DemoConfig, args=argv, prog=prog, config=TYRO_CONF)
    task = get_task("image")
    if config.method not in task.methods:
        raise InputError(None, f"unknown --method {config.method!r}; choose one of: {', '.join(task.methods)}")
    run, metrics = demo_image(config.method, config.steps, config.size, config.batch_size, config.output_dir, config.progress)
    print(task.summary_line(run.read_config(), metrics, run.path / "renders" / "reconstruction.png").replace("trained", "demo", 1))
    return 0


@dataclass(frozen=True)
class DemoNerfCommand:
    """Render the embedded synthetic capture, train ngp on it, and write renders, a video, a mesh and a point cloud."""

    steps: int = 400
    """Training steps."""
    output_dir: Path = Path("outputs")
    """Where the demo capture and run directory are created."""
    progress: bool = True
    """Show a progress bar."""


def demo_nerf(argv: list[str], prog: str) -> int:
    from fieldforge.app.demos import demo_nerf as run_demo

    c = tyro.cli(DemoNerfCommand, args=argv, prog=prog, config=TYRO_CONF)
    t0 = time.perf_counter()
    out = run_demo(c.output_dir, c.steps, c.progress)
    m = out["metrics"]
    print(
        f"demo nerf: test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, {m['steps']} steps in {m['train_seconds']:.1f} s "
        f"(pipeline {time.perf_counter() - t0:.0f} s) → renders {out['renders']}, video {out['video']}, mesh {out['mesh']}, "
        f"points {out['pointcloud']}"
    )
    return 0
