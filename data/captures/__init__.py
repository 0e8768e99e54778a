"""Multi-view captures: one parser per format → :class:`Capture`; :func:`load_capture` detects the format."""

from pathlib import Path

from fieldforge.data.captures.blender import parse_blender
from fieldforge.data.captures.capture import Cameras, Capture, CaptureOptions, CaptureWarning
from fieldforge.data.captures.colmap import parse_colmap
from fieldforge.data.captures.llff import parse_llff
from fieldforge.data.captures.nerfstudio import parse_nerfstudio
from fieldforge.data.captures.unposed import is_unposed, is_video, process_hint
from fieldforge.data.errors import InputError

FORMATS = ("nerfstudio", "blender", "llff", "colmap")


def detect_format(path: str | Path) -> str:
    """Which parser reads ``path`` (a capture directory or its transforms file)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "capture path does not exist")
    if p.is_file():
        if p.name == "transforms.json":
            return "nerfstudio"
        if p.name.startswith("transforms_") and p.suffix == ".json":
            return "blender"
        if p.name == "poses_bounds.npy":
            return "llff"
        if p.suffix == ".json":
            return "nerfstudio"
        if is_video(p):
            raise InputError(p, process_hint(p))
        raise InputError(p, "not a capture: expected a directory, transforms.json, transforms_train.json or poses_bounds.npy")
    if (p / "transforms.json").is_file():
        return "nerfstudio"
    if (p / "transforms_train.json").is_file():
        return "blender"
    if (p / "poses_bounds.npy").is_file():
        return "llff"
    if any((c / "cameras.bin").is_file() or (c / "cameras.txt").is_file() for c in (p, p / "sparse" / "0", p / "sparse")):
        return "colmap"
    if is_unposed(p):
        raise InputError(p, process_hint(p))
    raise InputError(
        p,
        "no capture found (missing transforms file): expected transforms.json (nerfstudio), transforms_train.json "
        "(Blender), poses_bounds.npy (LLFF) or a COLMAP model (sparse/0/cameras.bin)",
    )


def load_capture(path: str | Path, options: CaptureOptions = CaptureOptions(), format: str = "auto") -> Capture:
    """Parse any supported capture; ``format='auto'`` detects it from the files present."""
    fmt = detect_format(path) if format == "auto" else format
    parsers = {"nerfstudio": parse_nerfstudio, "blender": parse_blender, "llff": parse_llff, "colmap": parse_colmap}
    if fmt not in parsers:
        raise InputError(None, f"unknown capture format {fmt!r}; choose one of: auto, {', '.join(FORMATS)}")
    return parsers[fmt](path, options)


__all__ = [
    "Cameras",
    "Capture",
    "CaptureOptions",
    "CaptureWarning",
    "FORMATS",
    "detect_format",
    "load_capture",
    "parse_blender",
    "parse_colmap",
    "parse_llff",
    "parse_nerfstudio",
]
