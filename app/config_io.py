"""Config dataclasses ⇄ YAML, with type tags so a run directory alone rebuilds its exact config.

A tag is ``module:qualname`` of a config dataclass. Loading never runs code from the file: a tag must
name a dataclass inside the ``fieldforge`` package (anything else is refused), and tags written before
the package rename (``app.config:…``, ``fields.…``, ``data.…``) are mapped explicitly.
"""

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import yaml

PACKAGE = "fieldforge"

MOVED_TAGS = {
    "app.config:ImageTrainConfig": "fieldforge.app.tasks.image:ImageTrainConfig",
    "app.config_sdf:SDFTrainConfig": "fieldforge.app.tasks.sdf:SDFTrainConfig",
    "app.config_sdf:SDFSamplingConfig": "fieldforge.app.tasks.sdf:SDFSamplingConfig",
    "app.config_sdf:ImplicitLossConfig": "fieldforge.app.tasks.sdf:ImplicitLossConfig",
    "app.config_nerf:NerfTrainConfig": "fieldforge.app.tasks.nerf:NerfTrainConfig",
    "app.config_nerf:RenderConfig": "fieldforge.fields.radiance_model:RenderConfig",
}
"""Tags of classes that moved (written by FieldForge ≤ 0.1 before the package rename)."""
OLD_PREFIXES = ("app.", "fields.", "data.")
"""Other old tags only gain the package prefix (``fields.field:FieldConfig`` → ``fieldforge.fields.field:FieldConfig``)."""


CONFIG_SUFFIXES = ("Config", "Options")
"""Config dataclasses are named ``*Config`` / ``*Options``: together with the package prefix, the allow-list
of what a tag may build (no other class of the package, nothing outside it)."""


class UnknownTagError(ValueError):
    """A config tag that does not name a FieldForge config dataclass."""


def resolve_tag(tag: str) -> type:
    """The config dataclass a tag names (old tags mapped); ``UnknownTagError`` for anything else."""
    tag = MOVED_TAGS.get(tag, tag)
    if tag.startswith(OLD_PREFIXES):
        tag = f"{PACKAGE}.{tag}"
    module, _, qualname = tag.partition(":")
    if not module.startswith(PACKAGE + ".") or not qualname or not all(p.isidentifier() for p in module.split(".") + qualname.split(".")):
        raise UnknownTagError(f"type tag {tag!r} does not name a FieldForge config")
    if not qualname.endswith(CONFIG_SUFFIXES):  # checked before anything is imported
        raise UnknownTagError(f"type tag {tag!r} does not name a FieldForge config class (*Config / *Options)")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise UnknownTagError(f"type tag {tag!r} names no FieldForge config (written by another version?)") from None
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise UnknownTagError(f"type tag {tag!r} is not a config dataclass")
    return obj


def type_tag(obj: Any) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"_type": type_tag(obj)}
        for f in dataclasses.fields(obj):
            out[f.name] = to_plain(getattr(obj, f.name))
        return out
    if isinstance(obj, Path):
        return {"_path": str(obj)}
    if isinstance(obj, tuple):
        return {"_tuple": [to_plain(v) for v in obj]}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "_type" in obj:
            cls = resolve_tag(str(obj["_type"]))
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: from_plain(v) for k, v in obj.items() if k in known})
        if set(obj) == {"_path"}:
            return Path(obj["_path"])
        if set(obj) == {"_tuple"}:
            return tuple(from_plain(v) for v in obj["_tuple"])
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_plain(config), sort_keys=False)


def load_yaml(text: str) -> Any:
    return from_plain(yaml.safe_load(text))
