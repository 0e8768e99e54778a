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


@dataclass(frozen=True)
class Command:
    target: str
    """``module:function`` taking ``(argv, prog)``."""
    summary: str


COMMANDS: dict[tuple[str, ...], Command] = {
    ("export", "image"): Command("fieldforge.app.commands_export:export_image", "Render an image field at any resolution (PNG/EXR)."),
    ("export", "mesh"): Command("fieldforge.app.commands_export:export_mesh", "Extract a field's surface: SDF/occupancy level set or NeRF density (PLY/OBJ/GLB, raw grid NPZ)."),
    ("export", "render"): Command("fieldforge.app.commands_export:export_render", "Render a NeRF run's test (or train/val) views, with PSNR/SSIM."),
    ("export", "video"): Command("fieldforge.app.commands_export:export_video", "Render a NeRF fly-through (orbit, spiral or through the cameras) as MP4."),
    ("export", "pointcloud"): Command("fieldforge.app.commands_export:export_pointcloud", "Export a NeRF run's surface points with colours (PLY)."),
    ("info",): Command("fieldforge.app.commands:info", "Show a run's task, method, progress, last evaluation and checkpoints (--yaml: the config)."),
    ("runs",): Command("fieldforge.app.commands:runs", "List the runs under a folder: task, method, steps, last PSNR/Chamfer, size, date."),
    ("view",): Command("fieldforge.app.commands_view:view", "Explore a run in the browser (viser): render from any camera, export."),
    ("capture", "synthetic"): Command("fieldforge.app.commands:capture_synthetic", "Write the procedural multi-view test capture (nerfstudio format)."),
    ("capture", "process"): Command("fieldforge.app.commands_capture:capture_process", "Photos or a video → camera poses (pycolmap, CPU) → a nerfstudio capture for train nerf."),
    ("distill",): Command("fieldforge.app.commands_distill:distill", "Distill a trained run into another method of its signal type (PVD stages, KiloNeRF tiles)."),
    ("demo",): Command("fieldforge.app.commands:demo", "Train on the embedded sample image and write its reconstruction."),
    ("demo", "nerf"): Command("fieldforge.app.commands:demo_nerf", "Radiance-field pipeline on the embedded synthetic capture: train, renders, video, mesh."),
}
"""Every command but ``train <task>``, which the task registry generates."""


def _usage() -> str:
    from fieldforge.app.tasks import TASKS

    lines = ["usage: fieldforge <command> [options]   (fieldforge <command> --help for its options; --debug: tracebacks)", "", "commands:"]
    lines += [f"  {'train ' + name:<18} {entry.summary}" for name, entry in TASKS.items()]
    for name, cmd in COMMANDS.items():
        lines.append(f"  {' '.join(name):<18} {cmd.summary}")
    return "\n".join(lines)


def _resolve(argv: Sequence[str]) -> tuple[tuple[str, ...], Callable[[list[str], str], int | None], list[str]] | None:
    from fieldforge.app.tasks import TASKS

    if argv[0] == "train" and len(argv) > 1 and argv[1] in TASKS:
        from functools import partial

        from fieldforge.app.cli_train import train_command

        return ("train", argv[1]), partial(train_command, argv[1]), list(argv[2:])
    for n in (3, 2, 1):
        key = tuple(argv[:n])
        if key in COMMANDS:
            module, _, function = COMMANDS[key].target.partition(":")
            return key, getattr(import_module(module), function), list(argv[n:])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from fieldforge.data.errors import InputError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # show the traceback of an input error (and let other errors propagate as they are)
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        from fieldforge import __version__

        print(f"fieldforge {__version__}")
        return 0
    if argv[0] == "train" and (len(argv) == 1 or argv[1] in ("-h", "--help")):
        from fieldforge.app.cli_train import usage

        print(usage())
        return 0
    found = _resolve(argv)
    if found is None:
        if argv[0] == "train":
            from fieldforge.app.cli_train import usage

            print(f"fieldforge: error: unknown task {argv[1]!r}\n\n{usage()}", file=sys.stderr)
        else:
            print(f"fieldforge: error: unknown command {' '.join(argv[:2])!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    name, fn, rest = found
    try:
        return fn(rest, "fieldforge " + " ".join(name)) or 0
    except InputError as e:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"fieldforge: error: {e}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # torch's allocators raise RuntimeError (CPU) / OutOfMemoryError (CUDA)
        if debug or not (isinstance(e, MemoryError) or "out of memory" in str(e) or "can't allocate memory" in str(e)):
            raise
        print("fieldforge: error: out of memory; use a smaller --downscale / --batch-size / --scale (--debug shows where)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fieldforge: interrupted; the newest checkpoint is kept (continue with --resume RUN_DIR)", file=sys.stderr)
        return 130


def entrypoint() -> None:
    if sys.argv[1:2] == ["view"] or any(a == "--viewer" or a.startswith("--viewer=") for a in sys.argv[2:]):
        # The viewer renders from its own thread: OpenMP workers that spin after each parallel region would take
        # the cores from the training thread (measured: 71% → 89% of steps/s kept, scripts/bench_viewer.py).
        # Read once when torch loads, so it is set before anything imports torch. Not for other commands: passive
        # workers slow a CPU frame 1.5–2.5× on an idle machine (lego ×⅛ KiloNeRF frame 0.077 vs 0.046 s).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
