"""FieldForge: neural-field reconstruction. ``fieldforge.data`` (files → dataclasses), ``fieldforge.fields``
(encodings, networks, fields, rendering), ``fieldforge.app`` (tasks, trainer, exporters, CLI)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fieldforge")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0+unknown"
