"""Commands other than ``train`` and ``export``: ``info``, ``runs``, ``capture synthetic``, ``demo``, ``demo nerf``.

Each parses its options with tyro, runs, and prints a one-line summary on stdout.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from fieldforge.app.cli_train import TYRO_CONF
from fieldforge.app.validation import validate_config
from fieldforge.data.errors import InputError


@dataclass(frozen=True)
class InfoConfig:
    """Show a run's task, method, field, training progress, last evaluation and checkpoints (--yaml: the raw config)."""

    run: Annotated[Path, tyro.conf.Positional]
    """Run directory."""
    yaml: bool = False
    """Print the run's full config as YAML (what config.yaml holds) instead of the summary."""


def _component(obj: object) -> str:
    """``TypeName(a=1, b=2, …)`` of a config dataclass: its scalar fields, at most six."""
    import dataclasses

    if not dataclasses.is_dataclass(obj):
        return str(obj)
    scalars = [(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    shown = [f"{k}={v}" for k, v in scalars if isinstance(v, (int, float, str, bool)) and not isinstance(v, type)][:6]
    return f"{type(obj).__name__}({', '.join(shown)}{', …' if len(shown) == 6 else ''})"


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _metric_text(record: dict) -> str:
    keys = ("psnr", "ssim", "chamfer", "chamfer_l1", "fscore", "iou", "normal_consistency")
    parts = []
    for k in keys:
        if isinstance(record.get(k), (int, float)):
            parts.append(f"{k} {record[k]:.2f} dB" if k == "psnr" else f"{k} {record[k]:.4g}")
    return ", ".join(parts) if parts else ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))[:200]


def info(argv: list[str], prog: str) -> int:
    from fieldforge.app.config_io import dump_yaml
    from fieldforge.app.loader import load_run

    argv = list(argv)
    for i, a in enumerate(argv):  # a bare --yaml is the flag (tyro here wants --yaml True like every bool)
        if a == "--yaml" and (i + 1 == len(argv) or argv[i + 1] not in ("True", "False", "true", "false")):
            argv = argv[: i + 1] + ["True"] + argv[i + 1 :]
            break
    config = tyro.cli(InfoConfig, args=argv, prog=prog, config=TYRO_CONF)
    loaded = load_run(config.run)
    run = loaded.run
    if config.yaml:
        print(dump_yaml(loaded.config).rstrip())
        return 0
    n_params = sum(p.numel() for p in loaded.model.parameters())
    print(f"run: {run.path}")
    print(f"task: {loaded.kind}, method {loaded.config.method}, {n_params:,} parameters")
    print(f"input: {getattr(loaded.config, 'data', '?')}")
    distill = getattr(loaded.config, "distill", None)
    if distill is not None:
        step = "" if distill.teacher_step is None else f", step {distill.teacher_step}"
        print(f"distilled from: {distill.teacher} ({distill.teacher_method or '?'}{step})")
    field = getattr(loaded.config, "field", None)
    if field is not None:
        for part in ("encoding", "network"):
            if hasattr(field, part):
                print(f"{part}: {_component(getattr(field, part))}")
    records = run.read_metrics()
    evals = [r for r in records if r.get("kind") == "eval"]
    trains = [r for r in records if r.get("kind") == "train"]
    total = loaded.config.trainer.steps
    if trains:
        t = trains[-1]
        rate = f", {t['steps_per_s']:.1f} steps/s" if isinstance(t.get("steps_per_s"), (int, float)) else ""
        print(f"training: {t['step']} of {total} steps logged, last loss {t['loss']:.4g}{rate}")
    else:
        print(f"training: {loaded.step} of {total} steps (checkpoint)")
    if evals:
        e = evals[-1]
        print(f"last evaluation: step {e.get('step')}{' (final)' if e.get('final') else ''}: {_metric_text(e)}")
    ckpts = run.checkpoints()
    print("checkpoints: " + ", ".join(f"step {s} ({p.name})" for s, p in ckpts))
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime((run.path / "config.yaml").stat().st_mtime))
    print(f"size: {_human(_size(run.path))}, written {created}   (--yaml prints the full config)")
    return 0


@dataclass(frozen=True)
class RunsConfig:
    """List the runs under a folder (newest first): task, method, steps done/total, last PSNR or Chamfer, size, date."""

    folder: Annotated[Path, tyro.conf.Positional] = Path("outputs")
    """Folder to search (runs up to three levels down)."""


def find_runs(folder: Path, depth: int = 3) -> list[Path]:
    found = []
    if (folder / "config.yaml").is_file():
        return [folder]
    if depth == 0 or not folder.is_dir():
        return found
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            found += find_runs(child, depth - 1)
    return found


def run_row(path: Path) -> dict:
    """One line of ``fieldforge runs``: what a run's directory says about it, without loading its model."""
    from fieldforge.app.runs import RunDir
    from fieldforge.app.tasks import task_for_config

    row = {"path": path, "task": "?", "method": "?", "steps": "?", "metric": "", "size": _size(path),
           "date": max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=path.stat().st_mtime)}
    try:
        run = RunDir.open(path)
        config = run.read_config()
        row["task"], row["method"] = task_for_config(config).name, config.method
        ckpt = run.latest_checkpoint()
        row["steps"] = f"{ckpt[0] if ckpt else 0}/{config.trainer.steps}"
        evals = [r for r in run.read_metrics() if r.get("kind") == "eval"]
        if evals:
            e = evals[-1]
            if isinstance(e.get("psnr"), (int, float)):
                row["metric"] = f"PSNR {e['psnr']:.2f}"
            else:
                chamfer = next((k for k in e if k.startswith("chamfer")), None)
                if chamfer is not None:
                    row["metric"] = f"Chamfer {e[chamfer]:.4g}"
    except Exception as exc:  # a broken or foreign folder is listed, not fatal
        row["metric"] = f"unreadable: {type(exc).__name__}"
    return row


def runs(argv: list[str], prog: str) -> int:
    c = tyro.cli(RunsConfig, args=argv, prog=prog, config=TYRO_CONF)
    if not c.folder.is_dir():
        raise InputError(c.folder, "no such folder")
    rows = sorted((run_row(p) for p in find_runs(c.folder)), key=lambda r: r["date"], reverse=True)
    if not rows:
        print(f"no runs under {c.folder}")
        return 0
    table = [("run", "task", "method", "steps", "last eval", "size", "date")]
    for r in rows:
        rel = str(r["path"].relative_to(c.folder)) if r["path"] != c.folder else r["path"].name
        table.append((rel, r["task"], r["method"], r["steps"], r["metric"], _human(r["size"]),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(r["date"]))))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
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
    validate_config(c)
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
    validate_config(config)
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
    validate_config(c)
    t0 = time.perf_counter()
    out = run_demo(c.output_dir, c.steps, c.progress)
    m = out["metrics"]
    print(
        f"demo nerf: test PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, {m['steps']} steps in {m['train_seconds']:.1f} s "
        f"(pipeline {time.perf_counter() - t0:.0f} s) → renders {out['renders']}, video {out['video']}, mesh {out['mesh']}, "
        f"points {out['pointcloud']}"
    )
    return 0
