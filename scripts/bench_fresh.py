#!/usr/bin/env python
"""FreSh vs a full grid search: train every candidate value, compare with FreSh's pick made at initialization.

For each image and each family (ff: Fourier σ, siren: ω₀, pe: top octave), FreSh ranks the candidates from
untrained renders (several seeds); then every candidate is trained with the family's preset at equal steps.
Reported: PSNR of FreSh's pick minus the best grid PSNR, and FreSh's selection time as a fraction of one
training run. Example (CPU):
    python scripts/bench_fresh.py --families ff,siren --count 2 --downscale 8 --steps 300
FreSh is the image task's own selection (``TASK.select_fresh``, what ``fieldforge train image --fresh`` runs);
every training run is a ``fieldforge train image`` run (``fieldforge.app.train.train``) in a temporary folder.
Writes a rich table to stdout and JSON to scripts/results/bench_fresh[-TAG].json.
"""

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bench_common import (
    DEFAULT_IMAGES,
    ROOT,
    Probe,
    cpu_name,
    fit_image,
    holdout_mask,
    image_bench_config,
    list_images,
    public_args,
    train_probed,
)

from fieldforge.app.tasks.image import TASK, ImageTrainConfig
from fieldforge.app.trainer import resolve_device
from fieldforge.data.images import ImageData
from fieldforge.fields.fresh import FreshConfig, FreshResult, candidate_configs


def select(config: ImageTrainConfig, image: ImageData, device: str) -> FreshResult:
    """FreSh's ranking of the candidates of ``config.fresh_search`` on ``image`` (the task's own selection,
    as ``fieldforge train image --fresh`` runs it)."""
    _, result, _ = TASK.select_fresh(config, image, TASK.run_info(config, image), resolve_device(device))
    return result


def machine(device: str) -> str:
    if resolve_device(device).type == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({cpu_name()}, {torch.get_num_threads()} threads, shared)"


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def projection(family: str, image: Path, fresh: FreshConfig, steps: int, batch_size: int, probe_steps: int, device: str) -> dict:
    """FreSh's cost relative to a default-length training run at full resolution: selection is timed in full;
    the training run is timed for ``probe_steps`` steps after one warm-up step and extrapolated to ``steps``."""
    config = replace(image_bench_config(family, probe_steps + 1, batch_size, 0, device, data=image), fresh_search=fresh)
    picture = TASK.prepare(config)
    result = select(config, picture, device)
    probe = Probe(evaluate_at_stop=False)  # times the steps, then ends the run before its final evaluation
    with tempfile.TemporaryDirectory() as tmp:
        train_probed(replace(config, trainer=replace(config.trainer, output_dir=Path(tmp))), probe)
    step_s = (probe.seconds - probe.first_step_seconds) / probe_steps
    train_s = step_s * steps
    return {"family": family, "image": image.name, "resolution": f"{picture.width}x{picture.height}", "candidates": len(result.ranking),
            "seeds": fresh.seeds, "selection_s": result.seconds, "step_s": step_s, "steps": steps, "batch_size": batch_size,
            "train_s_extrapolated": train_s, "selection_fraction": result.seconds / train_s, "fresh_pick": result.best.value}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images (default: ../shared/data/kodak)")
    parser.add_argument("--count", type=int, default=2, help="use the first N images (default 2)")
    parser.add_argument("--families", default="ff,siren", help="comma-separated presets whose hyperparameter is tuned: ff, siren, pe")
    parser.add_argument("--values", default="", help="candidate values, comma-separated (default: each family's FreSh grid)")
    parser.add_argument("--siren-values", default="", help="candidate values for the siren family (overrides --values for it)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--downscale", type=int, default=8, help="integer downscale of the images (8: Kodak at 96×64)")
    parser.add_argument("--seeds", type=int, default=10, help="FreSh initializations per candidate")
    parser.add_argument("--crop", type=int, default=64, help="FreSh spectrum entries K")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--protocol", default="fit", choices=["fit", "holdout"],
                        help="fit: train and score on all pixels (FreSh's setting); holdout: train on every 2nd pixel, score the other "
                             "75%%, and FreSh sees only the training pixels")
    parser.add_argument("--projection", action="store_true",
                        help="instead: time FreSh (full grid, full-resolution first image) against a default-length run "
                             "(--projection-steps × --projection-batch, timed over --probe-steps steps and extrapolated)")
    parser.add_argument("--projection-steps", type=int, default=2000, help="training steps of the projected run (fieldforge's default: 2000)")
    parser.add_argument("--projection-batch", type=int, default=65536, help="batch of the projected run (fieldforge's default: 65536)")
    parser.add_argument("--probe-steps", type=int, default=5)
    args = parser.parse_args()

    images = list_images(args.images, args.count) if args.images.is_dir() else []
    if not images:
        parser.error(f"{args.images}: no images found")
    console = Console(width=170)
    if args.projection:
        prows = []
        for family in [f for f in args.families.split(",") if f]:
            text = args.siren_values if family == "siren" and args.siren_values else args.values
            fresh = FreshConfig(values=tuple(float(v) for v in text.split(",") if v), seeds=args.seeds, crop=args.crop)
            p = projection(family, images[0], fresh, args.projection_steps, args.projection_batch, args.probe_steps, args.device)
            prows.append(p)
            console.print(p)
        table = Table(title=f"FreSh cost vs a default training run ({args.projection_steps} steps × {args.projection_batch}), full resolution")
        for col in ("family", "image", "candidates × seeds", "selection s", "s / step", "train s (extrap.)", "select/train"):
            table.add_column(col, justify="right")
        for p in prows:
            table.add_row(p["family"], f"{p['image']} {p['resolution']}", f"{p['candidates']} × {p['seeds']}", f"{p['selection_s']:.1f}",
                          f"{p['step_s']:.2f}", f"{p['train_s_extrapolated']:.0f}", f"{100 * p['selection_fraction']:.2f}%")
        console.print(table)
        out = ROOT / "scripts" / "results" / f"bench_fresh-projection{('-' + args.tag) if args.tag else ''}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"args": public_args(args), "device": machine(args.device), "runs": prows}, indent=1))
        console.print(f"wrote {out}")
        return
    rows, summary = [], {}
    for family in [f for f in args.families.split(",") if f]:
        config = image_bench_config(family, args.steps, args.batch_size, args.seed, args.device)
        text = args.siren_values if family == "siren" and args.siren_values else args.values
        values = tuple(float(v) for v in text.split(",") if v)
        fresh = FreshConfig(values=values, seeds=args.seeds, crop=args.crop)
        config = replace(config, fresh_search=fresh)
        parameter, candidates = candidate_configs(config.field, values)
        for path in images:
            config = replace(config, data=path, downscale=args.downscale)
            image = TASK.prepare(config)
            mask = holdout_mask(image.height, image.width) if args.protocol == "holdout" else None
            # FreSh only sees what training sees
            known = image if mask is None else ImageData(image.pixels[::2, ::2], image.path, image.transfer, image.has_alpha)
            result = select(config, known, args.device)
            console.print(f"[bold]{family}[/] {path.name}: FreSh picks {result.best.label} in {result.seconds:.1f} s")
            grid = []
            for label, value, field in candidates:
                r, _ = fit_image(replace(config, field=field), mask)  # held-out pixels: psnr, train_psnr, all_psnr
                grid.append({"label": label, "value": value, **r})
                console.print(f"  {label}: {r['psnr']:.2f} dB in {r['seconds']:.1f} s")
            best = max(grid, key=lambda g: g["psnr"])
            pick = next(g for g in grid if g["value"] == result.best.value)
            distance = {s.value: s.distance for s in result.ranking}
            train_s = float(np.mean([g["seconds"] for g in grid]))
            rows.append({
                "family": family, "parameter": parameter.name, "image": path.name, "resolution": f"{image.width}x{image.height}",
                "fresh_pick": result.best.value, "fresh_psnr": pick["psnr"], "best_value": best["value"], "best_psnr": best["psnr"],
                "delta_db": pick["psnr"] - best["psnr"], "selection_s": result.seconds, "train_s": train_s,
                "selection_fraction": result.seconds / train_s, "grid_s": sum(g["seconds"] for g in grid),
                "spearman_w1_vs_psnr": spearman([-distance[g["value"]] for g in grid], [g["psnr"] for g in grid]),
                "fresh": result.to_dict(), "grid": grid,
            })
        fam = [r for r in rows if r["family"] == family]
        summary[family] = {k: float(np.mean([r[k] for r in fam])) for k in ("delta_db", "selection_fraction", "selection_s", "train_s", "spearman_w1_vs_psnr")}

    scored = "PSNR on held-out 75% of pixels" if args.protocol == "holdout" else "PSNR on all (trained) pixels"
    table = Table(title=f"FreSh vs grid search: {len(images)} images /{args.downscale}, {args.steps} steps, batch {args.batch_size}, {args.seeds} seeds, K={args.crop}; {scored}")
    for col in ("family", "image", "FreSh pick", "PSNR pick", "grid best", "PSNR best", "Δ dB", "select s", "train s", "select/train", "ρ(W1,PSNR)"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["family"], r["image"], f"{r['fresh_pick']:g}", f"{r['fresh_psnr']:.2f}", f"{r['best_value']:g}", f"{r['best_psnr']:.2f}",
                      f"{r['delta_db']:+.2f}", f"{r['selection_s']:.1f}", f"{r['train_s']:.1f}", f"{100 * r['selection_fraction']:.1f}%",
                      f"{r['spearman_w1_vs_psnr']:+.2f}")
    for fam, s in summary.items():
        table.add_row(f"[bold]{fam} mean", "", "", "", "", "", f"{s['delta_db']:+.2f}", f"{s['selection_s']:.1f}", f"{s['train_s']:.1f}",
                      f"{100 * s['selection_fraction']:.1f}%", f"{s['spearman_w1_vs_psnr']:+.2f}")
    console.print(table)
    device = machine(args.device)
    tag = "-".join(t for t in (args.tag, "holdout" if args.protocol == "holdout" else "") if t)
    out = ROOT / "scripts" / "results" / f"bench_fresh{('-' + tag) if tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": public_args(args), "device": device, "summary": summary, "runs": rows}, indent=1))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
