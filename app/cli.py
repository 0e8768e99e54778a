"""``fieldforge`` command line: ``fieldforge <group> <command> [options]``; every command has ``--help``.

Commands are registered declaratively (name → "module:function"), imported only when run, so the CLI
starts fast and adding a command never creates import cycles.
"""

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module

from rich.console import Console

console = Console(stderr=True)

# OpenMP workers spin-wait by default; on a busy or small machine they starve each other (measured here:
# a 40k-element op took 1.2 s with 2 spinning threads vs 0.01 s passive). Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class Command:
    target: str
    """``module:function`` taking ``(argv, prog)``."""
    summary: str


COMMANDS: dict[tuple[str, ...], Command] = {
    ("train", "image"): Command("fieldforge.app.commands:train_image", "Fit a neural field to an image (PNG/JPEG/TIFF/EXR)."),
    ("export", "image"): Command("fieldforge.app.commands:export_image", "Render an image field at any resolution (PNG/EXR)."),
    ("demo",): Command("fieldforge.app.commands:demo", "Train on the embedded sample image and write its reconstruction."),
    ("info",): Command("fieldforge.app.commands:info", "Show a run's config, metrics and checkpoints."),
    ("train", "sdf"): Command("fieldforge.app.commands_sdf:train_sdf", "Fit a signed distance / occupancy field to a point cloud or mesh."),
    ("export", "mesh"): Command("fieldforge.app.commands_sdf:export_mesh", "Extract a shape field's surface (PLY/OBJ/GLB, raw grid NPZ)."),
    ("train", "nerf"): Command("fieldforge.app.commands_nerf:train_nerf", "Train a radiance field on a multi-view capture (nerfstudio/Blender/LLFF/COLMAP)."),
    ("export", "render"): Command("fieldforge.app.commands_nerf:export_render", "Render a NeRF run's test (or train/val) views, with PSNR/SSIM."),
    ("export", "video"): Command("fieldforge.app.commands_nerf:export_video", "Render a NeRF fly-through (orbit, spiral or through the cameras) as MP4."),
    ("export", "pointcloud"): Command("fieldforge.app.commands_nerf:export_pointcloud", "Export a NeRF run's surface points with colours (PLY)."),
    ("capture", "synthetic"): Command("fieldforge.app.commands_nerf:capture_synthetic", "Write the procedural multi-view test capture (nerfstudio format)."),
    ("demo", "nerf"): Command("fieldforge.app.commands_nerf:demo", "Radiance-field pipeline on the embedded synthetic capture: train, renders, video, mesh."),
}


def _usage() -> str:
    lines = ["usage: fieldforge <command> [options]   (fieldforge <command> --help for its options)", "", "commands:"]
    for name, cmd in COMMANDS.items():
        lines.append(f"  {' '.join(name):<16} {cmd.summary}")
    return "\n".join(lines)


def _resolve(argv: Sequence[str]) -> tuple[tuple[str, ...], list[str]] | None:
    for n in (3, 2, 1):
        key = tuple(argv[:n])
        if key in COMMANDS:
            return key, list(argv[n:])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from fieldforge.data.errors import InputError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from fieldforge import __version__

        print(f"fieldforge {__version__}")
        return 0
    found = _resolve(argv)
    if found is None:
        print(f"fieldforge: error: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    name, rest = found
    module, _, function = COMMANDS[name].target.partition(":")
    fn: Callable[[list[str], str], int | None] = getattr(import_module(module), function)
    try:
        return fn(rest, "fieldforge " + " ".join(name)) or 0
    except InputError as e:
        print(f"fieldforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fieldforge: interrupted; the newest checkpoint is kept (continue with --resume RUN_DIR)", file=sys.stderr)
        return 130


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
