#!/usr/bin/env python
"""Shape-fitting benchmark: SDF methods × shapes → Chamfer, F-score, IoU, normal consistency, train time.

Shapes: the Stanford bunny mesh (../shared/data/meshes/bunny.ply), the bunny's vertices as a point cloud
without normals (``bunny-points``: implicit loss, normals estimated), and analytic shapes from
``data/synthetic.py`` (sphere, torus, box; meshed by marching cubes of their exact SDF at 192³, whose
error is far below the reconstructions'). Every fit is a ``fieldforge train sdf`` run
(``fieldforge.app.train.train``); scores come from its final evaluation (marching cubes at
``--resolution``, 100k surface samples per side; point clouds are scored against their input points,
whose sparsity alone costs ≈0.47% of the diagonal for the bunny).

Example (CPU, the README table):
    python scripts/bench_sdf.py --steps 300 --tag cpu
Writes a rich table to stdout and JSON to scripts/results/bench_sdf[-TAG].json.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see app/cli.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench_common import ROOT  # noqa: E402

from fieldforge.app.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from fieldforge.app.export_mesh import encode_mesh  # noqa: E402
from fieldforge.app.loader import load_run  # noqa: E402
from fieldforge.app.tasks.sdf import METHODS, sdf_train_config  # noqa: E402
from fieldforge.app.train import train  # noqa: E402
from fieldforge.data.synthetic import AnalyticShape  # noqa: E402
from fieldforge.fields.meshing import extract_mesh  # noqa: E402

BUNNY = ROOT.parent / "shared" / "data" / "meshes" / "bunny.ply"
SHAPES = ("bunny", "bunny-points", *AnalyticShape.KINDS)


def shape_file(name: str, folder: Path) -> Path:
    """The input file of a benchmark shape (analytic meshes and the bunny point cloud are generated)."""
    if name == "bunny":
        return BUNNY
    if name == "bunny-points":
        import open3d as o3d

        path = folder / "bunny-points.xyz"
        if not path.exists():
            np.savetxt(path, np.asarray(o3d.io.read_triangle_mesh(str(BUNNY)).vertices), fmt="%.7f")
        return path
    path = folder / f"{name}.ply"
    if not path.exists():
        shape = AnalyticShape(name)
        box = torch.tensor([[-0.8, -0.8, -0.8], [0.8, 0.8, 0.8]])
        mesh, _ = extract_mesh(lambda p: shape.sdf(p.double()).float(), box, 192, lipschitz=1.0)
        atomic_write_bytes(path, encode_mesh(mesh, "ply"))
    return path


def fit(method: str, shape: str, data: Path, args, out: Path) -> dict:
    base = sdf_train_config(method)
    config = replace(
        base,
        data=data,
        eval_resolution=args.resolution,
        trainer=replace(
            base.trainer, steps=args.steps, batch_size=args.batch_size, eval_every=0, checkpoint_every=0, log_every=10**9,
            progress=False, seed=args.seed, device=args.device, output_dir=out, name=f"{method}-{shape}",
        ),
    )  # fmt: skip
    t0 = time.perf_counter()
    run, m = train(config)
    total = time.perf_counter() - t0
    params = load_run(run.path).model.num_parameters()
    return {
        "method": method, "shape": shape, "target": config.target, "steps": args.steps,
        "chamfer_l1_rel": m.get("chamfer_l1_rel"), "chamfer_l1": m.get("chamfer_l1"), "chamfer_l2": m.get("chamfer_l2"),
        "f_score": m.get("f_score"), "normal_consistency": m.get("normal_consistency"), "iou": m.get("iou"),
        "watertight": bool(m.get("watertight", 0.0)), "train_seconds": m["train_seconds"], "data_seconds": m.get("data_seconds"),
        "total_seconds": total, "params": params,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated presets from: {','.join(METHODS)}")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated shapes from: {','.join(SHAPES)}")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per fit")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--resolution", type=int, default=128, help="marching-cubes resolution of the scored mesh")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a loaded CPU)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    shapes = [s for s in args.shapes.split(",") if s]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}")
    for s in shapes:
        if s not in SHAPES:
            parser.error(f"unknown shape {s!r}")
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for shape in shapes:
            data = shape_file(shape, folder)
            for method in methods:
                r = fit(method, shape, data, args, folder / "runs")
                rows.append(r)
                console.print(
                    f"{method:>6} {shape:<13} Chamfer {100 * r['chamfer_l1_rel']:.3f}% diag  F {r['f_score']:.3f}  "
                    f"NC {r['normal_consistency'] or float('nan'):.3f}  IoU {r['iou'] if r['iou'] is not None else float('nan'):.3f}  "
                    f"{r['train_seconds']:.0f} s"
                )
    table = Table(title=f"SDF fits: {args.steps} steps × {args.batch_size} points, mesh at {args.resolution}³ (Chamfer-L1 in % of the bbox diagonal)")
    table.add_column("method")
    for shape in shapes:
        table.add_column(f"{shape}\nChamfer / F / NC / IoU", justify="right")
    table.add_column("train s (mean)", justify="right")
    for method in methods:
        cells = []
        secs = []
        for shape in shapes:
            r = next(x for x in rows if x["method"] == method and x["shape"] == shape)
            iou = f"{r['iou']:.3f}" if r["iou"] is not None else "–"
            nc = f"{r['normal_consistency']:.3f}" if r["normal_consistency"] is not None else "–"
            cells.append(f"{100 * r['chamfer_l1_rel']:.3f} / {r['f_score']:.3f} / {nc} / {iou}")
            secs.append(r["train_seconds"])
        table.add_row(method, *cells, f"{np.mean(secs):.0f}")
    console.print(table)
    result = {
        "benchmark": "bench_sdf",
        "args": vars(args),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__, "threads": args.threads,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "rows": rows,
    }  # fmt: skip
    name = f"bench_sdf{'-' + args.tag if args.tag else ''}.json"
    path = ROOT / "scripts" / "results" / name
    atomic_write_text(path, json.dumps(result, indent=1))
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
