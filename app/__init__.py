"""FieldForge application: CLI, trainer, checkpoints, exporters (the only layer that touches user files)."""

__version__ = "0.1.0"
