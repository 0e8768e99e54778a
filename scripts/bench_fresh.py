#!/usr/bin/env python
"""FreSh vs a full grid search: train every candidate value, compare with FreSh's pick made at initialization.

For each image and each family (ff: Fourier σ, siren: ω₀, pe: top octave), FreSh ranks the candidates from
untrained renders (several seeds); then every candidate is trained with the family's preset at equal steps.
Reported: PSNR of FreSh's pick minus the best grid PSNR, and FreSh's selection time as a fraction of one
training run. Example (CPU):
    python scripts/bench_fresh.py --families ff,siren --count 2 --downscale 8 --steps 300
Writes a rich table to stdout and JSON to scripts/results/bench_fresh[-TAG].json.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fieldforge.app.config import ImageTrainConfig, image_train_config  # noqa: E402
from fieldforge.app.fresh_image import select_image_field  # noqa: E402
from fieldforge.app.image_task import ImageTask  # noqa: E402
from fieldforge.app.runs import RunDir  # noqa: E402
from fieldforge.app.train import build_image_field  # noqa: E402
from fieldforge.app.trainer import Trainer, resolve_device  # noqa: E402
from fieldforge.data.images import load_image  # noqa: E402
from fieldforge.data.samplers import PixelSampler  # noqa: E402
from fieldforge.fields.fresh import FreshConfig, candidate_configs  # noqa: E402
from fieldforge.fields.metrics import psnr  # noqa: E402

DEFAULT_IMAGES = ROOT.parent / "shared" / "data" / "kodak"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")


class SubsetSampler(PixelSampler):
    """Draws training batches only from the pixels in ``train_mask`` ``(h, w)``; evaluation still sees every pixel."""

    def __init__(self, image: torch.Tensor, train_mask: torch.Tensor, batch_size: int, device, seed: int = 0) -> None:
        super().__init__(image, batch_size, device, seed)
        self.train_index = torch.nonzero(train_mask.reshape(-1)).reshape(-1)

    def sample(self):
        pick = torch.randint(0, self.train_index.shape[0], (self.batch_size,), generator=self.generator)
        index = self.train_index[pick]
        return self.coords_of(index).to(self.device), self.pixels[index].to(self.device)


def holdout_mask(height: int, width: int) -> torch.Tensor:
    """Tancik et al.'s split: train on every second pixel in both axes (25%), test on the other 75%."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[::2, ::2] = True
    return mask


def fit_config(config: ImageTrainConfig, target: torch.Tensor, device: str, train_mask: torch.Tensor | None = None) -> dict:
    """Train ``config`` on ``target`` ``(h, w, c)`` without writing checkpoints; PSNR/SSIM/time/params.

    With ``train_mask``, only those pixels are trained on; ``psnr`` is then over the held-out pixels and
    ``train_psnr`` over the training ones."""
    dev = resolve_device(device)
    field = build_image_field(config, target.shape[-1]).to(dev)
    bs, seed = config.trainer.batch_size, config.trainer.seed
    sampler = PixelSampler(target, bs, dev, seed=seed) if train_mask is None else SubsetSampler(target, train_mask, bs, dev, seed=seed)
    task = ImageTask(field, sampler, target, config.loss)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config.trainer, config.optim, task, RunDir(Path(tmp)), dev)
        trainer.save = lambda: None  # type: ignore[method-assign]
        t0 = time.perf_counter()
        metrics = trainer.train()
        seconds = time.perf_counter() - t0
    out = {"psnr": metrics["psnr"], "ssim": metrics["ssim"], "seconds": seconds, "params": field.num_parameters()}
    if train_mask is not None:
        render = task.last_render
        out["train_psnr"] = psnr(render[train_mask], target[train_mask])
        out["psnr"] = psnr(render[~train_mask], target[~train_mask])
        out["all_psnr"] = metrics["psnr"]
    return out


def bench_config(method: str, steps: int, batch_size: int, seed: int, device: str) -> ImageTrainConfig:
    base = image_train_config(method)
    return replace(base, trainer=replace(base.trainer, steps=steps, batch_size=batch_size, eval_every=0, checkpoint_every=0,
                                         log_every=10**9, progress=False, seed=seed, device=device))


def list_images(folder: Path, count: int) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def projection(family: str, image: Path, fresh: FreshConfig, steps: int, batch_size: int, probe_steps: int, device: str) -> dict:
    """FreSh's cost relative to a default-length training run at full resolution: selection is timed in full;
    the training run is timed for ``probe_steps`` steps and extrapolated to ``steps``."""
    config = replace(bench_config(family, probe_steps, batch_size, 0, device), fresh_search=fresh)
    target = load_image(image).encoded()
    _, result = select_image_field(config, target, resolve_device(device))
    dev = resolve_device(device)
    field = build_image_field(config, target.shape[-1]).to(dev)
    task = ImageTask(field, PixelSampler(target, batch_size, dev, seed=0), target, config.loss)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config.trainer, config.optim, task, RunDir(Path(tmp)), dev)
        trainer.task.train_step(0)  # warm-up
        t0 = time.perf_counter()
        for step in range(probe_steps):
            r = task.train_step(step)
            trainer.optimizer.zero_grad(set_to_none=True)
            r.loss.backward()
            trainer.optimizer.step()
            field.update((step + 1) / probe_steps, r.coords, r.per_sample_loss.detach() if r.per_sample_loss is not None else None)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        step_s = (time.perf_counter() - t0) / probe_steps
    train_s = step_s * steps
    return {"family": family, "image": image.name, "resolution": f"{target.shape[1]}x{target.shape[0]}", "candidates": len(result.ranking),
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
        out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": prows}, indent=1))
        console.print(f"wrote {out}")
        return
    rows, summary = [], {}
    for family in [f for f in args.families.split(",") if f]:
        config = bench_config(family, args.steps, args.batch_size, args.seed, args.device)
        text = args.siren_values if family == "siren" and args.siren_values else args.values
        values = tuple(float(v) for v in text.split(",") if v)
        fresh = FreshConfig(values=values, seeds=args.seeds, crop=args.crop)
        config = replace(config, fresh_search=fresh)
        parameter, candidates = candidate_configs(config.field, values)
        for path in images:
            target = load_image(path, downscale=args.downscale).encoded()
            mask = holdout_mask(*target.shape[:2]) if args.protocol == "holdout" else None
            known = target if mask is None else target[::2, ::2]  # FreSh only sees what training sees
            _, result = select_image_field(config, known, resolve_device(args.device))
            console.print(f"[bold]{family}[/] {path.name}: FreSh picks {result.best.label} in {result.seconds:.1f} s")
            grid = []
            for label, value, field in candidates:
                r = fit_config(replace(config, field=field), target, args.device, mask)
                grid.append({"label": label, "value": value, **r})
                console.print(f"  {label}: {r['psnr']:.2f} dB in {r['seconds']:.1f} s")
            best = max(grid, key=lambda g: g["psnr"])
            pick = next(g for g in grid if g["value"] == result.best.value)
            distance = {s.value: s.distance for s in result.ranking}
            train_s = float(np.mean([g["seconds"] for g in grid]))
            rows.append({
                "family": family, "parameter": parameter.name, "image": path.name, "resolution": f"{target.shape[1]}x{target.shape[0]}",
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
    dev = resolve_device(args.device)
    device = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, shared)"
    tag = "-".join(t for t in (args.tag, "holdout" if args.protocol == "holdout" else "") if t)
    out = ROOT / "scripts" / "results" / f"bench_fresh{('-' + tag) if tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "device": device, "summary": summary, "runs": rows}, indent=1))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
