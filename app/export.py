"""Exporters: load a trained field from its run directory and write images (later: meshes, videos)."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from app.atomic import atomic_write_bytes
from app.checkpoint import load_weights
from app.config import ImageTrainConfig
from app.runs import RunDir
from app.train import build_image_field
from data.errors import InputError
from data.images import decode, encode_image
from data.samplers import pixel_coords
from fields.field import Field
from fields.metrics import psnr


@dataclass(frozen=True)
class ExportImageConfig:
    """Render an image field at any resolution (scale > 1 is super-resolution)."""

    run: Path = Path("")
    """Run directory of an image field."""
    scale: float = 1.0
    """Output size relative to the training image."""
    format: Literal["png", "exr"] = "png"
    """PNG: 8-bit sRGB. EXR: float32 linear."""
    step: int | None = None
    """Checkpoint step to export (default: newest)."""
    output: Path | None = None
    """Output file (default: <run>/exports/image-x<scale>.<format>)."""
    chunk: int = 262144
    """Pixels per forward pass (bounds memory)."""


def load_image_field(run: RunDir, step: int | None = None) -> tuple[ImageTrainConfig, Field, dict, int]:
    config = run.read_config()
    if not isinstance(config, ImageTrainConfig):
        raise InputError(run.path, f"not an image run (its config is {type(config).__name__})")
    info = json.loads((run.path / "data.json").read_text())
    ckpts = dict(run.checkpoints())
    if not ckpts:
        raise InputError(run.path, "run has no checkpoint yet")
    chosen = max(ckpts) if step is None else step
    if chosen not in ckpts:
        raise InputError(run.path, f"no checkpoint at step {step} (have {sorted(ckpts)})")
    field = build_image_field(config, info["channels"])
    load_weights(ckpts[chosen], field)
    return config, field.eval(), info, chosen


def export_image(config: ExportImageConfig) -> tuple[Path, dict[str, float]]:
    run = RunDir.open(config.run)
    if not config.scale > 0:
        raise InputError(None, f"--scale must be positive, got {config.scale}")
    train_config, field, info, step = load_image_field(run, config.step)
    h, w = max(1, round(info["height"] * config.scale)), max(1, round(info["width"] * config.scale))
    coords = pixel_coords(info["height"], info["width"], config.scale)
    with torch.no_grad():
        values = torch.cat([field(coords[i : i + config.chunk]).values for i in range(0, coords.shape[0], config.chunk)])
    stored = values.reshape(h, w, info["channels"]).clamp(0, 1)
    metrics: dict[str, float] = {"step": step, "height": h, "width": w}
    if config.scale == 1.0:
        from data.images import load_image

        try:
            target = load_image(train_config.data, train_config.max_pixels, train_config.downscale, train_config.fit_budget).encoded()
            metrics["psnr"] = psnr(stored, target)
        except InputError:
            pass  # the training image moved; the export itself does not need it
    linear = decode(stored, info["transfer"], info["has_alpha"])
    out = config.output or run.exports_dir / f"image-x{config.scale:g}.{config.format}"
    atomic_write_bytes(out, encode_image(linear, config.format, info["has_alpha"]))
    return out, metrics
