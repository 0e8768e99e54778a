#!/usr/bin/env python
"""Grid-hybrid benchmark: time to reach a target PSNR on images, and 3D SDF regression accuracy.

Part 1 (images): each preset trains as a ``fieldforge train image`` run (``fieldforge.app.train.train``: the real
optimizer/schedule) and is evaluated on the full image every --eval-every steps by a trainer callback
(``trainer.evaluate``; evaluation time excluded). Reports the training wall/CPU seconds and steps needed to first
reach --target-psnr, and the PSNR at the last step.
Part 2 (--sdf): fits the torus SDF (R=0.5, r=0.2) in [-1,1]^3 by L1 regression with each representation (hash
grid + MLP, CAM, hash grid + RBF, plain Fourier features), as ``fieldforge train sdf`` runs on the torus meshed at
192³ (uniform training points with exact distances to that mesh), and reports the mean absolute error against the
analytic SDF (data.synthetic.torus_sdf) on held-out uniform points and in the near-surface band |sdf| < 0.05.

CPU note: under contention, 2-thread BLAS runs slower than 1 thread (barrier spinning); --threads 1 is the default.

Example:
    python scripts/bench_grids.py --methods ff,cam,ngp,rbf --count 2 --downscale 4 --sdf
Writes a rich table and scripts/results/bench_grids[-TAG].json.
"""

import argparse
import json
import math
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench_common import DEFAULT_IMAGES, ROOT, Probe, cpu_name, image_bench_config, list_images, public_args, train_probed
from bench_sdf import shape_file

from fieldforge.app.config import OptimizerConfig, task_field
from fieldforge.app.loader import load_run
from fieldforge.app.tasks import get_task
from fieldforge.app.tasks.image import METHODS
from fieldforge.app.tasks.sdf import sdf_train_config
from fieldforge.data.synthetic import torus_sdf
from fieldforge.fields.encodings import FourierEncodingConfig, HashGridEncodingConfig
from fieldforge.fields.field import FieldConfig
from fieldforge.fields.networks import CAMConfig, MLPConfig, RBFConfig

TORUS_PADDING = 0.15
"""The torus spans 1.4 × 1.4 × 0.4: with this margin the run's unit cube is [-1, 1]^3 in the torus' frame."""


def image_curve(method: str, path: Path, args: argparse.Namespace) -> dict:
    """Train until --target-psnr (or --steps); PSNR curve against training time (evaluations excluded)."""
    config = image_bench_config(method, args.steps, args.batch_size, args.seed, "cpu", data=path, downscale=args.downscale)
    stop = (lambda m: m["psnr"] >= args.target_psnr) if args.stop_at_target else None
    probe = Probe(eval_every=args.eval_every, stop_when=stop)
    with tempfile.TemporaryDirectory() as tmp:
        train_probed(replace(config, trainer=replace(config.trainer, output_dir=Path(tmp))), probe)
        assert probe.run is not None
        info = get_task("image").read_info(probe.run)
    curve = [(r["step"], r["seconds"], r["cpu_seconds"], r["psnr"]) for r in probe.curve]
    reached = next(((step, wall, cpu) for step, wall, cpu, psnr in curve if psnr >= args.target_psnr), None)
    return {
        "method": method, "image": path.name, "resolution": f"{info['width']}x{info['height']}", "params": probe.params,
        "final_step": curve[-1][0], "final_psnr": curve[-1][3], "steps_per_s": curve[-1][0] / curve[-1][1],
        "target_step": reached[0] if reached else None, "target_wall_s": reached[1] if reached else None,
        "target_cpu_s": reached[2] if reached else None, "curve": curve,
    }


def sdf_configs() -> dict[str, tuple[FieldConfig, float]]:
    grid = HashGridEncodingConfig(n_levels=8, log2_table_size=14, base_resolution=4, max_resolution=96)
    ff = FourierEncodingConfig(sigma=1.0, n_features=64)
    return {
        "ngp": (FieldConfig(encoding=grid, network=MLPConfig(width=64, n_hidden_layers=2), head="sdf"), 1e-2),
        "rbf": (FieldConfig(encoding=grid, network=RBFConfig(n_kernels=64), head="sdf"), 1e-2),
        "cam": (FieldConfig(encoding=ff, network=CAMConfig(mlp=MLPConfig(width=128, n_hidden_layers=3), grid_resolution=(32,)),
                            head="sdf"), 3e-3),
        "ff": (FieldConfig(encoding=ff, network=MLPConfig(width=128, n_hidden_layers=3), head="sdf"), 3e-3),
    }


def fit_sdf(name: str, config: FieldConfig, lr: float, steps: int, batch: int, seed: int, mesh: Path, output_dir: Path) -> dict:
    """L1 regression of the torus' SDF as a ``fieldforge train sdf`` run on its mesh: a pool of uniform points in
    the run's unit cube ([-1, 1]^3) with exact distances to the mesh, Adam with the default exponential decay to
    0.1·lr. Scored against the analytic SDF at 100k held-out uniform points of the cube, in the torus' units."""
    base = sdf_train_config(name)
    run_config = replace(
        base, data=mesh, field=task_field(config), optim=OptimizerConfig(lr=lr), padding=TORUS_PADDING,
        sampling=replace(base.sampling, uniform_fraction=1.0, pool_size=max(1000, min(1_000_000, steps * batch))),
        eval_resolution=64, eval_points=20_000,
        trainer=replace(base.trainer, steps=steps, batch_size=batch, seed=seed, device="cpu", eval_every=0, checkpoint_every=0,
                        log_every=10**9, progress=False, output_dir=output_dir, name=name),
    )  # fmt: skip
    probe = Probe(evaluate_at_stop=False, stop_at_end=False)  # times the steps; the run ends as usual
    run, _ = train_probed(run_config, probe)
    assert run is not None
    loaded = load_run(run.path)
    assert loaded.frame is not None
    unit = torch.rand(100_000, 3, generator=torch.Generator().manual_seed(seed + 1))
    test = loaded.frame.invert(unit)  # the torus' coordinates
    with torch.no_grad():
        truth = torus_sdf(test)
        err = (loaded.model.query_chunked(unit).sdf.reshape(-1) / loaded.frame.scale - truth).abs()
    near = truth.abs() < 0.05
    return {"method": name, "mae": err.mean().item(), "mae_near": err[near].mean().item(), "max_err": err.max().item(),
            "steps": steps, "wall_s": probe.seconds, "cpu_s": probe.cpu_seconds, "params": probe.params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images (default: ../shared/data/kodak)")
    parser.add_argument("--count", type=int, default=2, help="use the first N images of the folder")
    parser.add_argument("--methods", default="ff,cam,ngp,rbf",
                        help=f"comma-separated image presets from: {','.join(METHODS)}")
    parser.add_argument("--steps", type=int, default=500, help="maximum optimizer steps per image fit")
    parser.add_argument("--eval-every", type=int, default=10, help="evaluate the full image every N steps (not timed)")
    parser.add_argument("--target-psnr", type=float, default=30.0, help="report the time to first reach this PSNR (dB)")
    parser.add_argument("--stop-at-target", action="store_true", help="stop a fit once it reaches --target-psnr")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--downscale", type=int, default=4, help="integer downscale of the images (1 = full 768×512)")
    parser.add_argument("--sdf", action="store_true", help="also run the 3D torus-SDF regression check")
    parser.add_argument("--sdf-only", action="store_true", help="run only the 3D torus-SDF check")
    parser.add_argument("--sdf-steps", type=int, default=1000)
    parser.add_argument("--sdf-batch", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: robust under contention)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; available: {', '.join(METHODS)}")
    result: dict = {"args": public_args(args), "device": f"CPU ({cpu_name()}, {args.threads} threads, shared machine)"}

    if not args.sdf_only:
        if not args.images.is_dir():
            parser.error(f"{args.images}: image folder not found")
        images = list_images(args.images, args.count)
        runs = []
        for method in methods:
            for path in images:
                r = image_curve(method, path, args)
                console.print(f"{method:>5} {path.name}: {r['final_psnr']:.2f} dB at step {r['final_step']}, "
                              f"{args.target_psnr:g} dB at {r['target_wall_s'] or float('nan'):.1f} s ({r['target_step']} steps)")
                runs.append(r)
        table = Table(title=f"Time to {args.target_psnr:g} dB, {len(images)} images, batch {args.batch_size}, "
                            f"downscale {args.downscale}, {args.threads} CPU thread(s)")
        for col in ("method", "params", "steps/s", f"steps to {args.target_psnr:g} dB", "wall s", "CPU s", "PSNR at last step"):
            table.add_column(col, justify="right")
        summary = {}
        for method in methods:
            rs = [r for r in runs if r["method"] == method]
            hit = [r for r in rs if r["target_step"] is not None]
            mean = lambda key, rows: sum(r[key] for r in rows) / len(rows) if rows else math.nan  # noqa: E731
            summary[method] = {
                "params": rs[0]["params"], "steps_per_s": mean("steps_per_s", rs), "reached": f"{len(hit)}/{len(rs)}",
                "target_step": mean("target_step", hit), "target_wall_s": mean("target_wall_s", hit),
                "target_cpu_s": mean("target_cpu_s", hit), "final_psnr": mean("final_psnr", rs),
                "final_step": mean("final_step", rs),
            }
            s = summary[method]
            table.add_row(method, f"{s['params']:,}", f"{s['steps_per_s']:.2f}", f"{s['target_step']:.0f} ({s['reached']})",
                          f"{s['target_wall_s']:.1f}", f"{s['target_cpu_s']:.1f}",
                          f"{s['final_psnr']:.2f} @ {s['final_step']:.0f}")
        console.print(table)
        result["image"] = {"summary": summary, "runs": runs}

    if args.sdf or args.sdf_only:
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            mesh = shape_file("torus", Path(tmp))
            for name, (config, lr) in sdf_configs().items():
                r = fit_sdf(name, config, lr, args.sdf_steps, args.sdf_batch, args.seed, mesh, Path(tmp) / "runs")
                console.print(f"sdf {name}: MAE {r['mae']:.5f}, near-surface {r['mae_near']:.5f}, {r['wall_s']:.1f} s")
                rows.append(r)
        table = Table(title=f"Torus SDF in [-1,1]^3 (R=0.5, r=0.2), L1 regression, "
                            f"{args.sdf_steps} steps × {args.sdf_batch} points")
        for col in ("method", "params", "MAE", "MAE |sdf|<0.05", "max err", "wall s", "CPU s"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(r["method"], f"{r['params']:,}", f"{r['mae']:.5f}", f"{r['mae_near']:.5f}", f"{r['max_err']:.4f}",
                          f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}")
        console.print(table)
        result["sdf"] = rows

    out = ROOT / "scripts" / "results" / f"bench_grids{('-' + args.tag) if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
