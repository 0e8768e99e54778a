"""One validation pass over a parsed config tree: every number range-checked, paths that must be files or
folders checked, before anything is written. Messages name the option as the CLI spells it.

Rules, most specific first: ``RANGES[(Class, field)]``, then ``RANGES[field]``; every other float must be
finite and every other int ≥ 0 (``POSITIVE`` names must be ≥ 1). ``validate_config`` walks nested config
dataclasses and tuples; the CLI calls it after parsing and ``train`` calls it again for API users.
"""

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

from fieldforge.data.errors import InputError


@dataclass(frozen=True)
class Range:
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, v: float) -> bool:
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below

    def __str__(self) -> str:
        if self.hi == math.inf:
            return f"{'>' if self.lo_open else '≥'} {self.lo:g}"
        return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"


POSITIVE_REAL = Range(0, lo_open=True)
FRACTION = Range(0, 1)
NON_NEGATIVE = Range(0)

POSITIVE = {
    "steps", "batch_size", "log_every", "width", "n_levels", "features_per_level", "base_resolution", "max_resolution",
    "n_features", "n_kernels", "layers_per_level", "downscale", "max_pixels", "max_total_pixels", "crop", "seeds",
    "supersample", "steps_per_ray", "views", "eval_views", "eval_max_side", "chunk", "max_rays", "render_samples",
    "target_samples", "grid_resolution", "grid_update_every", "contraction_steps", "pool_size", "sign_rays",
    "normal_neighbours", "eval_points", "eval_resolution", "neighbours", "noise_k", "spacing_k", "geo_feat_dim",
    "longest_axis", "max_side", "frames", "fps", "num_blocks", "blur", "n_bands", "degree",
}
"""Int options that must be ≥ 1 (counts and sizes)."""

RANGES: dict[Any, Range] = {
    "lr": Range(0, 10, lo_open=True),
    "eps": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE,
    "final_lr_ratio": FRACTION,
    "betas": Range(0, 1, hi_open=True),
    "log2_table_size": Range(1, 30),
    "degree": Range(1, 8),
    "sigma": POSITIVE_REAL,
    "first_omega": POSITIVE_REAL,
    "hidden_omega": POSITIVE_REAL,
    "lr_multiplier": POSITIVE_REAL,
    "grid_lr_multiplier": POSITIVE_REAL,
    "init_scale": NON_NEGATIVE,
    "scale": POSITIVE_REAL,
    "scene_scale": POSITIVE_REAL,
    "spacing_scale": POSITIVE_REAL,
    "noise_scale": POSITIVE_REAL,
    "far": POSITIVE_REAL,
    "clamp_distance": POSITIVE_REAL,
    "off_surface_alpha": POSITIVE_REAL,
    "lipschitz": POSITIVE_REAL,
    "epsilon": POSITIVE_REAL,
    "block_spacing": POSITIVE_REAL,
    "padding": Range(0, 0.5, hi_open=True),
    "background": FRACTION,
    "min_opacity": FRACTION,
    "uniform_fraction": FRACTION,
    "window_start": FRACTION,
    "window_end": FRACTION,
    "schedule_end": FRACTION,
    "ramp": FRACTION,
    "grid_decay": FRACTION,
    "grid_update_fraction": FRACTION,
    "grid_threshold": NON_NEGATIVE,
    "alpha_thre": FRACTION,
    "early_stop_eps": FRACTION,
    "near_plane": NON_NEGATIVE,
    "holdout_every": NON_NEGATIVE,
    ("ExportMeshConfig", "resolution"): Range(8, 4096),
    ("ExportPointcloudConfig", "points"): Range(1),
    "port": Range(0, 65535),
    ("ExportMeshConfig", "level"): Range(),
    ("RBFConfig", "log_precision_init"): Range(),
    ("RBFConfig", "center_init"): NON_NEGATIVE,
    ("TileBankConfig", "resolution"): Range(1),
    ("DistillOptions", "occupancy_weight"): FRACTION,
    ("DistillOptions", "tile_points"): Range(1),
    ("RadianceHeadConfig", "density_bias"): Range(),
    "max_log2_frequency": Range(),
}
"""Ranges by field name (or ``(ConfigClass, field)``); ``Range()`` = any finite value (negative allowed)."""

OUTPUT_FILE_CONFIGS = ("ExportImageConfig", "ExportMeshConfig", "ExportVideoConfig", "ExportPointcloudConfig")
"""Configs whose ``output`` is a file (``export render`` writes a folder)."""


def option_name(path: tuple[str, ...]) -> str:
    return "--" + ".".join(path).replace("_", "-")


def _omits_prefix(cls: type, name: str) -> bool:
    try:
        hint = typing.get_type_hints(cls, include_extras=True).get(name)
    except Exception:  # unresolvable annotations: keep the prefix
        return False
    return typing.get_origin(hint) is typing.Annotated and tyro.conf.OmitArgPrefixes in typing.get_args(hint)[1:]


def validate_config(config: Any, prefix: tuple[str, ...] = (), paths: bool = True) -> None:
    """``InputError`` naming the option for the first value out of range in ``config`` (a config dataclass);
    ``paths``: also check output paths (not when reading a saved run)."""
    cls = type(config)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        path = prefix + (f.name,)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_config(value, prefix if _omits_prefix(cls, f.name) else path, paths)
        elif isinstance(value, Path) and paths:
            check_path(cls.__name__, f.name, value, path)
        elif isinstance(value, tuple):
            for v in value:
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    check_number(cls.__name__, f.name, v, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            check_number(cls.__name__, f.name, value, path)


def check_number(owner: str, name: str, value: float, path: tuple[str, ...]) -> None:
    option = option_name(path)
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(None, f"{option} must be a finite number, got {value}")
    rule = RANGES.get((owner, name)) or RANGES.get(name)
    if rule is None:
        rule = Range(1) if name in POSITIVE else NON_NEGATIVE if isinstance(value, int) else Range()
    if not rule.contains(value):
        raise InputError(None, f"{option} must be {rule}, got {value:g}")


def check_path(owner: str, name: str, value: Path, path: tuple[str, ...]) -> None:
    option = option_name(path)
    if name == "output_dir":
        for p in (value, *value.parents):
            if p.exists() and not p.is_dir():
                raise InputError(p, f"{option} must be a folder, but this is a file")
    elif name == "output" and owner in OUTPUT_FILE_CONFIGS and value.is_dir():
        raise InputError(value, f"{option} names a folder; give a file name")


__all__ = ["RANGES", "Range", "validate_config"]
