"""Atomic file writes: write to a temp file in the same directory, fsync, then rename over the target.

Temp files are named ``.<name>.<random>.tmp`` (``.<stem>.<random>.tmp<suffix>`` for writers that need the
suffix): a process killed before the rename leaves one, which ``is_stale_temp`` recognizes. Renaming onto a
symbolic link replaces the link; the write never follows it.
"""

import re

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files 0600


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_path(path: str | Path):
    """Context manager yielding a temp path; renamed onto ``path`` on success (for writers that need a filename)."""
    import contextlib

    @contextlib.contextmanager
    def _ctx():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}")
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, _FILE_MODE)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)

    return _ctx()


_TEMP = re.compile(r"^\..+\.tmp(\.[A-Za-z0-9]+)?$")


def is_stale_temp(path: Path) -> bool:
    """A temp file of ``atomic_write_bytes`` / ``atomic_path`` (left behind only by a killed process)."""
    return _TEMP.match(path.name) is not None and path.is_file() and not path.is_symlink()
