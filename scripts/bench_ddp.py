"""Data-parallel scaling: throughput and quality of ``fieldforge train`` under torchrun with 1, 2, 4 processes.

Each row is a real ``python -m torch.distributed.run --standalone --nproc_per_node N fieldforge train <task> …``
(gloo on CPU, NCCL with one GPU per process on CUDA) with the same per-process batch and the same number of
steps, so N processes see N× the samples per step. Reported from the run's own ``metrics.jsonl`` (rank 0):
steps/s over the training loop (no periodic evaluation or checkpoint; process start-up and data loading not
counted), samples/s = steps/s × N × batch, the final evaluation's PSNR, and the ratios to the 1-process row.

On CPU each process gets ``--threads`` / N threads (at least one; 4 processes on 2 cores oversubscribe).
Writes a rich table and scripts/results/bench_ddp[-TAG].json (machine, cores, load, options; no local paths).

    .venv/bin/python scripts/bench_ddp.py --tasks image nerf --procs 1 2 4
"""

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, cpu_name, public_args

SHARED = ROOT.parent / "shared" / "data"
console = Console(width=140)

TASK_ARGS = {
    # kodim01 at 1/4 (192×128), the CPU default (ngp, 2^14 tables), 8,192 pixels per process per step
    "image": lambda a: ["--data", str(a.image), "--downscale", "4", "--batch-size", str(a.image_batch), "--steps", str(a.image_steps)],
    # lego_half at 1/8 (100×100), ngp with a 64³ grid, 1,024 rays per process per step
    "nerf": lambda a: ["--data", str(a.capture), "--downscale", "8", "--batch-size", str(a.nerf_batch), "--steps", str(a.nerf_steps),
                       "--render.grid-resolution", "64", "--render.target-samples", str(a.nerf_batch * 32), "--eval-views", "2"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_one(task: str, procs: int, args: argparse.Namespace, out: Path) -> dict:
    """One torchrun launch; returns its row (from rank 0's metrics.jsonl)."""
    threads = max(1, args.threads // procs) if args.device == "cpu" else 1
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}
    fieldforge = shutil.which("fieldforge", path=str(Path(sys.executable).parent)) or "fieldforge"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
           "--master_port", str(free_port()), fieldforge, "train", task, *TASK_ARGS[task](args),
           "--output-dir", str(out), "--name", f"{task}-{procs}", "--eval-every", "0", "--checkpoint-every", "0",
           "--progress", "False", "--device", args.device, "--seed", str(args.seed)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{task} × {procs} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return row_of_run(task, procs, threads, out / f"{task}-{procs}", args, wall)


def row_of_run(task: str, procs: int, threads: int, run: Path, args: argparse.Namespace, wall: float | None) -> dict:
    """A table row from a finished run's ``metrics.jsonl`` (rank 0's records)."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last_train = [r for r in records if r["kind"] == "train"][-1]
    final = [r for r in records if r["kind"] == "eval" and r.get("final")][-1]
    # NeRF adapts its rays per step to --render.target-samples: its batch is rank 0's last ray count
    batch = int(last_train.get("rays", args.image_batch if task == "image" else args.nerf_batch))
    return {
        "task": task, "processes": procs, "threads_per_process": threads, "steps": last_train["step"],
        "batch_per_process": batch, "steps_per_s": last_train["steps_per_s"],
        "samples_per_s": last_train["steps_per_s"] * procs * batch, "psnr": final["psnr"], "launch_wall_s": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["image", "nerf"], choices=sorted(TASK_ARGS))
    p.add_argument("--procs", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads shared by the processes")
    p.add_argument("--image", type=Path, default=SHARED / "kodak" / "kodim01.png")
    p.add_argument("--image-steps", type=int, default=300)
    p.add_argument("--image-batch", type=int, default=8192)
    p.add_argument("--capture", type=Path, default=SHARED / "lego_half")
    p.add_argument("--nerf-steps", type=int, default=150)
    p.add_argument("--nerf-batch", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="", help="recorded in the JSON (e.g. what else ran on the machine)")
    p.add_argument("--tag", default="")
    args = p.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            for n in args.procs:
                console.print(f"{task}: {n} process{'es' if n > 1 else ''} …")
                rows.append(run_one(task, n, args, Path(tmp)))
                write_result(args, rows, complete=False)  # a run cut short keeps the rows measured so far
    write_result(args, rows, complete=True)


def write_result(args: argparse.Namespace, rows: list[dict], complete: bool) -> None:
    """Ratios to the fewest-process row of each task, the table (when complete) and the JSON file."""
    for row in rows:
        base = min((r for r in rows if r["task"] == row["task"]), key=lambda r: r["processes"])
        row["steps_per_s_ratio"] = row["steps_per_s"] / base["steps_per_s"]
        row["samples_per_s_ratio"] = row["samples_per_s"] / base["samples_per_s"]
        row["psnr_delta_db"] = row["psnr"] - base["psnr"]

    table = Table(title=f"Data-parallel scaling ({args.device}, same steps and per-process batch)")
    for col in ("task", "procs", "thr/proc", "steps", "batch/proc", "steps/s", "samples/s", "× samples/s", "PSNR dB", "Δ PSNR"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["task"], str(r["processes"]), str(r["threads_per_process"]), str(r["steps"]), str(r["batch_per_process"]),
                      f"{r['steps_per_s']:.2f}", f"{r['samples_per_s']:,.0f}", f"{r['samples_per_s_ratio']:.2f}",
                      f"{r['psnr']:.2f}", f"{r['psnr_delta_db']:+.2f}")
    if complete:
        console.print(table)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if args.device == "cuda" else []
    result = {
        "args": public_args(args),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "load_average_at_end": load, "gpus": gpus,
                    "python": platform.python_version(), "torch": torch.__version__,
                    "backend": "nccl" if args.device == "cuda" else "gloo", "note": args.note},
        "complete": complete,
        "rows": rows,
    }
    out = ROOT / "scripts" / "results" / f"bench_ddp{('-' + args.tag) if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=1))
    if complete:
        console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
