"""The viewer's optional extra: viser in its tested release, checked before a command writes anything.

viser is not a core dependency (nerfstudio pins ``viser==0.2.7``; the viewer needs 1.1, whose web client must
match the server), so ``fieldforge view`` and ``train ... --viewer`` call :func:`require_viewer` first and
nothing else of FieldForge imports viser at import time.
"""

import importlib
import importlib.metadata
import importlib.util
import re

from fieldforge.data.errors import InputError

VISER = (1, 1)
"""The viser release (major, minor) the viewer is tested with: pyproject.toml's ``viewer = ["viser>=1.1,<1.2"]``."""
INSTALL = 'pip install "fieldforge[viewer]"'


def _release(version: str) -> tuple[int, int] | None:
    found = re.match(r"(\d+)\.(\d+)", version)
    return (int(found[1]), int(found[2])) if found else None


def require_viewer(purpose: str) -> None:
    """Raise ``InputError`` (one line, how to install it) unless viser 1.1 can be imported here."""
    want = ".".join(map(str, VISER))
    try:
        viser = importlib.import_module("viser")
    except ImportError:
        raise InputError(None, f"{purpose} needs the viewer extra (viser {want}), which is not installed: {INSTALL}") from None
    try:
        version = importlib.metadata.version("viser")  # viser 0.2.7 has no __version__
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(viser, "__version__", "unknown"))
    if _release(version) == VISER:
        return
    if importlib.util.find_spec("nerfstudio") is not None:
        raise InputError(None, f"{purpose} needs viser {want}, but this environment has nerfstudio's viser {version}: the viewer "
                               f"cannot share nerfstudio's environment; run it from one with {INSTALL} (e.g. the main .venv)")
    raise InputError(None, f"{purpose} needs viser {want}, found viser {version}: {INSTALL}")


__all__ = ["INSTALL", "VISER", "require_viewer"]
