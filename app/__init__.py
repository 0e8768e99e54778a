"""FieldForge application: tasks, trainer, checkpoints, exporters, CLI (the only layer that touches user files)."""
