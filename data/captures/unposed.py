"""Inputs without poses: a folder of photos or a video, which ``fieldforge capture process`` turns into a capture."""

from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
"""Photo files ``capture process`` reads (case-insensitive)."""
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm")
"""Video files ``capture process`` decodes (with imageio-ffmpeg)."""


def unposed_images(folder: Path) -> list[Path]:
    """The photo files directly in ``folder``, sorted by name (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def is_unposed(path: Path) -> bool:
    """A video, or a folder of photos that holds no capture (no transforms file or COLMAP model)."""
    return is_video(path) or len(unposed_images(path)) > 0


def default_capture_dir(path: Path) -> Path:
    """Where ``--process True`` writes the capture of ``path``: beside it, named ``<name>-capture``."""
    path = Path(path)
    return path.parent / f"{path.stem if path.is_file() else path.name}-capture"


def process_hint(path: Path) -> str:
    """The one-line advice for an unposed input given where a capture is expected."""
    kind = "a video" if is_video(path) else f"{len(unposed_images(path))} photos without camera poses"
    out = default_capture_dir(path)
    return (
        f"{kind}: compute the poses first with `fieldforge capture process --input {path} --output {out}` "
        f"and train on {out} (or add --process True to do both)"
    )


__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "default_capture_dir", "is_unposed", "is_video", "process_hint", "unposed_images"]
