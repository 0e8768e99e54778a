#!/usr/bin/env python
"""Image-fitting benchmark: methods × images → PSNR/SSIM at fixed steps (or fixed wall time), steps/s, params.

Example (CPU, the README table):
    python scripts/bench_image.py --methods mlp,pe,ff --downscale 2 --steps 1000
Every fit is a ``fieldforge train image`` run (``fieldforge.app.train.train``) in a temporary folder; ``seconds``
is its training loop's time (the final evaluation excluded).
Writes a rich table to stdout and JSON to scripts/results/bench_image[-TAG].json.
"""

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench_common import DEFAULT_IMAGES, ROOT, cpu_name, fit_image, image_bench_config, list_images, public_args

from fieldforge.app.tasks.image import METHODS
from fieldforge.app.trainer import resolve_device


def fit(method: str, image_path: Path, steps: int, batch_size: int, downscale: int, device: str, seed: int) -> dict:
    """Train one method on one image (``fieldforge train image`` in a temporary folder); returns quality and speed."""
    config = image_bench_config(method, steps, batch_size, seed, device, data=image_path, downscale=downscale)
    r, info = fit_image(config)
    return {
        "method": method, "image": image_path.name, "psnr": r["psnr"], "ssim": r["ssim"], "steps": steps,
        "seconds": r["seconds"], "steps_per_s": steps / r["seconds"], "params": r["params"],
        "resolution": f"{info['width']}x{info['height']}",
    }


def steps_for_budget(method: str, image_path: Path, budget: float, batch_size: int, downscale: int, device: str) -> int:
    """Measure a method's step rate with a short run, then convert a wall-time budget to steps."""
    probe = fit(method, image_path, 20, batch_size, downscale, device, seed=0)
    return max(20, int(budget * probe["steps_per_s"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images (default: ../shared/data/kodak)")
    parser.add_argument("--count", type=int, default=4, help="use the first N images of the folder (default 4)")
    parser.add_argument("--methods", default="mlp,pe,ff", help=f"comma-separated presets from: {','.join(METHODS)}")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per fit (ignored with --time-budget)")
    parser.add_argument("--time-budget", type=float, default=0.0, help="equal wall time per fit in seconds (0: equal steps)")
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--downscale", type=int, default=2, help="integer downscale of the images (1 = full 768×512)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()

    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; available: {', '.join(METHODS)}")
    if not args.images.is_dir():
        parser.error(f"{args.images}: image folder not found")
    images = list_images(args.images, args.count)
    if not images:
        parser.error(f"{args.images}: no images")
    torch.set_num_threads(torch.get_num_threads())
    console = Console()
    rows = []
    for method in methods:
        for path in images:
            steps = steps_for_budget(method, path, args.time_budget, args.batch_size, args.downscale, args.device) if args.time_budget > 0 else args.steps
            r = fit(method, path, steps, args.batch_size, args.downscale, args.device, args.seed)
            console.print(f"{method:>6} {path.name}: {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f}, {r['steps']} steps in {r['seconds']:.1f} s")
            rows.append(r)

    baseline = methods[0]
    mode = f"equal wall time {args.time_budget:g} s" if args.time_budget > 0 else f"{args.steps} steps"
    table = Table(title=f"Image fitting, {len(images)} images, {mode}, batch {args.batch_size}, downscale {args.downscale}")
    for col in ("method", "PSNR (dB)", f"Δ vs {baseline}", "SSIM", "steps", "steps/s", "time (s)", "params"):
        table.add_column(col, justify="right")
    summary = {}
    for method in methods:
        rs = [r for r in rows if r["method"] == method]
        mean = {k: sum(r[k] for r in rs) / len(rs) for k in ("psnr", "ssim", "steps", "steps_per_s", "seconds")}
        summary[method] = {**mean, "params": rs[0]["params"]}
    for method in methods:
        s = summary[method]
        table.add_row(
            method, f"{s['psnr']:.2f}", f"{s['psnr'] - summary[baseline]['psnr']:+.2f}", f"{s['ssim']:.4f}", f"{s['steps']:.0f}",
            f"{s['steps_per_s']:.1f}", f"{s['seconds']:.1f}", f"{s['params']:,}",
        )
    console.print(table)
    device = torch.cuda.get_device_name() if resolve_device(args.device).type == "cuda" else f"CPU ({cpu_name()}, {torch.get_num_threads()} threads)"
    out = ROOT / "scripts" / "results" / f"bench_image{('-' + args.tag) if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": public_args(args), "device": device, "summary": summary, "runs": rows}, indent=1))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
