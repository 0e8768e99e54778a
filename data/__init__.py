"""FieldForge data: parse, validate and normalize user files into dataclasses (no networks here)."""
