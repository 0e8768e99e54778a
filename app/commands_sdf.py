"""``fieldforge train sdf`` and ``fieldforge export mesh``: parse with tyro, run, print a one-line summary."""

import math
from pathlib import Path

import tyro

from fieldforge.app.commands import TYRO_CONF, _method_from_argv, run_train_command
from fieldforge.app.config_sdf import SDF_METHODS, SDFTrainConfig, sdf_train_config
from fieldforge.data.errors import InputError


def _target_from_argv(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--target" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--target="):
            value = arg.split("=", 1)[1]
        else:
            continue
        if value not in ("sdf", "occupancy"):
            raise InputError(None, f"--target must be 'sdf' or 'occupancy', got {value!r}")
        return value
    return None


def shape_summary(prefix: str, metrics: dict, path: Path) -> str:
    parts = [prefix]
    if math.isfinite(metrics.get("chamfer_l1", math.nan)):
        parts.append(f"Chamfer-L1 {metrics['chamfer_l1']:.4g} ({100 * metrics['chamfer_l1_rel']:.3f}% of the diagonal)")
    for key, fmt in (("f_score", "F@1% {:.3f}"), ("normal_consistency", "NC {:.3f}"), ("iou", "IoU {:.3f}")):
        if key in metrics:
            parts.append(fmt.format(metrics[key]))
    if "watertight" in metrics:
        parts.append("watertight" if metrics["watertight"] else "NOT watertight")
    if "train_seconds" in metrics:
        parts.append(f"{metrics['steps']} steps in {metrics['train_seconds']:.1f} s")
    return ", ".join(parts) + f" → {path}"


def train_sdf(argv: list[str], prog: str) -> int:
    from fieldforge.app.sdf_task import resume_sdf, train_sdf as run_training

    default = sdf_train_config(_method_from_argv(argv, SDF_METHODS, "ff"), _target_from_argv(argv))  # type: ignore[arg-type]
    run, metrics = run_train_command(argv, prog, SDFTrainConfig, default, run_training, resume_sdf, "a point cloud or mesh file")
    cfg = run.read_config()
    print(shape_summary(f"trained {cfg.method} ({cfg.target})", metrics, run.path))
    return 0


def export_mesh(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_mesh import ExportMeshConfig, export_mesh as run_export

    config = tyro.cli(ExportMeshConfig, args=argv, prog=prog, config=TYRO_CONF)
    if str(config.run) in ("", "."):
        raise InputError(None, "--run is required (a run directory)")
    from fieldforge.app.export_nerf import is_nerf_run  # radiance fields: density mesh with view-based vertex colours

    if is_nerf_run(config.run):
        from fieldforge.app.commands_nerf import export_mesh_nerf

        return export_mesh_nerf(config, argv)
    out, metrics = run_export(config)
    what = f"exported {metrics['kind']} mesh at {config.resolution}³ from step {metrics['step']}: {metrics['vertices']:,} vertices, {metrics['faces']:,} faces"
    if "level" in metrics:
        what += f" (level {metrics['level']:g})"
    if config.format == "npz":
        what = f"exported the {config.resolution}³ {metrics['kind']} grid from step {metrics['step']}"
        metrics = {k: v for k, v in metrics.items() if k != "watertight"}
    print(shape_summary(what, metrics, out))
    return 0
