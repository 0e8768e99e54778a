#!/usr/bin/env python
"""σ sweep: Fourier-feature methods (ff, sape, c2f, pins) at several σ, equal steps: PSNR per σ and its spread.

SAPE's claim: at least as good as FF at the same σ and far less sensitive to σ (large σ no longer adds
noise in smooth regions). Example (CPU):
    python scripts/bench_progressive.py --methods ff,sape --sigmas 5,10,20,40 --count 2 --downscale 8 --steps 300
Every fit is a ``fieldforge train image`` run (``fieldforge.app.train.train``) in a temporary folder.
Writes a rich table to stdout and JSON to scripts/results/bench_progressive[-TAG].json.
"""

import argparse
import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench_common import DEFAULT_IMAGES, ROOT, cpu_name, fit_image, holdout_mask, image_bench_config, list_images, public_args

from fieldforge.app.tasks.image import METHODS
from fieldforge.app.trainer import resolve_device
from fieldforge.data.images import load_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images (default: ../shared/data/kodak)")
    parser.add_argument("--count", type=int, default=2, help="use the first N images (default 2)")
    parser.add_argument("--methods", default="ff,sape", help="comma-separated presets with a Fourier-feature σ (ff, sape, c2f, pins, cam)")
    parser.add_argument("--sigmas", default="5,10,20,40", help="comma-separated σ values")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--downscale", type=int, default=8, help="integer downscale of the images (8: Kodak at 96×64)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="holdout", choices=["holdout", "fit"],
                        help="holdout: train on every 2nd pixel (25%%), PSNR on the other 75%% (Tancik et al.); fit: train and score on all pixels")
    parser.add_argument("--skip", type=int, default=0, help="skip the first K images (to split a sweep over processes)")
    parser.add_argument("--combine", type=Path, nargs="+", default=None,
                        help="merge result JSONs of runs with the same settings (e.g. one per image or method subset) into one table")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()

    if args.combine:
        rows, methods, sigmas, device = combined_runs(args.combine, parser)
        report(rows, methods, sigmas, args, device)
        return
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS or not any(f.name == "sigma" for f in dataclasses.fields(METHODS[m].field.encoding)):
            parser.error(f"{m!r} is not a preset with a Fourier-feature σ")
    sigmas = [float(s) for s in args.sigmas.split(",") if s]
    images = list_images(args.images, args.skip + args.count)[args.skip:] if args.images.is_dir() else []
    if not images:
        parser.error(f"{args.images}: no images found")
    console = Console(width=170)
    sizes = {p: load_image(p, downscale=args.downscale).pixels.shape[:2] for p in images}
    h, w = next(iter(sizes.values()))
    rows = []
    for method in methods:
        base = image_bench_config(method, args.steps, args.batch_size, args.seed, args.device, downscale=args.downscale)
        for sigma in sigmas:
            config = replace(base, field=replace(base.field, encoding=replace(base.field.encoding, sigma=sigma)))
            for path, (ih, iw) in sizes.items():
                name = path.name
                mask = holdout_mask(ih, iw) if args.protocol == "holdout" else None
                r, _ = fit_image(replace(config, data=path), mask)
                rows.append({"method": method, "sigma": sigma, "image": name, "resolution": f"{w}x{h}", **r})
                extra = f" (train pixels {r['train_psnr']:.2f} dB)" if mask is not None else ""
                console.print(f"{method:>5} σ={sigma:g} {name}: {r['psnr']:.2f} dB{extra} in {r['seconds']:.1f} s")
    report(rows, methods, sigmas, args, machine(args.device))


def combined_runs(paths: list[Path], parser: argparse.ArgumentParser) -> tuple[list[dict], list[str], list[float], str]:
    """Rows of several result files (e.g. one image or method subset per process), checked to share a
    protocol, and the machine(s) that ran them."""
    rows, settings, devices = [], set(), []
    for path in paths:
        data = json.loads(path.read_text())
        a = data["args"]
        settings.add((a["steps"], a["batch_size"], a["downscale"], a["protocol"], a["seed"]))
        rows += data["runs"]
        devices.append(data.get("device", "unknown"))
    if len(settings) != 1:
        parser.error(f"--combine: the files were run with different settings {sorted(settings)}")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sigmas = sorted({float(r["sigma"]) for r in rows})
    return rows, methods, sigmas, " + ".join(dict.fromkeys(devices))


def machine(device: str) -> str:
    if resolve_device(device).type == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({cpu_name()}, {torch.get_num_threads()} threads, shared)"


def report(rows: list[dict], methods: list[str], sigmas: list[float], args: argparse.Namespace, device: str) -> None:
    """Print the σ table (mean over images) and write the JSON."""
    console = Console(width=170)
    if args.combine:
        first = json.loads(Path(args.combine[0]).read_text())["args"]
        for key in ("steps", "batch_size", "downscale", "protocol", "seed"):
            setattr(args, key, type(getattr(args, key))(first[key]))
    summary: dict[str, dict] = {}
    for method in methods:
        def mean(key: str, s: float) -> float:
            values = [r[key] for r in rows if r["method"] == method and float(r["sigma"]) == s]
            if len({r["image"] for r in rows}) != len(values):
                raise SystemExit(f"{method} σ={s:g}: results for {len(values)} images, expected one per image")
            return float(np.mean(values))

        per_sigma = {s: mean("psnr", s) for s in sigmas}
        summary[method] = {"psnr_by_sigma": per_sigma, "spread_db": max(per_sigma.values()) - min(per_sigma.values()),
                           "best_db": max(per_sigma.values()), "params": next(r["params"] for r in rows if r["method"] == method)}
        if args.protocol == "holdout":
            summary[method]["train_psnr_by_sigma"] = {s: mean("train_psnr", s) for s in sigmas}
    if "ff" in summary:
        for method in methods:
            if method != "ff":
                summary[method]["delta_vs_ff_by_sigma"] = {x: summary[method]["psnr_by_sigma"][x] - summary["ff"]["psnr_by_sigma"][x] for x in sigmas}
    images = sorted({r["image"] for r in rows})
    resolution = next((r["resolution"] for r in rows if "resolution" in r), f"÷{args.downscale}")
    scored = "held-out 75% of pixels (trained on every 2nd pixel)" if args.protocol == "holdout" else "all pixels (trained on all)"
    table = Table(title=f"σ sweep: {len(images)} images ({', '.join(images)}) at {resolution}, {args.steps} steps, batch {args.batch_size}; "
                        f"mean PSNR (dB) on {scored}")
    table.add_column("method")
    for s in sigmas:
        table.add_column(f"σ={s:g}", justify="right")
    for col in ("spread", "best", "params"):
        table.add_column(col, justify="right")
    for method, s in summary.items():
        table.add_row(method, *[f"{s['psnr_by_sigma'][x]:.2f}" for x in sigmas], f"{s['spread_db']:.2f}", f"{s['best_db']:.2f}", f"{s['params']:,}")
        if "train_psnr_by_sigma" in s:
            t = s["train_psnr_by_sigma"]
            table.add_row(f"  ({method}, train pixels)", *[f"{t[x]:.2f}" for x in sigmas], f"{max(t.values()) - min(t.values()):.2f}", f"{max(t.values()):.2f}", "")
    console.print(table)
    out = ROOT / "scripts" / "results" / f"bench_progressive{('-' + args.tag) if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": public_args(args), "device": device, "summary": summary, "runs": rows}, indent=1))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
