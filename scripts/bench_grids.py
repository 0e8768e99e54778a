#!/usr/bin/env python
"""Grid-hybrid benchmark: time to reach a target PSNR on images, and 3D SDF regression accuracy.

Part 1 (images): each preset trains with the real optimizer/schedule (`Trainer`) and is evaluated on the full
image every --eval-every steps (evaluation time excluded). Reports the training wall/CPU seconds and steps
needed to first reach --target-psnr, and the PSNR at the last step.
Part 2 (--sdf): fits the analytic torus SDF (data.synthetic.torus_sdf) in [-1,1]^3 by L1 regression with each
representation (hash grid + MLP, CAM, hash grid + RBF, plain Fourier features) and reports the mean absolute
error on held-out uniform points and in the near-surface band |sdf| < 0.05.

CPU note: under contention, 2-thread BLAS runs slower than 1 thread (barrier spinning); --threads 1 is the default.

Example:
    python scripts/bench_grids.py --methods ff,cam,ngp,rbf --count 2 --downscale 4 --sdf
Writes a rich table and scripts/results/bench_grids[-TAG].json.
"""

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fieldforge.app.config import IMAGE_METHODS, image_train_config  # noqa: E402
from fieldforge.app.image_task import ImageTask  # noqa: E402
from fieldforge.app.runs import RunDir  # noqa: E402
from fieldforge.app.train import build_image_field  # noqa: E402
from fieldforge.app.trainer import Trainer  # noqa: E402
from fieldforge.data.images import load_image  # noqa: E402
from fieldforge.data.samplers import PixelSampler  # noqa: E402
from fieldforge.data.synthetic import torus_sdf  # noqa: E402
from fieldforge.fields.encodings import FourierEncodingConfig, HashGridEncodingConfig  # noqa: E402
from fieldforge.fields.field import FieldConfig, make_field  # noqa: E402
from fieldforge.fields.networks import CAMConfig, MLPConfig, RBFConfig  # noqa: E402

DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "kodak"


def image_curve(method: str, path: Path, args: argparse.Namespace) -> dict:
    """Train until --target-psnr (or --steps); PSNR curve against training time."""
    base = image_train_config(method)
    config = replace(base, data=path, downscale=args.downscale, trainer=replace(
        base.trainer, steps=args.steps, batch_size=args.batch_size, progress=False, seed=args.seed, device="cpu"))
    image = load_image(path, downscale=args.downscale)
    target = image.encoded()
    field = build_image_field(config, image.channels)
    task = ImageTask(field, PixelSampler(target, args.batch_size, "cpu", seed=args.seed), target, config.loss)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config.trainer, config.optim, task, RunDir(Path(tmp)), torch.device("cpu"))
        wall = cpu = 0.0
        curve: list[tuple[int, float, float, float]] = []
        reached = None
        field.train()
        for step in range(1, args.steps + 1):
            w0, c0 = time.perf_counter(), time.process_time()
            result = task.train_step(step - 1)
            trainer.optimizer.zero_grad(set_to_none=True)
            result.loss.backward()
            trainer.optimizer.step()
            trainer.scheduler.step()
            field.update(step / args.steps, result.coords, result.per_sample_loss.detach() if result.per_sample_loss is not None else None)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            if step % args.eval_every == 0 or step == args.steps:
                field.eval()
                with torch.no_grad():
                    psnr = task.evaluate(step)["psnr"]
                field.train()
                curve.append((step, wall, cpu, psnr))
                if reached is None and psnr >= args.target_psnr:
                    reached = (step, wall, cpu)
                    if args.stop_at_target:
                        break
    return {
        "method": method, "image": path.name, "resolution": f"{image.width}x{image.height}", "params": field.num_parameters(),
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


def fit_sdf(name: str, config: FieldConfig, lr: float, steps: int, batch: int, seed: int) -> dict:
    torch.manual_seed(seed)
    field = make_field(config, 3, bbox=torch.tensor([[-1.0] * 3, [1.0] * 3]))
    opt = torch.optim.Adam(field.param_groups(lr), lr=lr, betas=(0.9, 0.99), eps=1e-15)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 ** (s / steps))
    gen = torch.Generator().manual_seed(seed)
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        p = torch.rand(batch, 3, generator=gen) * 2 - 1
        loss = (field(p).sdf - torus_sdf(p)).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    test = torch.rand(100_000, 3, generator=torch.Generator().manual_seed(seed + 1)) * 2 - 1
    with torch.no_grad():
        truth = torus_sdf(test)
        err = (field.query_chunked(test).sdf - truth).abs()
    near = truth.abs() < 0.05
    return {"method": name, "mae": err.mean().item(), "mae_near": err[near].mean().item(), "max_err": err.max().item(),
            "steps": steps, "wall_s": wall, "cpu_s": cpu, "params": field.num_parameters()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images (default: ../shared/data/kodak)")
    parser.add_argument("--count", type=int, default=2, help="use the first N images of the folder")
    parser.add_argument("--methods", default="ff,cam,ngp,rbf",
                        help=f"comma-separated image presets from: {','.join(IMAGE_METHODS)}")
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
    unknown = [m for m in methods if m not in IMAGE_METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; available: {', '.join(IMAGE_METHODS)}")
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()},
                    "device": f"CPU ({platform.processor() or platform.machine()}, {args.threads} threads, shared machine)"}

    if not args.sdf_only:
        if not args.images.is_dir():
            parser.error(f"{args.images}: image folder not found")
        images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[: args.count]
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
        for name, (config, lr) in sdf_configs().items():
            r = fit_sdf(name, config, lr, args.sdf_steps, args.sdf_batch, args.seed)
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
