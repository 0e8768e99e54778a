#!/usr/bin/env python
"""Shape-fitting benchmark: SDF methods × shapes → Chamfer, F-score, IoU, normal consistency, train time.

Shapes: the Stanford bunny mesh (../shared/data/meshes/bunny.ply), the bunny's vertices as a point cloud
without normals (``bunny-points``: implicit loss, normals estimated), and analytic shapes from
``data/synthetic.py`` (sphere, torus, box; meshed by marching cubes of their exact SDF at 192³, whose
error is far below the reconstructions'). Every fit is a ``fieldforge train sdf`` run
(``fieldforge.app.train.train``); scores come from its final evaluation (marching cubes at
``--resolution``, 100k surface samples per side; point clouds are scored against their input points,
whose sparsity alone costs ≈0.47% of the diagonal for the bunny).

Scans (``--suite scans``): point clouds sampled from the bunny, the shared tree mesh and the analytic torus
and box (clean and noisy 25k points, σ = 0.25% / 0.5% of the diagonal, sparse 3k; normals given or not),
each reconstructed by ``fieldforge train sdf`` with the device defaults and by open3d's screened Poisson in
the same run; both meshes scored against the true surface with exact point-to-triangle distances. The tree
(../shared/data/meshes/tree.ply, 386 vertices) is a low-poly model: a crown and a trunk that intersect, three
bushes (all closed, with sharp edges) and nine open single-sided grass cards (8 triangles each, 1.1% of the
area) that no closed surface can follow; the scans sample all of it, inner trunk part included.

Example (CPU, the README tables; the default runs both suites, the full grids):
    python scripts/bench_sdf.py --suite meshes --steps 300 --tag cpu
    python scripts/bench_sdf.py --suite scans --tag scans-cpu
    python scripts/bench_sdf.py --suite scans --scan-shapes bunny --tag scans-cpu-bunny  (and tree → scans-cpu-tree)
Writes a rich table to stdout and JSON to scripts/results/bench_sdf[-TAG].json.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see app/cli.py)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench_common import ROOT, public_args  # noqa: E402

from fieldforge.app.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402
from fieldforge.app.export_mesh import encode_mesh  # noqa: E402
from fieldforge.app.loader import load_run  # noqa: E402
from fieldforge.app.trainer import resolve_device  # noqa: E402
from fieldforge.app.tasks.sdf import EVAL_SEED, METHODS, TASK, sdf_train_config  # noqa: E402
from fieldforge.app.train import train  # noqa: E402
from fieldforge.data.pointclouds import sample_surface  # noqa: E402
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


# -- scans: point clouds sampled from a mesh, ours vs screened Poisson, scored against the true surface -----

SCAN_SHAPES = ("bunny", "tree", "torus", "box")
SCANS = ("clean", "noisy-0.25", "noisy-0.5", "sparse")
NORMALS = ("given", "estimated")
SCAN_POINTS = {"clean": 25_000, "noisy-0.25": 25_000, "noisy-0.5": 25_000, "sparse": 3_000}
TREE = ROOT.parent / "shared" / "data" / "meshes" / "tree.ply"


@dataclass
class TrueSurface:
    """A benchmark shape's mesh (input coordinates) with its surface samples for scoring."""

    vertices: np.ndarray
    faces: np.ndarray
    points: torch.Tensor
    normals: torch.Tensor
    diagonal: float


def true_surface(shape: str, folder: Path, n_eval: int = 100_000) -> TrueSurface:
    import open3d as o3d

    path = TREE if shape == "tree" else shape_file(shape, folder)
    m = o3d.io.read_triangle_mesh(str(path))
    m.remove_duplicated_vertices()
    v, f = np.asarray(m.vertices).astype(np.float64), np.asarray(m.triangles).astype(np.int64)
    pts, nrm = sample_surface(torch.from_numpy(v), torch.from_numpy(f), n_eval, seed=EVAL_SEED)
    return TrueSurface(v, f, pts, nrm, float(np.linalg.norm(v.max(0) - v.min(0))))


def make_scan(truth: TrueSurface, scan: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(points, true normals)`` of a scan: area-uniform surface samples, Gaussian noise of σ = 0.25% /
    0.5% of the bounding-box diagonal for the noisy scans, 3,000 points for the sparse one."""
    pts, nrm = sample_surface(torch.from_numpy(truth.vertices), torch.from_numpy(truth.faces), SCAN_POINTS[scan], seed=seed)
    pts, nrm = pts.double().numpy(), nrm.double().numpy()
    if scan.startswith("noisy-"):
        sigma = float(scan.split("-")[1]) / 100 * truth.diagonal
        pts = pts + np.random.default_rng(seed + 1).normal(0.0, sigma, pts.shape)
    return pts, nrm


def write_scan(path: Path, points: np.ndarray, normals: np.ndarray | None) -> Path:
    data = points if normals is None else np.concatenate([points, normals], axis=1)
    np.savetxt(path, data, fmt="%.7f")
    return path


def score_against(truth: TrueSurface, vertices: np.ndarray, faces: np.ndarray, n: int = 100_000) -> dict:
    """Against the true surface, with exact point-to-triangle distances both ways (open3d ``RaycastingScene``)
    from ``n`` area-uniform samples of each surface, so a perfect mesh scores 0: Chamfer-L1 (mean of the two
    directions' mean distances, relative to the true diagonal), F-score at 1% of the diagonal, normal
    consistency (mean |cos| between each sample's face normal and the nearest face's normal on the other side)."""
    import open3d as o3d

    if len(faces) == 0:
        return {"chamfer_l1_rel": float("inf"), "f_score": 0.0, "normal_consistency": 0.0}

    def scene(v: np.ndarray, f: np.ndarray):
        m = o3d.t.geometry.TriangleMesh()
        m.vertex.positions = o3d.core.Tensor(v.astype(np.float32))
        m.triangle.indices = o3d.core.Tensor(f.astype(np.int32))
        s = o3d.t.geometry.RaycastingScene()
        s.add_triangles(m)
        return s

    def one_way(pts: torch.Tensor, nrm: torch.Tensor, other) -> tuple[np.ndarray, np.ndarray]:
        r = other.compute_closest_points(o3d.core.Tensor(pts.float().numpy()))
        d = np.linalg.norm(r["points"].numpy() - pts.float().numpy(), axis=1)
        cos = np.abs((r["primitive_normals"].numpy() * nrm.float().numpy()).sum(axis=1))
        return d, cos

    pts, nrm = sample_surface(torch.from_numpy(vertices.astype(np.float64)), torch.from_numpy(faces.astype(np.int64)), n, seed=EVAL_SEED + 1)
    d_pt, cos_pt = one_way(pts, nrm, scene(truth.vertices, truth.faces))
    d_tp, cos_tp = one_way(truth.points[:n], truth.normals[:n], scene(vertices, faces))
    tau = 0.01 * truth.diagonal
    precision, recall = float((d_pt < tau).mean()), float((d_tp < tau).mean())
    return {
        "chamfer_l1_rel": float(0.5 * (d_pt.mean() + d_tp.mean())) / truth.diagonal,
        "f_score": 2 * precision * recall / max(precision + recall, 1e-12),
        "normal_consistency": float(0.5 * (np.nanmean(cos_pt) + np.nanmean(cos_tp))),
    }


def screened_poisson(points: np.ndarray, normals: np.ndarray | None, depth: int, k: int = 30, trim: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """open3d's screened Poisson as users run it: normals estimated (PCA, k neighbours) and oriented by the
    consistent tangent plane unless given; the vertices of the lowest ``trim`` density quantile removed."""
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if normals is None:
        pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(k))
        pc.orient_normals_consistent_tangent_plane(k)
    else:
        pc.normals = o3d.utility.Vector3dVector(normals)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh, density = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pc, depth=depth)
    density = np.asarray(density)
    mesh.remove_vertices_by_mask(density < np.quantile(density, trim))
    return np.asarray(mesh.vertices), np.asarray(mesh.triangles)


def poisson_row(truth: TrueSurface, points: np.ndarray, normals: np.ndarray | None) -> dict:
    """The better of depth 8 and 9 (by Chamfer to the truth: the baseline gets its best setting)."""
    best = None
    for depth in (8, 9):
        t0 = time.perf_counter()
        v, f = screened_poisson(points, normals, depth)
        seconds = time.perf_counter() - t0
        row = {**score_against(truth, v, f), "seconds": seconds, "depth": depth}
        if best is None or row["chamfer_l1_rel"] < best["chamfer_l1_rel"]:
            best = row
    return best


def ours_row(truth: TrueSurface, data: Path, args, out: Path, name: str) -> dict:
    """``fieldforge train sdf --data SCAN`` with the defaults of the device (plus --steps if given), its
    exported mesh (renders/mesh.ply) scored against the truth."""
    import open3d as o3d

    base = TASK.default_config(device=resolve_device(args.device))
    trainer = replace(base.trainer, eval_every=0, checkpoint_every=0, log_every=10**9, progress=False, seed=args.seed, device=args.device,
                      output_dir=out, name=name)  # fmt: skip
    if args.scan_steps:
        trainer = replace(trainer, steps=args.scan_steps)
    config = replace(base, data=data, trainer=trainer)
    t0 = time.perf_counter()
    run, m = train(config)
    seconds = time.perf_counter() - t0
    mesh = o3d.io.read_triangle_mesh(str(run.renders_dir / "mesh.ply"))
    row = {**score_against(truth, np.asarray(mesh.vertices), np.asarray(mesh.triangles)), "seconds": seconds, "method": config.method,
           "steps": config.trainer.steps, "components_removed": m.get("components_removed")}  # fmt: skip
    return row


def scan_rows(args, folder: Path, console: Console) -> list[dict]:
    rows = []
    for shape in args.scan_shapes:
        truth = true_surface(shape, folder)
        for scan in args.scans:
            points, true_normals = make_scan(truth, scan, seed=args.seed)
            for normals in args.normals:
                given = true_normals if normals == "given" else None
                data = write_scan(folder / f"{shape}-{scan}-{normals}.{'xyzn' if given is not None else 'xyz'}", points, given)
                ours = ours_row(truth, data, args, folder / "runs", f"{shape}-{scan}-{normals}")
                poisson = poisson_row(truth, points, given)
                row = {"shape": shape, "scan": scan, "normals": normals, "points": len(points), "ours": ours, "poisson": poisson,
                       "chamfer_ratio": ours["chamfer_l1_rel"] / poisson["chamfer_l1_rel"], "time_ratio": ours["seconds"] / poisson["seconds"]}
                rows.append(row)
                console.print(
                    f"{shape:<6} {scan:<10} normals {normals:<9} ours {100 * ours['chamfer_l1_rel']:.3f}% (F {ours['f_score']:.3f}, "
                    f"NC {ours['normal_consistency']:.3f}, {ours['seconds']:.0f} s)  Poisson d{poisson['depth']} "
                    f"{100 * poisson['chamfer_l1_rel']:.3f}% (F {poisson['f_score']:.3f}, NC {poisson['normal_consistency']:.3f}, "
                    f"{poisson['seconds']:.1f} s)  ratio {row['chamfer_ratio']:.2f}"
                )  # fmt: skip
    return rows


def scan_table(scans: list[dict]) -> Table:
    t = Table(title="Point-cloud scans → surfaces: ours (train sdf defaults) vs screened Poisson (open3d, best of depth 8/9, "
                    "1% density trim); Chamfer-L1 to the true surface in % of its diagonal")
    for c in ("shape", "scan", "normals", "ours Chamfer / F / NC", "Poisson Chamfer / F / NC", "Chamfer ratio", "ours s", "Poisson s", "time ratio"):
        t.add_column(c, justify="left" if c in ("shape", "scan", "normals") else "right")
    for r in scans:
        o, p = r["ours"], r["poisson"]
        t.add_row(r["shape"], r["scan"], r["normals"], f"{100 * o['chamfer_l1_rel']:.3f} / {o['f_score']:.3f} / {o['normal_consistency']:.3f}",
                  f"{100 * p['chamfer_l1_rel']:.3f} / {p['f_score']:.3f} / {p['normal_consistency']:.3f}", f"{r['chamfer_ratio']:.2f}",
                  f"{o['seconds']:.0f}", f"{p['seconds']:.1f}", f"{r['time_ratio']:.1f}")  # fmt: skip
    return t


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
    parser.add_argument("--suite", default="all", choices=["all", "meshes", "scans"],
                        help="meshes: methods × shapes on mesh input; scans: point-cloud scans, ours (defaults) vs screened Poisson")
    parser.add_argument("--scan-shapes", default=",".join(SCAN_SHAPES), help=f"comma-separated, from: {','.join(SCAN_SHAPES)}")
    parser.add_argument("--scans", default=",".join(SCANS), help=f"comma-separated, from: {','.join(SCANS)}")
    parser.add_argument("--normals", default=",".join(NORMALS), help="given (the true normals in the file) and/or estimated")
    parser.add_argument("--scan-steps", type=int, default=0, help="steps of our scan fits (0: the device default of train sdf)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.scan_shapes, args.scans, args.normals = (v.split(",") for v in (args.scan_shapes, args.scans, args.normals))
    for values, allowed, name in ((args.scan_shapes, SCAN_SHAPES, "scan shape"), (args.scans, SCANS, "scan"), (args.normals, NORMALS, "normals")):
        for v in values:
            if v not in allowed:
                parser.error(f"unknown {name} {v!r}")
    if args.suite == "scans":
        args.methods = args.shapes = ""
    methods = [m for m in args.methods.split(",") if m]
    shapes = [s for s in args.shapes.split(",") if s]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}")
    for s in shapes:
        if s not in SHAPES:
            parser.error(f"unknown shape {s!r}")
    console = Console()
    rows, scans = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.suite in ("all", "scans"):
            scans = scan_rows(args, folder, console)
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
    if rows:
        console.print(table)
    if scans:
        console.print(scan_table(scans))
    result = {
        "benchmark": "bench_sdf",
        "args": public_args(args),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "torch": torch.__version__, "threads": args.threads,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "rows": rows,
        "scans": scans,
    }  # fmt: skip
    name = f"bench_sdf{'-' + args.tag if args.tag else ''}.json"
    path = ROOT / "scripts" / "results" / name
    atomic_write_text(path, json.dumps(result, indent=1))
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
