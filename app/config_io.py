"""Config dataclasses ⇄ YAML, with type tags so a run directory alone rebuilds its exact config."""

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import yaml


def to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"_type": f"{type(obj).__module__}:{type(obj).__qualname__}"}
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
            module, _, qualname = obj["_type"].partition(":")
            cls: Any = importlib.import_module(module)
            for part in qualname.split("."):
                cls = getattr(cls, part)
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
