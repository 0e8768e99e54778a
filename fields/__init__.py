"""FieldForge neural fields: encodings, networks, fields, rendering, metrics (pure torch, no file I/O)."""

from fieldforge.fields.field import Field, FieldConfig, FieldOutputs, RadianceField, SDFField, make_field
from fieldforge.fields.wrapping import unwrap

__all__ = ["Field", "FieldConfig", "FieldOutputs", "RadianceField", "SDFField", "make_field", "unwrap"]
