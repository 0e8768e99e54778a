"""Throughput of the fused kernels against torch (eager fp32/fp16/bf16, torch.compile) and tiny-cuda-nn.

MLP: samples/s of the forward pass (inference, no activations stored) and of forward+backward (weights and
input gradients), for hidden widths 16–128, depths (hidden layers) 2–8 and batches 2^14–2^21; input width
32 (a 16-level × 2-feature hash grid), output width 16. Hash grid: samples/s of encode and encode+backward.
Every implementation runs the same shapes in one process; timings are medians of CUDA-event timings
(``triton.testing.do_bench``) after warm-up. Writes a rich table and JSON.

    python scripts/bench_kernels.py                      # full sweep (CUDA)
    python scripts/bench_kernels.py --tune               # launch configs and weight-gradient strategies first
    python scripts/bench_kernels.py --quick              # a few shapes (also runs on CPU: torch only)

Without CUDA only --quick runs (torch eager on a few small shapes); the full sweep and --tune exit with a message.
"""

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench_common import cpu_name

from fieldforge.fields.kernels import has_tcnn, has_triton

console = Console()
IN_DIM, OUT_DIM = 32, 16


def bench_ms(fn, warmup_ms: float, rep_ms: float) -> float:
    """Median milliseconds per call."""
    if torch.cuda.is_available():
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))
    fn()
    times = []
    t_end = time.perf_counter() + rep_ms / 1000
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def make_mlp(width: int, depth: int, dev: torch.device, backend: str = "torch"):
    from fieldforge.fields.networks import MLPConfig

    torch.manual_seed(0)
    return MLPConfig(width=width, n_hidden_layers=depth, backend=backend).setup(IN_DIM, OUT_DIM, 3).to(dev)


def mlp_runners(width: int, depth: int, dev: torch.device, impls: list[str], compiled_cache: dict):
    """name → (model callable taking x, input dtype)."""
    out = {}
    base = make_mlp(width, depth, dev)
    for impl in impls:
        if impl == "eager-fp32":
            out[impl] = (base, torch.float32)
        elif impl == "eager-fp16":
            out[impl] = (make_mlp(width, depth, dev).half(), torch.float16)
        elif impl == "eager-bf16":
            out[impl] = (make_mlp(width, depth, dev).bfloat16(), torch.bfloat16)
        elif impl == "compile-fp16":
            key = (width, depth)
            if key not in compiled_cache:
                compiled_cache[key] = torch.compile(make_mlp(width, depth, dev).half(), dynamic=True)
            out[impl] = (compiled_cache[key], torch.float16)
        elif impl in ("triton-fp16", "triton-bf16"):
            from fieldforge.fields.kernels.fused_mlp import fused_mlp

            dt = torch.float16 if impl.endswith("fp16") else torch.bfloat16
            m = make_mlp(width, depth, dev)
            ws = [layer.weight for layer in m.layers]
            bs = [layer.bias for layer in m.layers]
            out[impl] = ((lambda x, ws=ws, bs=bs, dt=dt: fused_mlp(x, ws, bs, "none", dtype=dt)), dt)
        elif impl == "tcnn-fp16":
            from fieldforge.fields.kernels.tcnn_backend import TcnnMLP

            m = make_mlp(width, depth, dev)
            runner = TcnnMLP(IN_DIM, OUT_DIM, width, depth, "relu", "none")
            ws = [layer.weight for layer in m.layers]
            out[impl] = ((lambda x, ws=ws, r=runner: r(x, ws)), torch.float32)
    return out


def run_mlp(args, dev: torch.device) -> list[dict]:
    impls = ["eager-fp32", "eager-fp16", "eager-bf16"]
    if dev.type == "cuda":
        impls += ["compile-fp16"] if args.compile else []
        impls += (["triton-fp16"] + (["triton-bf16"] if args.triton_bf16 else [])) if has_triton() else []
        impls += ["tcnn-fp16"] if has_tcnn() else []
    rows = []
    compiled: dict = {}
    for width in args.widths:
        for depth in args.depths:
            runners = mlp_runners(width, depth, dev, impls, compiled)
            for batch in args.batches:
                x32 = torch.rand(batch, IN_DIM, device=dev)
                gy = torch.randn(batch, OUT_DIM, device=dev)
                for name, (model, dt) in runners.items():
                    if name == "compile-fp16" and (width, depth) not in args.compile_shapes:
                        continue
                    x = x32.to(dt)
                    xg = x.clone().requires_grad_(True)
                    g = gy.to(torch.float16 if "tcnn" in name else dt)

                    def fwd(model=model, x=x):
                        with torch.no_grad():
                            model(x)

                    def fwd_bwd(model=model, xg=xg, g=g):
                        model(xg).backward(g)

                    try:
                        t_f = bench_ms(fwd, args.warmup, args.rep)
                        t_b = bench_ms(fwd_bwd, args.warmup, args.rep)
                    except torch.OutOfMemoryError:
                        torch.cuda.empty_cache()
                        continue
                    rows.append({"suite": "mlp", "impl": name, "width": width, "depth": depth, "batch": batch,
                                 "fwd_ms": t_f, "fwd_bwd_ms": t_b,
                                 "fwd_samples_per_s": batch / t_f * 1e3, "train_samples_per_s": batch / t_b * 1e3})  # fmt: skip
            del runners
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            console.print(f"mlp width {width} depth {depth} done")
    return rows


def tune(args, dev: torch.device) -> dict:
    """Launch configs (BLOCK_M, warps) and weight-gradient strategies at the largest batch, depth 5."""
    from fieldforge.fields.kernels import fused_mlp as fm

    result: dict = {"fwd": {}, "bwd": {}}
    batch = max(args.batches)
    depth = 5
    for width in args.widths:
        m = make_mlp(width, depth, dev)
        ws = [layer.weight for layer in m.layers]
        bs = [layer.bias for layer in m.layers]
        x = torch.rand(batch, IN_DIM, device=dev, dtype=torch.float16)
        xg = x.clone().requires_grad_(True)
        gy = torch.randn(batch, OUT_DIM, device=dev, dtype=torch.float16)
        best = None
        for bm, warps, stages in ((64, 4, 1), (128, 4, 1), (128, 8, 1), (128, 8, 3), (256, 8, 1)):
            fm.FWD_CONFIG[width] = (bm, warps, stages)
            with torch.no_grad():
                t = bench_ms(lambda: fm.fused_mlp(x, ws, bs, dtype=torch.float16), args.warmup, args.rep)
            key = f"w{width}-bm{bm}-nw{warps}-ns{stages}"
            result["fwd"][key] = t
            k = fm.LAST_FWD_KERNEL
            console.print(f"fwd {key}: {t:.3f} ms  regs {getattr(k, 'n_regs', None)} spills {getattr(k, 'n_spills', None)}")
            if best is None or t < best[0]:
                best = (t, bm, warps, stages)
        fm.FWD_CONFIG[width] = best[1:]

        def time_bwd(strategy: str, slots: int, config: tuple) -> float:
            fm.BWD_CONFIG[width] = config
            fm.ATOMIC_SLOTS[width] = max(1, slots)

            def step():
                y = fm.fused_mlp(xg, ws, bs, dtype=torch.float16, wgrad=strategy)
                y.backward(gy)

            t = bench_ms(step, args.warmup, args.rep)
            key = f"w{width}-{strategy}{slots if strategy == 'atomic' else ''}-bm{config[0]}-nw{config[1]}-ns{config[2]}"
            result["bwd"][key] = t
            console.print(f"fwd+bwd {key}: {t:.3f} ms")
            return t

        bbest = None
        for config in ((64, 4, 1), (64, 4, 2), (128, 4, 1), (128, 8, 1), (128, 8, 2)):
            for strategy, slots in (("atomic", 32), ("splitk", 0)):
                t = time_bwd(strategy, slots, config)
                if bbest is None or t < bbest[0]:
                    bbest = (t, strategy, slots, config)
        for slots in (1, 8, 132):
            t = time_bwd("atomic", slots, bbest[3])
            if t < bbest[0]:
                bbest = (t, "atomic", slots, bbest[3])
        fm.WGRAD_STRATEGY[width], fm.ATOMIC_SLOTS[width] = bbest[1], max(1, bbest[2])
        fm.BWD_CONFIG[width] = bbest[3]
        result[f"best_w{width}"] = {"fwd": best, "fwd_bwd": bbest}
        console.print(f"[bold]width {width}: best fwd {best}, best fwd+bwd {bbest}")
    return result


def run_hashgrid(args, dev: torch.device) -> list[dict]:
    try:
        from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig
    except ImportError:
        console.print("hash grid encoding not available")
        return []
    rows = []
    impls = ["torch"] + (["triton"] if has_triton() and dev.type == "cuda" else [])
    for d, t in ((3, 19), (2, 19), (3, 14)):
        for batch in args.hg_batches:
            x = torch.rand(batch, d, device=dev)
            enc = HashGridEncodingConfig(log2_table_size=t).setup(d).to(dev)
            gy = torch.randn(batch, enc.out_dim, device=dev)
            for impl in impls:
                if impl == "triton":
                    from fieldforge.fields.kernels.hashgrid_triton import hash_grid_encode_triton

                    run = lambda x, enc=enc: hash_grid_encode_triton(x, enc.table, enc.layout)  # noqa: E731
                else:
                    run = enc

                def fwd(run=run, x=x):
                    with torch.no_grad():
                        run(x)

                def fwd_bwd(run=run, x=x, gy=gy):
                    run(x).backward(gy)

                try:
                    t_f = bench_ms(fwd, args.warmup, args.rep)
                    t_b = bench_ms(fwd_bwd, args.warmup, args.rep)
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    continue
                rows.append({"suite": "hashgrid", "impl": impl, "in_dim": d, "log2_table_size": t, "batch": batch,
                             "fwd_ms": t_f, "fwd_bwd_ms": t_b,
                             "fwd_samples_per_s": batch / t_f * 1e3, "train_samples_per_s": batch / t_b * 1e3})  # fmt: skip
        console.print(f"hash grid d={d} T={t} done")
    return rows


TILE_DIMS = [63, 32, 32, 33]
"""KiloNeRF's position bank per tile: 10-octave PE of xyz (63) → 2 × 32 ReLU → density + 32-d feature."""


def run_tiles(args, dev: torch.device) -> list[dict]:
    """KiloNeRF tile bank (Lego's 9×16×10 = 1440 tiles, points spread uniformly): the sorted/padded bmm
    reference, the Triton grouped kernels (CUDA) and, for scale, one dense MLP of the same layer sizes and
    the ``nerf`` preset's 8×256 position MLP (what a tile bank replaces)."""
    from fieldforge.fields.kernels.tiles_reference import tile_mlp_batched

    n_tiles = 1440
    g = torch.Generator().manual_seed(0)
    ws = [(torch.randn(n_tiles, i, o, generator=g) * (2 / i) ** 0.5).to(dev).requires_grad_(True) for i, o in zip(TILE_DIMS[:-1], TILE_DIMS[1:])]
    bs = [torch.zeros(n_tiles, o, device=dev, requires_grad=True) for o in TILE_DIMS[1:]]
    impls: dict[str, object] = {"torch": tile_mlp_batched}
    if has_triton() and dev.type == "cuda":
        from fieldforge.fields.kernels.tiles_triton import tile_mlp_triton

        impls["triton"] = tile_mlp_triton

    def dense(x, ids, ws, bs):
        h = x
        for l, (w, b) in enumerate(zip(ws, bs)):
            h = torch.addmm(b[0], h, w[0])
            h = torch.relu(h) if l < len(ws) - 1 else h
        return h

    impls["dense MLP"] = dense
    from fieldforge.fields.networks import MLPConfig

    torch.manual_seed(0)
    nerf_mlp = MLPConfig(width=256, n_hidden_layers=8, skips=(4,), backend="torch").setup(TILE_DIMS[0], 257, 3).to(dev)
    impls["NeRF 8×256 MLP"] = lambda x, ids, ws, bs: nerf_mlp(x)[:, : TILE_DIMS[-1]]  # the nerf preset's position MLP
    rows = []
    for batch in args.tile_batches:
        x = torch.randn(batch, TILE_DIMS[0], generator=g).to(dev)
        ids = torch.randint(0, n_tiles, (batch,), generator=g).to(dev)
        gy = torch.randn(batch, TILE_DIMS[-1], generator=g).to(dev)
        for name, fn in impls.items():
            def fwd(fn=fn, x=x, ids=ids):
                with torch.no_grad():
                    fn(x, ids, ws, bs)

            def fwd_bwd(fn=fn, x=x, ids=ids, gy=gy):
                fn(x, ids, ws, bs).backward(gy)

            t_f = bench_ms(fwd, args.warmup, args.rep)
            t_b = bench_ms(fwd_bwd, args.warmup, args.rep)
            rows.append({"suite": "tiles", "impl": name, "n_tiles": n_tiles, "dims": TILE_DIMS, "batch": batch, "fwd_ms": t_f,
                         "fwd_bwd_ms": t_b, "fwd_samples_per_s": batch / t_f * 1e3, "train_samples_per_s": batch / t_b * 1e3})  # fmt: skip
        console.print(f"tiles batch 2^{int(math.log2(batch))} done")
    return rows


def print_tables(rows: list[dict]) -> None:
    mlp = [r for r in rows if r["suite"] == "mlp"]
    if mlp:
        impls = list(dict.fromkeys(r["impl"] for r in mlp))
        for metric, title in (("fwd_samples_per_s", "MLP forward (samples/s)"), ("train_samples_per_s", "MLP forward+backward (samples/s)")):
            table = Table(title=title)
            for col in ["width", "depth", "batch", *impls]:
                table.add_column(col, justify="right")
            keys = list(dict.fromkeys((r["width"], r["depth"], r["batch"]) for r in mlp))
            for key in keys:
                cells = {r["impl"]: r[metric] for r in mlp if (r["width"], r["depth"], r["batch"]) == key}
                table.add_row(str(key[0]), str(key[1]), f"2^{int(math.log2(key[2]))}", *[f"{cells[i]:.3g}" if i in cells else "—" for i in impls])
            console.print(table)
    hg = [r for r in rows if r["suite"] == "hashgrid"]
    if hg:
        table = Table(title="hash grid (16 levels × 2 features), samples/s")
        for col in ["d", "T", "batch", "impl", "encode", "encode+backward"]:
            table.add_column(col, justify="right")
        for r in hg:
            table.add_row(str(r["in_dim"]), str(r["log2_table_size"]), f"2^{int(math.log2(r['batch']))}", r["impl"],
                          f"{r['fwd_samples_per_s']:.3g}", f"{r['train_samples_per_s']:.3g}")  # fmt: skip
        console.print(table)
    tiles = [r for r in rows if r["suite"] == "tiles"]
    if tiles:
        table = Table(title=f"KiloNeRF tile bank ({tiles[0]['n_tiles']} tiles of {'→'.join(map(str, tiles[0]['dims']))}), samples/s")
        for col in ["batch", "impl", "forward", "forward+backward"]:
            table.add_column(col, justify="right")
        for r in tiles:
            table.add_row(f"2^{int(math.log2(r['batch']))}", r["impl"], f"{r['fwd_samples_per_s']:.3g}", f"{r['train_samples_per_s']:.3g}")
        console.print(table)


def public_command(argv: list[str]) -> str:
    """The command line as run, with the script and the --out file named without their folders (a result file
    names no local path)."""
    words = ["scripts/bench_kernels.py"]
    for i, word in enumerate(argv[1:], 1):
        if argv[i - 1] == "--out":
            word = Path(word).name
        elif word.startswith("--out="):
            word = "--out=" + Path(word[len("--out="):]).name
        words.append(word)
    return " ".join(words)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=["mlp", "hashgrid", "tiles", "all"], default="all")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--depths", type=int, nargs="+", default=[2, 5, 8], help="hidden layers")
    p.add_argument("--batches", type=int, nargs="+", default=[2**14, 2**16, 2**18, 2**21])
    p.add_argument("--hg-batches", type=int, nargs="+", default=[2**16, 2**18, 2**21])
    p.add_argument("--tile-batches", type=int, nargs="+", default=[2**16, 2**18, 2**20], help="KiloNeRF tile bank batches")
    p.add_argument("--triton-bf16", action="store_true", help="also time the Triton kernels in bf16")
    p.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    p.add_argument("--compile-shapes", default="64x5,128x5", help="width x depth pairs timed with torch.compile (compiling is slow)")
    p.add_argument("--tune", action="store_true", help="sweep launch configs and weight-gradient strategies first")
    p.add_argument("--quick", action="store_true", help="a few small shapes")
    p.add_argument("--warmup", type=float, default=10.0, help="ms")
    p.add_argument("--rep", type=float, default=40.0, help="ms")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default scripts/results/bench_kernels_<gpu>.json)")
    args = p.parse_args()
    args.compile_shapes = {tuple(int(v) for v in s.split("x")) for s in args.compile_shapes.split(",") if s}
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type != "cuda" and not args.quick:
        p.exit(2, "bench_kernels.py: CUDA is not available. The full sweep times GPU kernels (Triton, tiny-cuda-nn, torch.compile) "
                  "at batches up to 2^21; on a CPU run it with --quick (torch eager on a few small shapes).\n")
    if args.tune and not (dev.type == "cuda" and has_triton()):
        console.print("[yellow]--tune needs CUDA and Triton: skipped")
    if args.quick:
        args.widths, args.depths, args.batches, args.hg_batches = [16, 64], [2], [2**12, 2**14], [2**14]
        args.tile_batches = [2**14, 2**16]
    gpu = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU ({cpu_name()}, {torch.get_num_threads()} threads)"
    tag = gpu.lower().replace("nvidia", "").strip().split()[0] if dev.type == "cuda" else "cpu"
    out = args.out or Path(__file__).parent / "results" / f"bench_kernels_{tag}.json"
    meta = {
        "device": gpu, "torch": torch.__version__, "python": platform.python_version(),
        "triton": __import__("triton").__version__ if has_triton() else None, "tcnn_installed": has_tcnn(),
        "command": public_command(sys.argv), "in_dim": IN_DIM, "out_dim": OUT_DIM,
        "interpret": os.environ.get("TRITON_INTERPRET", "0"),
    }  # fmt: skip
    console.print(meta)
    tuning = tune(args, dev) if (args.tune and dev.type == "cuda" and has_triton()) else None
    rows: list[dict] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    for suite, fn in (("mlp", run_mlp), ("hashgrid", run_hashgrid), ("tiles", run_tiles)):
        if args.suite not in (suite, "all"):
            continue
        try:
            rows += fn(args, dev)
        except Exception as e:  # keep what was measured: one suite failing must not lose the others
            console.print(f"[red]suite {suite} failed: {e!r}")
            meta[f"{suite}_error"] = repr(e)
        out.write_text(json.dumps({"meta": meta, "tuning": tuning, "rows": rows}, indent=1, default=str))
    if dev.type == "cuda" and has_triton():
        from fieldforge.fields.kernels import fused_mlp as fm

        meta["fused_config"] = {"fwd": fm.FWD_CONFIG, "bwd": fm.BWD_CONFIG, "wgrad": fm.WGRAD_STRATEGY, "slots": fm.ATOMIC_SLOTS}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "tuning": tuning, "rows": rows}, indent=1, default=str))
    print_tables(rows)
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
