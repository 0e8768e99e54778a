"""Integrations with other tools, each an optional extra imported only when that tool is installed.

``nerfstudio/``: FieldForge methods for ``ns-train`` and nerfstudio checkpoints as distillation teachers
(``pip install "fieldforge[nerfstudio]"``). Nothing here is imported by the rest of FieldForge unless the
user asks for the integration; :func:`require` turns a missing extra into one clear error.
"""

import importlib.util

from fieldforge.data.errors import InputError

INSTALL_HINTS = {
    "nerfstudio": 'pip install "fieldforge[nerfstudio]" in a virtual environment of its own (nerfstudio pins '
    "viser 0.2.7, numpy<2; `make test-nerfstudio` builds one in .venv-nerfstudio)",
}


def available(tool: str) -> bool:
    """Whether ``tool`` can be imported (checked without importing it)."""
    return importlib.util.find_spec(tool) is not None


def require(tool: str, what: object, purpose: str) -> None:
    """Raise ``InputError(what, …)`` saying how to install ``tool`` when it is missing."""
    if not available(tool):
        raise InputError(what, f"{purpose} needs {tool}, which is not installed: {INSTALL_HINTS[tool]}")


__all__ = ["INSTALL_HINTS", "available", "require"]
