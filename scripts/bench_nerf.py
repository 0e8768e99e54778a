#!/usr/bin/env python
"""Radiance-field benchmark: methods × scenes → test PSNR/SSIM at fixed steps and at fixed wall time,
training rays/s and samples/s, render rays/s, peak memory.

Every fit is a ``fieldforge train nerf`` run (``fieldforge.app.train.train``) in a temporary folder; a trainer
callback times it, evaluates it (the task's evaluation: the first --eval-views test views at full size) and
stops it. Training time is wall time; ``cpu s`` is the process CPU time over all threads (on a contended machine
it bounds what an idle one would need). Scenes: ``lego_half`` (../shared/data/lego_half, Blender, every 8th view held out, white background) and
``synthetic`` (the procedural capture, rendered into a temporary folder) and ``unbounded`` (the same objects inside a
distant textured sphere, 48 views at 200×150 with 3,000 sparse points: a scene the cameras do not bound, trained
with contraction; ``--contraction-steps 512,128`` compares samples per ray side by side). Training time excludes
evaluation. Each run stops at ``--steps`` or ``--budget`` seconds, whichever comes first; evaluations
happen at the steps in ``--eval-at`` and at the end.

Examples:
    python scripts/bench_nerf.py --scenes synthetic --methods ngp --steps 400 --budget 60 --threads 2
    python scripts/bench_nerf.py --scenes lego_half --methods ngp --steps 20000 --budget 1800 --eval-views 13
    python scripts/bench_nerf.py --scenes lego_half --methods ngp,nerf --device cuda --steps 5000 --budget 300
    python scripts/bench_nerf.py --scenes lego_half --settings default --formats blender,nerfstudio,llff,colmap --steps 1000
    python scripts/bench_nerf.py --scenes lego_half --settings default --target-psnr 25 --eval-every 250 --steps 20000 --budget 3600
    python scripts/bench_nerf.py --scenes unbounded --settings default --contraction-steps 512,128 --steps 3000 --budget 300
Writes a rich table and JSON to scripts/results/bench_nerf[-TAG].json.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared CPUs: spinning OpenMP workers starve each other

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from bench_common import ROOT, Probe, cpu_name, train_probed  # noqa: E402
from fieldforge.app.tasks import get_task  # noqa: E402
from fieldforge.app.tasks.nerf import METHODS, nerf_train_config  # noqa: E402
from fieldforge.app.trainer import StepResult, Trainer, resolve_device  # noqa: E402
from fieldforge.data.captures import CaptureOptions  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

UNBOUNDED_CAPTURE = dict(n_views=48, width=200, height=150, supersample=2, points=3000, backdrop_radius=12.0)
"""The ``unbounded`` scene: the procedural objects inside a textured sphere 4.6× the cameras' distance away."""
LEGO = Path(os.environ.get("FIELDFORGE_LEGO", ROOT.parent / "shared" / "data" / "lego_half"))


def default_config(method: str, data: Path, args, output_dir: Path) -> "object":
    """What ``fieldforge train nerf --data DATA [--method M]`` runs on this device: the device-sized default
    method, or a named preset as published; only steps, seed, the held-out split and the evaluation are set."""
    task = get_task("nerf")
    device = resolve_device(args.device)
    cfg = task.default_config(None if method == task.default_method(device) else method, device)
    render = replace(cfg.render, contraction_steps=args.contraction or cfg.render.contraction_steps)
    return replace(
        cfg, data=data, render=render, capture=replace(cfg.capture, holdout_every=8),
        eval_views=args.eval_views if args.eval_views > 0 else 1 << 30, eval_max_side=1 << 30,
        trainer=replace(cfg.trainer, steps=args.steps, seed=args.seed, device=args.device, eval_every=0, checkpoint_every=0,
                        log_every=10**9, progress=False, output_dir=output_dir),
    )


def scene_config(method: str, scene: str, data: Path, args, output_dir: Path = Path("outputs")) -> "object":
    """Per-scene sampling settings (the methods' fields and optimizers come from the presets)."""
    if args.settings == "default":
        return default_config(method, data, args, output_dir)
    scene = scene.split(":")[0]
    cfg = nerf_train_config(method)
    render = cfg.render
    if args.contraction:
        render = replace(render, contraction_steps=args.contraction)
    if scene in ("synthetic", "unbounded"):
        render = replace(render, grid_resolution=48, steps_per_ray=256, grid_warmup_steps=64, target_samples=1 << 14, max_rays=4096)
        batch = 1024
    else:
        render = replace(render, grid_resolution=args.grid_resolution, steps_per_ray=args.steps_per_ray, grid_warmup_steps=args.grid_warmup,
                         grid_update_fraction=args.grid_fraction, target_samples=args.target_samples, max_rays=1 << 16)
        batch = 1024
    field = cfg.field
    if method == "ngp" and scene == "lego_half":
        enc = field.encoding
        field = replace(field, encoding=replace(
            enc, log2_table_size=args.log2_table_size or enc.log2_table_size, n_levels=args.n_levels or enc.n_levels,
            max_resolution=args.max_resolution or enc.max_resolution))
    if method == "ngp" and scene in ("synthetic", "unbounded"):
        field = replace(field, encoding=replace(field.encoding, n_levels=12, log2_table_size=15, max_resolution=256))
    return replace(
        cfg, data=data, field=field, render=render, capture=CaptureOptions(holdout_every=8),
        # the task's periodic evaluation, as the benchmark scores: the first --eval-views test views (0: all) at full size
        eval_views=args.eval_views if args.eval_views > 0 else 1 << 30, eval_max_side=1 << 30,
        trainer=replace(cfg.trainer, steps=args.steps, batch_size=batch, seed=args.seed, device=args.device, mixed_precision=args.amp,
                        eval_every=0, checkpoint_every=0, log_every=10**9, progress=False, output_dir=output_dir),
    )


def lego_in_formats(tmp: Path, formats: list[str], console: Console) -> dict[str, Path]:
    """lego_half's 100 views written in each format, same order (so the same held-out views), with the
    visual hull of their alpha masks as the sparse points where a format carries them (nerfstudio's
    ``points3D.ply``, COLMAP's ``points3D``, LLFF's near/far bounds)."""
    import numpy as np
    from fieldforge.data.captures import writers

    views = writers.read_blender_views(LEGO)
    points = writers.visual_hull_points(views, np.full(3, -1.5), np.full(3, 1.5))
    console.print(f"lego_half in {', '.join(formats)}: {len(views)} views, {len(points):,} visual-hull points")
    make = {
        "blender": lambda p: LEGO,
        "nerfstudio": lambda p: writers.write_nerfstudio(p, views, points),
        "llff": lambda p: writers.write_llff(p, views, writers.point_bounds(views, points)),
        "colmap": lambda p: writers.write_colmap(p, views, points),
    }
    unknown = [f for f in formats if f not in make]
    if unknown:
        raise SystemExit(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(make)}")
    return {f: make[f](tmp / f) for f in formats}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class NerfProbe(Probe):
    """``Probe`` that also counts the training rays and samples of every step (from the task's step log)."""

    def __init__(self, console: Console, view_limit: int, **kwargs) -> None:
        super().__init__(on_record=self.show, **kwargs)
        self.console = console
        self.view_limit = view_limit
        self.rays = self.samples = 0
        self.eval_views = 0

    def on_train_start(self, trainer: Trainer) -> None:
        info = get_task("nerf").read_info(trainer.run)  # the capture's record: how many test views an evaluation renders
        test = info["split"]["test"] or info["split"]["train"][:1]
        self.eval_views = len(test[: self.view_limit]) if self.view_limit > 0 else len(test)
        super().on_train_start(trainer)

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        self.rays += int(result.log["rays"])
        self.samples += int(result.log["rays"] * result.log["samples_per_ray"])
        super().on_step_end(trainer, result, loss)

    def show(self, record: dict) -> None:
        if record["step"] in self.eval_at or self.eval_every:
            self.console.print(f"  step {record['step']:6d}  {record['seconds']:7.1f} s  test PSNR {record['psnr']:.2f}  SSIM {record['ssim']:.4f}  "
                               f"train rays/s {self.rays / max(record['seconds'], 1e-9):,.0f}")


def run(method: str, scene: str, data: Path, args, console: Console) -> dict:
    """One ``fieldforge train nerf`` run in a temporary folder, timed and evaluated by a ``NerfProbe``; it stops at
    --steps or --budget seconds of training, whichever comes first, with an evaluation there."""
    device = resolve_device(args.device)
    eval_at = sorted({int(s) for s in args.eval_at.split(",") if s}) if args.eval_at else []
    target = (lambda record: record["psnr"] >= args.target_psnr) if args.target_psnr > 0 else None
    probe = NerfProbe(console, args.eval_views, eval_at=eval_at, eval_every=args.eval_every, budget_s=args.budget, stop_when=target)
    console.print(f"[bold]{method} × {scene}[/]")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = scene_config(method, scene, data, args, Path(tmp))
        run_dir, _ = train_probed(cfg, probe)
    if run_dir is not None or probe.final is None:  # the probe ends every run with an evaluation
        raise RuntimeError(f"{method} × {scene}: the run ended without the probe's final evaluation")
    final, train_s = probe.final, probe.seconds
    console.print(f"  final {probe.steps:6d}  {train_s:7.1f} s  test PSNR {final['psnr']:.2f}  SSIM {final['ssim']:.4f}")
    return {
        "method": method, "scene": scene, "settings": args.settings, "contraction_steps": cfg.render.contraction_steps,
        "steps": probe.steps, "train_seconds": train_s,
        "train_cpu_seconds": probe.cpu_seconds,  # process CPU time (all threads): what an idle machine would need, roughly
        "stopped_by": probe.stopped_by,
        "psnr": final["psnr"], "ssim": final["ssim"], "eval_views": probe.eval_views,
        "train_rays_per_s": probe.rays / train_s, "train_samples_per_s": probe.samples / train_s,
        "render_rays_per_s": final["render_rays_per_s"], "params": probe.params,
        "peak_memory_mb": peak_memory_mb(device),
        "curve": [{"step": r["step"], "seconds": r["seconds"], "cpu_seconds": r["cpu_seconds"], "psnr": r["psnr"], "ssim": r["ssim"]}
                  for r in probe.curve],
    }


def save(results: list[dict], args) -> Path:
    """The results so far as JSON (written after every run: an interrupted benchmark keeps what it measured)."""
    device = resolve_device(args.device)
    env = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else cpu_name(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(), "argv": sys.argv[1:],
    }
    out = ROOT / "scripts" / "results" / f"bench_nerf{'-' + args.tag if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"env": env, "results": results}, indent=1))
    tmp.replace(out)
    return out


def record(results: list[dict], result: dict, args) -> None:
    results.append(result)
    save(results, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="ngp", help=f"comma-separated presets ({', '.join(METHODS)})")
    p.add_argument("--scenes", default="synthetic,lego_half", help="comma-separated: synthetic, lego_half")
    p.add_argument("--steps", type=int, default=2000, help="training steps (the lr schedule spans these)")
    p.add_argument("--budget", type=float, default=600.0, help="wall-time budget of training in seconds (evaluation excluded)")
    p.add_argument("--eval-at", default="", help="comma-separated steps at which to evaluate (besides the end)")
    p.add_argument("--eval-views", type=int, default=0, help="evaluate on the first N test views (0: all)")
    p.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (0: only --eval-at and the end)")
    p.add_argument("--target-psnr", type=float, default=0.0, help="stop once an evaluation reaches this test PSNR (0: never)")
    p.add_argument("--settings", default="bench", choices=["bench", "default"],
                   help="bench: the per-scene settings below; default: exactly what `fieldforge train nerf` runs on this device")
    p.add_argument("--formats", default="", help="lego_half also written as these formats and trained alike: "
                   "comma-separated blender, nerfstudio, llff, colmap (sparse points: the images' visual hull)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid-resolution", type=int, default=128, help="lego: occupancy grid resolution")
    p.add_argument("--grid-warmup", type=int, default=256, help="lego: steps with full occupancy-grid sweeps")
    p.add_argument("--grid-fraction", type=float, default=0.5, help="lego: fraction of cells per grid update after warm-up")
    p.add_argument("--steps-per-ray", type=int, default=1024, help="lego: marching steps across the box diagonal")
    p.add_argument("--target-samples", type=int, default=1 << 16, help="lego: samples per step (adapts the ray count)")
    p.add_argument("--log2-table-size", type=int, default=0, help="lego, ngp: override the hash table size T (0: preset)")
    p.add_argument("--n-levels", type=int, default=0, help="lego, ngp: override the number of hash-grid levels (0: preset)")
    p.add_argument("--max-resolution", type=int, default=0, help="lego, ngp: override the finest hash-grid resolution (0: preset)")
    p.add_argument("--contraction-steps", default="", help="comma-separated samples per ray of unbounded/NDC scenes, one run each "
                   "(empty: the settings' value)")
    p.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = p.parse_args()
    args.contraction = 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    console = Console()
    results = []
    for scene in [s for s in args.scenes.split(",") if s]:
        with tempfile.TemporaryDirectory() as tmp:
            if scene == "synthetic":
                from fieldforge.app.demos import DEMO_CAPTURE, write_synthetic_capture

                data = write_synthetic_capture(Path(tmp) / "synthetic", **DEMO_CAPTURE).parent  # type: ignore[arg-type]
            elif scene == "unbounded":
                from fieldforge.app.demos import write_synthetic_capture

                data = write_synthetic_capture(Path(tmp) / "unbounded", **UNBOUNDED_CAPTURE).parent  # type: ignore[arg-type]
            elif scene == "lego_half":
                if not LEGO.is_dir():
                    console.print(f"[yellow]skipping lego_half: {LEGO} not found")
                    continue
                data = LEGO
                if args.formats:
                    for fmt, path in lego_in_formats(Path(tmp), [f for f in args.formats.split(",") if f], console).items():
                        for method in [m for m in args.methods.split(",") if m]:
                            record(results, run(method, f"lego_half:{fmt}", path, args, console), args)
                    continue
            else:
                raise SystemExit(f"unknown scene {scene!r}")
            for method in [m for m in args.methods.split(",") if m]:
                if method not in METHODS:
                    raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
                for contraction in [int(c) for c in args.contraction_steps.split(",") if c] or [0]:
                    args.contraction = contraction
                    record(results, run(method, scene, data, args, console), args)
    table = Table(title=f"NeRF benchmark ({results[0]['eval_views'] if results else 0} test views; training time excludes evaluation)")
    for col in ("method", "scene", "contraction steps", "steps", "train s", "cpu s", "test PSNR", "SSIM", "train rays/s", "samples/s", "render rays/s", "peak MB"):
        table.add_column(col, justify="right" if col not in ("method", "scene") else "left")
    for r in results:
        table.add_row(r["method"], r["scene"], str(r["contraction_steps"]), str(r["steps"]), f"{r['train_seconds']:.0f}", f"{r['train_cpu_seconds']:.0f}", f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                      f"{r['train_rays_per_s']:,.0f}", f"{r['train_samples_per_s']:,.0f}", f"{r['render_rays_per_s']:,.0f}", f"{r['peak_memory_mb']:,.0f}")
    console.print(table)
    console.print(f"→ {save(results, args)}")


if __name__ == "__main__":
    main()
