#!/usr/bin/env python
"""Radiance-field benchmark: methods × scenes → test PSNR/SSIM at fixed steps and at fixed wall time,
training rays/s and samples/s, render rays/s, peak memory.

Training time is wall time; ``cpu s`` is the process CPU time over all threads (on a contended machine
it bounds what an idle one would need). Scenes: ``lego_half`` (../shared/data/lego_half, Blender, every 8th view held out, white background) and
``synthetic`` (the procedural capture, rendered into a temporary folder). Training time excludes
evaluation. Each run stops at ``--steps`` or ``--budget`` seconds, whichever comes first; evaluations
happen at the steps in ``--eval-at`` and at the end.

Examples:
    python scripts/bench_nerf.py --scenes synthetic --methods ngp --steps 400 --budget 60 --threads 2
    python scripts/bench_nerf.py --scenes lego_half --methods ngp --steps 20000 --budget 1800 --eval-views 13
    python scripts/bench_nerf.py --scenes lego_half --methods ngp,nerf --device cuda --steps 5000 --budget 300
Writes a rich table and JSON to scripts/results/bench_nerf[-TAG].json.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared CPUs: spinning OpenMP workers starve each other

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fieldforge.app.config_nerf import NERF_METHODS, nerf_train_config  # noqa: E402
from fieldforge.app.nerf_task import NerfTask, build_model  # noqa: E402
from fieldforge.app.trainer import lr_lambda, resolve_device  # noqa: E402
from fieldforge.data.captures import CaptureOptions, load_capture  # noqa: E402
from fieldforge.fields.metrics import psnr, ssim  # noqa: E402

LEGO = Path(os.environ.get("FIELDFORGE_LEGO", ROOT.parent / "shared" / "data" / "lego_half"))


def scene_config(method: str, scene: str, data: Path, args) -> "object":
    """Per-scene sampling settings (the methods' fields and optimizers come from the presets)."""
    cfg = nerf_train_config(method)
    render = cfg.render
    if scene == "synthetic":
        render = replace(render, grid_resolution=48, steps_per_ray=256, grid_warmup_steps=64, target_samples=1 << 14, max_rays=4096)
        batch = 1024
    else:
        render = replace(render, grid_resolution=args.grid_resolution, steps_per_ray=args.steps_per_ray, grid_warmup_steps=args.grid_warmup,
                         grid_update_fraction=args.grid_fraction, target_samples=args.target_samples, max_rays=1 << 16)
        batch = 1024
    field = cfg.field
    if method == "ngp" and scene != "synthetic":
        enc = field.encoding
        field = replace(field, encoding=replace(
            enc, log2_table_size=args.log2_table_size or enc.log2_table_size, n_levels=args.n_levels or enc.n_levels,
            max_resolution=args.max_resolution or enc.max_resolution))
    if method == "ngp" and scene == "synthetic":
        field = replace(field, encoding=replace(field.encoding, n_levels=12, log2_table_size=15, max_resolution=256))
    return replace(
        cfg, data=data, field=field, render=render, capture=CaptureOptions(holdout_every=8),
        trainer=replace(cfg.trainer, steps=args.steps, batch_size=batch, seed=args.seed, device=args.device, progress=False),
    )


def evaluate(task: NerfTask, views: list[int]) -> dict:
    task.model.eval()
    t0 = time.perf_counter()
    ps, ss, pix = [], [], 0
    with torch.no_grad():
        for i in views:
            rgb, _, _ = task.render_view(i)
            target = task.capture.composited(i)
            ps.append(psnr(rgb, target))
            ss.append(ssim(rgb, target))
            pix += rgb.shape[0] * rgb.shape[1]
    task.model.train()
    dt = time.perf_counter() - t0
    return {"psnr": sum(ps) / len(ps), "ssim": sum(ss) / len(ss), "render_rays_per_s": pix / dt, "eval_seconds": dt}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run(method: str, scene: str, data: Path, args, console: Console) -> dict:
    cfg = scene_config(method, scene, data, args)
    device = resolve_device(args.device)
    capture = load_capture(cfg.data, cfg.capture)
    views = capture.split["test"][: args.eval_views] if args.eval_views > 0 else capture.split["test"]
    model = build_model(cfg, capture.scene_box).to(device)
    task = NerfTask(model, capture, cfg, device)
    opt = torch.optim.Adam(task.param_groups(cfg.optim.lr), lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.optim, cfg.trainer.steps))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (device.type == "cuda" and args.amp) else None
    eval_at = sorted({int(s) for s in args.eval_at.split(",") if s}) if args.eval_at else []
    curve, rays, samples, train_s, cpu_s, step = [], 0, 0, 0.0, 0.0, 0
    console.print(f"[bold]{method} × {scene}[/]: {capture.describe()}, {model.field.num_parameters():,} parameters, eval on {len(views)} test views")
    while step < cfg.trainer.steps and train_s < args.budget:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        if autocast is not None:
            with autocast:
                r = task.train_step(step)
        else:
            r = task.train_step(step)
        opt.zero_grad(set_to_none=True)
        r.loss.backward()
        opt.step()
        sched.step()
        step += 1
        model.update(step / cfg.trainer.steps, r.coords, r.per_sample_loss)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0
        rays += int(r.log["rays"])
        samples += int(r.log["rays"] * r.log["samples_per_ray"])
        if not math.isfinite(float(r.loss.detach())):
            raise FloatingPointError(f"{method} × {scene}: loss became {float(r.loss.detach())} at step {step}")
        if step in eval_at:
            e = evaluate(task, views)
            curve.append({"step": step, "seconds": train_s, "cpu_seconds": cpu_s, "psnr": e["psnr"], "ssim": e["ssim"]})
            console.print(f"  step {step:6d}  {train_s:7.1f} s  test PSNR {e['psnr']:.2f}  SSIM {e['ssim']:.4f}  train rays/s {rays / train_s:,.0f}")
    final = evaluate(task, views)
    curve.append({"step": step, "seconds": train_s, "cpu_seconds": cpu_s, "psnr": final["psnr"], "ssim": final["ssim"]})
    console.print(f"  final {step:6d}  {train_s:7.1f} s  test PSNR {final['psnr']:.2f}  SSIM {final['ssim']:.4f}")
    return {
        "method": method, "scene": scene, "steps": step, "train_seconds": train_s,
        "train_cpu_seconds": cpu_s,  # process CPU time (all threads): what an idle machine would need, roughly
        "stopped_by": "budget" if train_s >= args.budget else "steps",
        "psnr": final["psnr"], "ssim": final["ssim"], "eval_views": len(views),
        "train_rays_per_s": rays / train_s, "train_samples_per_s": samples / train_s,
        "render_rays_per_s": final["render_rays_per_s"], "params": model.field.num_parameters(),
        "peak_memory_mb": peak_memory_mb(device), "curve": curve,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="ngp", help=f"comma-separated presets ({', '.join(NERF_METHODS)})")
    p.add_argument("--scenes", default="synthetic,lego_half", help="comma-separated: synthetic, lego_half")
    p.add_argument("--steps", type=int, default=2000, help="training steps (the lr schedule spans these)")
    p.add_argument("--budget", type=float, default=600.0, help="wall-time budget of training in seconds (evaluation excluded)")
    p.add_argument("--eval-at", default="", help="comma-separated steps at which to evaluate (besides the end)")
    p.add_argument("--eval-views", type=int, default=0, help="evaluate on the first N test views (0: all)")
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
    p.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    console = Console()
    results = []
    for scene in [s for s in args.scenes.split(",") if s]:
        with tempfile.TemporaryDirectory() as tmp:
            if scene == "synthetic":
                from fieldforge.app.commands_nerf import DEMO_CAPTURE, write_synthetic_capture

                data = write_synthetic_capture(Path(tmp) / "synthetic", **DEMO_CAPTURE).parent  # type: ignore[arg-type]
            elif scene == "lego_half":
                if not LEGO.is_dir():
                    console.print(f"[yellow]skipping lego_half: {LEGO} not found")
                    continue
                data = LEGO
            else:
                raise SystemExit(f"unknown scene {scene!r}")
            for method in [m for m in args.methods.split(",") if m]:
                if method not in NERF_METHODS:
                    raise SystemExit(f"unknown method {method!r}; choose from {', '.join(NERF_METHODS)}")
                results.append(run(method, scene, data, args, console))
    table = Table(title=f"NeRF benchmark ({results[0]['eval_views'] if results else 0} test views; training time excludes evaluation)")
    for col in ("method", "scene", "steps", "train s", "cpu s", "test PSNR", "SSIM", "train rays/s", "samples/s", "render rays/s", "peak MB"):
        table.add_column(col, justify="right" if col not in ("method", "scene") else "left")
    for r in results:
        table.add_row(r["method"], r["scene"], str(r["steps"]), f"{r['train_seconds']:.0f}", f"{r['train_cpu_seconds']:.0f}", f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                      f"{r['train_rays_per_s']:,.0f}", f"{r['train_samples_per_s']:,.0f}", f"{r['render_rays_per_s']:,.0f}", f"{r['peak_memory_mb']:,.0f}")
    console.print(table)
    device = resolve_device(args.device)
    env = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(), "argv": sys.argv[1:],
    }
    out = ROOT / "scripts" / "results" / f"bench_nerf{'-' + args.tag if args.tag else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"env": env, "results": results}, indent=1))
    tmp.replace(out)
    console.print(f"→ {out}")


if __name__ == "__main__":
    main()
