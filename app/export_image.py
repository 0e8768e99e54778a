"""``fieldforge export image``: an image field rendered at any resolution (PNG / EXR), a PINs level of detail,
or SAPE's frequency map."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from fieldforge.app.atomic import atomic_write_bytes
from fieldforge.app.loader import load_run
from fieldforge.app.runs import RunDir
from fieldforge.data.errors import InputError
from fieldforge.data.formats import encode_png
from fieldforge.data.images import decode, encode_image
from fieldforge.data.memory import require_memory
from fieldforge.data.samplers import pixel_coords
from fieldforge.fields.capabilities import HasLevels, HasProgressMap
from fieldforge.fields.field import Field
from fieldforge.fields.metrics import psnr


@dataclass(frozen=True)
class ExportImageConfig:
    """Render an image field at any resolution (scale > 1 is super-resolution)."""

    run: Path
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
    level: int | None = None
    """Render only levels 1..LEVEL of a level-of-detail field (PINs): a coarser but valid image."""
    sape_map: bool = False
    """Instead of the image, write the SAPE mask-level map (bright = more frequencies unmasked) as a grayscale PNG."""


def export_image(config: ExportImageConfig) -> tuple[Path, dict[str, float]]:
    if not config.scale > 0:
        raise InputError(None, f"--scale must be positive, got {config.scale}")
    loaded = load_run(config.run, config.step, kinds=("image",))
    run, train_config, field, info, step = loaded.run, loaded.config, loaded.model, loaded.info, loaded.step
    h, w = max(1, round(info["height"] * config.scale)), max(1, round(info["width"] * config.scale))
    # coordinates (2 floats), values, clamped, linear copies (c floats each) and the encoded file per pixel
    require_memory(h * w * (2 * 4 + 3 * 4 * int(info["channels"]) + 8), f"exporting a {w}×{h} image", "use a smaller --scale")
    coords = pixel_coords(info["height"], info["width"], config.scale)
    if config.sape_map:
        return _export_progress_map(config, run, field, coords, h, w, step)
    if config.level is not None:
        _truncate(field, config.level, run)
    with torch.no_grad():
        values = torch.cat([field(coords[i : i + config.chunk]).values for i in range(0, coords.shape[0], config.chunk)])
    if not bool(torch.isfinite(values).all()):
        raise InputError(run.path, f"the field at step {step} renders NaN or infinite values; nothing written (try an earlier --step)")
    stored = values.reshape(h, w, info["channels"]).clamp(0, 1)
    metrics: dict[str, float] = {"step": step, "height": h, "width": w}
    if config.scale == 1.0:
        from fieldforge.data.images import load_image

        try:
            target = load_image(train_config.data, train_config.max_pixels, train_config.downscale, train_config.fit_budget).encoded()
            metrics["psnr"] = psnr(stored, target)
        except InputError:
            pass  # the training image moved; the export itself does not need it
    linear = decode(stored, info["transfer"], info["has_alpha"])
    suffix = "" if config.level is None else f"-level{config.level}"
    out = config.output or run.exports_dir / f"image-x{config.scale:g}{suffix}.{config.format}"
    atomic_write_bytes(out, encode_image(linear, config.format, info["has_alpha"]))
    return out, metrics


def _truncate(field: Field, level: int, run: RunDir) -> None:
    """Limit a level-of-detail component (``HasLevels``) to levels ``1..level``."""
    parts = [m for m in (field.network, field.encoding) if isinstance(m, HasLevels)]
    if not parts:
        raise InputError(run.path, "--level needs a field with levels (the pins method); this run's network has none")
    if not 1 <= level <= parts[0].n_levels:
        raise InputError(None, f"--level must be in 1..{parts[0].n_levels}, got {level}")
    parts[0].set_level(level)


def progress_map_image(grid: Tensor, coords: Tensor) -> np.ndarray:
    """Nearest-cell lookup of a 2D progress map ``(res, res)`` (axis 0 = u) at pixel coords ``(n, 2)`` → values."""
    res = grid.shape[0]
    cells = (coords * res).floor().long().clamp(0, res - 1)
    return grid[cells[:, 0], cells[:, 1]].cpu().numpy()


def _export_progress_map(config: ExportImageConfig, run: RunDir, field: Field, coords: Tensor, h: int, w: int, step: int) -> tuple[Path, dict[str, float]]:
    if not isinstance(field.encoding, HasProgressMap):
        raise InputError(run.path, "--sape-map needs a SAPE encoding (the sape method, or --encoding sape); this run has none")
    if config.format != "png":
        raise InputError(None, "--sape-map writes a PNG; drop --format exr")
    grid = field.encoding.progress_map()
    values = progress_map_image(grid, coords).reshape(h, w)
    png = encode_png(values)  # the map's values in [0, 1] as 8-bit grey, as they are
    out = config.output or run.exports_dir / "sape-map.png"
    atomic_write_bytes(out, png)
    metrics = {"step": step, "height": h, "width": w, "mean_unmasked": float(grid.mean()), "cells_at_max": float((grid >= 1.0).float().mean())}
    return out, metrics
