#!/usr/bin/env python
"""Camera poses from images alone: ``fieldforge capture process`` on lego_half's training images, against its
exact poses.

1. ``capture process`` (pycolmap on the CPU, default options) on ``../shared/data/lego_half/train/*.png`` alone;
   time per stage.
2. Recovered poses against the known ones (``transforms_train.json``) after a similarity alignment
   (``data.alignment.align_poses``: rotation from the cameras' orientations, scale and translation from their
   centres; also Umeyama on the centres alone): rotation error in degrees, camera-centre error relative to the
   scene size (the largest distance between two known camera centres); focal length against the exact one.
3. ``train nerf`` (the default CPU method and settings, ``--steps`` steps, ``--downscale``) twice on the same images,
   split (every 8th held out) and sparse points: once on our poses and intrinsics, once on the known ones
   (a nerfstudio capture written from ``transforms_train.json``); test PSNR / SSIM of both.

Example (the README's table):
    python scripts/bench_capture.py --steps 300 --downscale 2
Writes a rich table and JSON to scripts/results/bench_capture[-TAG].json.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # shared CPUs: spinning OpenMP workers starve each other

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_common import ROOT, cpu_name, public_args  # noqa: E402
from fieldforge.app.capture_process import ProcessOptions, ProcessResult, process_capture  # noqa: E402
from fieldforge.app.cli_train import parse_train  # noqa: E402
from fieldforge.app.tasks import get_task  # noqa: E402
from fieldforge.app.train import train  # noqa: E402
from fieldforge.data.alignment import pose_errors, umeyama  # noqa: E402
from fieldforge.data.formats import encode_ply  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

LEGO = Path(os.environ.get("FIELDFORGE_LEGO", ROOT.parent / "shared" / "data" / "lego_half"))
SMALL = [
    "--field.encoding.n-levels", "6", "--field.encoding.log2-table-size", "12", "--field.encoding.max-resolution", "64",
    "--render.grid-resolution", "16", "--render.steps-per-ray", "96", "--render.grid-warmup-steps", "32",
    "--render.target-samples", "8192", "--batch-size", "512", "--optim.warmup-steps", "5",
]
"""--small: the small ngp of tests/test_nerf_train.py (6-level 2^12 hash grid, 16³ grid, 96 steps/ray, 8,192
samples/step), for a contended CPU; the README's radiance-field table has lego_half at these settings."""


def known_poses(scene: Path) -> tuple[dict[str, np.ndarray], float, tuple[int, int]]:
    """``{image name: camera-to-world (OpenGL)}``, the focal length in pixels and the image size of a Blender capture."""
    from PIL import Image

    meta = json.loads((scene / "transforms_train.json").read_text())
    poses = {Path(f["file_path"]).name + ("" if Path(f["file_path"]).suffix else ".png"): np.asarray(f["transform_matrix"], dtype=np.float64)
             for f in meta["frames"]}  # fmt: skip
    with Image.open(scene / "train" / next(iter(poses))) as im:
        w, h = im.size
    return poses, 0.5 * w / math.tan(0.5 * float(meta["camera_angle_x"])), (w, h)


def summary_of(capture: Path, given: int) -> ProcessResult:
    """What ``process_capture`` reports, read back from a capture it wrote (no stage times)."""
    import pycolmap

    rec = pycolmap.Reconstruction(str(capture / "sparse" / "0"))
    meta = json.loads((capture / "transforms.json").read_text())
    camera = {k: meta[k] for k in ("camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2")}
    registered = {rec.images[i].name for i in rec.reg_image_ids()}
    missing = sorted(p.name for p in (capture / "images").iterdir() if p.name not in registered)
    return ProcessResult(capture, given, len(registered), missing, float(rec.compute_mean_reprojection_error()), int(rec.num_points3D()),
                         "exhaustive", camera, {})


def write_known_capture(ours: Path, out: Path, poses: dict[str, np.ndarray], focal: float, size: tuple[int, int], alignment) -> None:
    """Our capture with the exact poses and a pinhole camera instead: same frames (order, images, split) and the
    same sparse points (mapped into the known frame by the alignment)."""
    meta = json.loads((ours / "transforms.json").read_text())
    w, h = size
    known = {"camera_model": "PINHOLE", "fl_x": focal, "fl_y": focal, "cx": w / 2, "cy": h / 2, "w": w, "h": h,
             "frames": [{"file_path": f["file_path"], "transform_matrix": poses[Path(f["file_path"]).name].tolist()}
                        for f in meta["frames"]]}  # fmt: skip
    shutil.copytree(ours / "images", out / "images")  # the same files (a capture may not point outside its folder)
    if meta.get("ply_file_path"):
        from fieldforge.data.captures.nerfstudio import read_ply_points

        pts, cols = read_ply_points(ours / meta["ply_file_path"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "points.ply").write_bytes(encode_ply(alignment.apply(pts), colours=cols, colour_space="srgb"))
        known["ply_file_path"] = "points.ply"
    out.mkdir(parents=True, exist_ok=True)
    (out / "transforms.json").write_text(json.dumps(known, indent=1))


def train_on(capture: Path, name: str, args, output_dir: Path, console: Console) -> dict:
    """``fieldforge train nerf --data CAPTURE --steps N --downscale D`` (default method and settings for the CPU)."""
    argv = ["--data", str(capture), "--steps", str(args.steps), "--downscale", str(args.downscale), "--output-dir", str(output_dir),
            "--name", name, "--progress", "False", "--eval-every", "0", "--seed", str(args.seed), "--device", "cpu",
            *(SMALL if args.small else [])]
    config = parse_train(get_task("nerf"), argv, "bench_capture")
    t = time.perf_counter()
    _, metrics = train(config)
    out = {"psnr": float(metrics["psnr"]), "ssim": float(metrics["ssim"]), "wall_seconds": time.perf_counter() - t,
           "method": config.method, "steps": args.steps}  # fmt: skip
    console.print(f"  train nerf on {name} poses: test PSNR {out['psnr']:.2f} dB, SSIM {out['ssim']:.4f} ({out['wall_seconds']:.0f} s)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scene", type=Path, default=LEGO, help="a Blender capture with transforms_train.json and train/ (default: lego_half)")
    p.add_argument("--steps", type=int, default=300, help="train nerf steps of each of the two runs (0: skip training)")
    p.add_argument("--downscale", type=int, default=2, help="train nerf --downscale (capture process always sees the full images)")
    p.add_argument("--matcher", default="auto", help="capture process --matcher")
    p.add_argument("--camera-model", default="SIMPLE_RADIAL", help="capture process --camera-model")
    p.add_argument("--small", action="store_true", help="train the small ngp (SMALL) instead of the default CPU settings")
    p.add_argument("--capture", type=Path, default=None,
                   help="reuse this output of `capture process` (default options) instead of running it (stage times then not measured)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="result file suffix")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    poses, focal, size = known_poses(args.scene)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ours = tmp / "capture"
        if args.capture is None:
            console.print(f"[bold]capture process[/] on {len(poses)} images of {args.scene.name} ({size[0]}×{size[1]})")
            result = process_capture(ProcessOptions(input=args.scene / "train", output=ours, matcher=args.matcher, camera_model=args.camera_model))
        else:
            shutil.copytree(args.capture, ours)
            result = summary_of(ours, len(poses))
        console.print(result.summary_line())
        meta = json.loads((ours / "transforms.json").read_text())
        names = [Path(f["file_path"]).name for f in meta["frames"]]
        est = np.stack([np.asarray(f["transform_matrix"]) for f in meta["frames"]])
        ref = np.stack([poses[n] for n in names])
        err = pose_errors(est, ref)
        centres_only = umeyama(est[:, :3, 3], ref[:, :3, 3])
        aligned = centres_only.apply_poses(est)
        rot_umeyama = np.degrees(np.arccos(np.clip((np.trace(np.swapaxes(ref[:, :3, :3], -1, -2) @ aligned[:, :3, :3], axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
        poses_row = {
            "registered": result.registered, "given": result.given, "mean_reprojection_error_px": result.mean_reprojection_error,
            "points": result.points, "matcher": result.matcher, "camera": result.camera, "stage_seconds": result.seconds,
            "rotation_deg_mean": float(err["rotation_deg"].mean()), "rotation_deg_median": float(np.median(err["rotation_deg"])),
            "rotation_deg_max": float(err["rotation_deg"].max()), "rotation_deg_max_umeyama_centres": float(rot_umeyama.max()),
            "translation_rel_mean": float(err["translation_rel"].mean()), "translation_rel_max": float(err["translation_rel"].max()),
            "scene_size": err["scene_size"], "focal_px": result.camera["fl_x"], "focal_exact_px": focal,
        }  # fmt: skip
        training = {}
        if args.steps > 0:
            write_known_capture(ours, tmp / "known", poses, focal, size, err["alignment"])
            runs = tmp / "runs"
            training["ours"] = train_on(ours, "ours", args, runs, console)
            training["known"] = train_on(tmp / "known", "known", args, runs, console)
            training["psnr_gap_db"] = training["known"]["psnr"] - training["ours"]["psnr"]
    table = Table(title=f"capture process on {args.scene.name}: {result.registered}/{result.given} registered")
    for col in ("quantity", "value"):
        table.add_column(col)
    rows = [
        ("stages (s)", ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()) + f"  (total {sum(result.seconds.values()):.0f})"
         if result.seconds else "not measured (--capture)"),
        ("mean reprojection error", f"{result.mean_reprojection_error:.3f} px, {result.points:,} points"),
        ("rotation error (°) mean / median / max", f"{poses_row['rotation_deg_mean']:.3f} / {poses_row['rotation_deg_median']:.3f} / {poses_row['rotation_deg_max']:.3f}"),
        ("camera-centre error / scene size mean / max", f"{poses_row['translation_rel_mean']:.2e} / {poses_row['translation_rel_max']:.2e}"),
        ("focal length (px) ours / exact", f"{poses_row['focal_px']:.2f} / {focal:.2f}  (k1 {result.camera['k1']:.4f})"),
    ]
    if training:
        rows += [(f"test PSNR ours / known poses ({args.steps} steps, ÷{args.downscale}{', small' if args.small else ''})",
                  f"{training['ours']['psnr']:.2f} / {training['known']['psnr']:.2f} dB  (gap {training['psnr_gap_db']:+.2f} dB)")]  # fmt: skip
    for r in rows:
        table.add_row(*r)
    console.print(table)
    out = ROOT / "scripts" / "results" / f"bench_capture{'-' + args.tag if args.tag else ''}.json"
    import pycolmap

    record = {
        "env": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": args.threads, "load_average_at_start": load,
                "pycolmap": pycolmap.__version__, "torch": torch.__version__, "args": public_args(args)},
        "scene": args.scene.name, "poses": poses_row, "training": training,
    }  # fmt: skip
    out.write_text(json.dumps(record, indent=1))
    console.print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
