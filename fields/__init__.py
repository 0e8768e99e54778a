"""FieldForge neural fields: encodings, networks, fields, rendering, metrics (pure torch, no file I/O)."""

from fieldforge.fields.field import Field, FieldConfig, FieldOutputs

__all__ = ["Field", "FieldConfig", "FieldOutputs"]
