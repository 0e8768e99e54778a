"""``fieldforge export image|mesh|render|video|pointcloud``: parse with tyro, export, print one summary line."""

import tyro

from fieldforge.app.cli_train import TYRO_CONF, require_option
from fieldforge.app.validation import validate_config


def export_image(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_image import ExportImageConfig, export_image as run_export

    require_option(argv, "--run", "a run directory")
    config = tyro.cli(ExportImageConfig, args=argv, prog=prog, config=TYRO_CONF)
    validate_config(config)
    out, m = run_export(config)
    what = f"exported {m['width']}×{m['height']} from step {m['step']}" + (f", PSNR {m['psnr']:.2f} dB" if "psnr" in m else "")
    print(f"{what} → {out}")
    return 0


def export_mesh(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_mesh import ExportMeshConfig, export_mesh as run_export
    from fieldforge.app.tasks.sdf import shape_summary

    require_option(argv, "--run", "a run directory")
    config = tyro.cli(ExportMeshConfig, args=argv, prog=prog, config=TYRO_CONF)
    validate_config(config)
    out, m = run_export(config)
    if config.format == "npz":
        what = f"exported the {config.resolution}³ {m['kind']} grid from step {m['step']}"
        m = {k: v for k, v in m.items() if k != "watertight"}
    else:
        level = f"σ = {m['level']:.3g}" if m["kind"] == "density" else f"level {m['level']:g}"
        what = f"exported {m['kind']} mesh ({level}) at {config.resolution}³ from step {m['step']}: {m['vertices']:,} vertices, {m['faces']:,} faces"
    print(shape_summary(what, m, out))
    return 0


def export_render(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_views import ExportRenderConfig, export_render as run_export

    require_option(argv, "--run", "a run directory")
    c = tyro.cli(ExportRenderConfig, args=argv, prog=prog, config=TYRO_CONF)
    validate_config(c)
    out, m = run_export(c)
    parts = [f"rendered {m['views']} {c.split} views from step {m['step']}"]
    if "psnr" in m:
        parts += [f"PSNR {m['psnr']:.2f} dB", f"SSIM {m['ssim']:.4f}"]
    print(", ".join(parts) + f" → {out}")
    return 0


def export_video(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_views import ExportVideoConfig, export_video as run_export

    require_option(argv, "--run", "a run directory")
    c = tyro.cli(ExportVideoConfig, args=argv, prog=prog, config=TYRO_CONF)
    validate_config(c)
    out, m = run_export(c)
    print(f"rendered a {m['frames']}-frame {c.path} video ({m['width']}×{m['height']}, {m['fps']} fps) from step {m['step']} → {out}")
    return 0


OLD_FRAMES = {"capture": "input", "normalized": "unit"}
"""``export pointcloud --frame capture|normalized`` (old spellings) → ``input|unit`` as on ``export mesh``."""


def with_frame_aliases(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--frame" and i + 1 < len(out):
            out[i + 1] = OLD_FRAMES.get(out[i + 1], out[i + 1])
        elif arg.startswith("--frame="):
            value = arg.split("=", 1)[1]
            out[i] = "--frame=" + OLD_FRAMES.get(value, value)
    return out


def export_pointcloud(argv: list[str], prog: str) -> int:
    from fieldforge.app.export_views import ExportPointcloudConfig, export_pointcloud as run_export

    argv = with_frame_aliases(argv)
    require_option(argv, "--run", "a run directory")
    c = tyro.cli(ExportPointcloudConfig, args=argv, prog=prog, config=TYRO_CONF)
    validate_config(c)
    out, m = run_export(c)
    print(f"exported {m['points']:,} points from step {m['step']} → {out}")
    return 0
