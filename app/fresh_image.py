"""FreSh for image fields: render every candidate at initialization, rank by spectral distance, log it.

``select_image_field`` is what ``fieldforge train image --fresh`` runs before it builds the field; the
scoring itself is the generic ``fields.fresh.fresh_select``.
"""

import json
from dataclasses import replace

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from fieldforge.app.atomic import atomic_write_text
from fieldforge.app.config import ImageTrainConfig
from fieldforge.app.runs import RunDir
from fieldforge.data.errors import InputError
from fieldforge.data.samplers import pixel_coords
from fieldforge.fields.field import Field, FieldConfig
from fieldforge.fields.fresh import FreshCandidate, FreshConfig, FreshResult, candidate_configs, fresh_select, init_render_config, resize_to_cube

console = Console(stderr=True)


def render_at_init(field_config: FieldConfig, seed: int, height: int, width: int, channels: int, max_steps: int,
                   device: torch.device, chunk: int = 65536) -> Tensor:
    """The untrained field of ``field_config`` (seeded) on an ``height × width`` pixel grid, ``(h, w, c)`` on CPU."""
    torch.manual_seed(seed)
    field = Field(init_render_config(field_config, seed), in_dim=2, out_dim=channels, max_steps=max_steps).to(device).eval()
    coords = pixel_coords(height, width).to(device)
    with torch.no_grad():
        values = torch.cat([field(coords[i : i + chunk]).values.float() for i in range(0, coords.shape[0], chunk)])
    return values.cpu().reshape(height, width, channels)


def image_candidates(field_config: FieldConfig, fresh: FreshConfig, target_hw: tuple[int, int], channels: int,
                     max_steps: int, device: torch.device) -> tuple[str, list[tuple[FreshCandidate, FieldConfig]]]:
    """One render-at-init candidate per value of the field's tunable hyperparameter."""
    try:
        parameter, configs = candidate_configs(field_config, fresh.values)
    except LookupError as e:
        raise InputError(None, f"--fresh: {e}") from None
    h, w = target_hw
    side = fresh.spectrum_side(min(h, w))
    if side is None:  # full resolution: render the image grid, the spectrum resizes both the same way
        rh, rw = h, w
    else:  # render the square the spectrum is taken on (optionally supersampled)
        rh = rw = side * fresh.supersample

    def make(cfg: FieldConfig):
        def render(seed: int) -> Tensor:
            out = render_at_init(cfg, seed, rh, rw, channels, max_steps, device)
            return out if side is None or fresh.supersample == 1 else resize_to_cube(out, side, 2)

        return render

    return parameter.name, [(FreshCandidate(label, value, make(cfg)), cfg) for label, value, cfg in configs]


def select_image_field(config: ImageTrainConfig, target: Tensor, device: torch.device) -> tuple[FieldConfig, FreshResult]:
    """Run FreSh on an image target ``(h, w, c)``; returns the chosen field config and the ranking."""
    fresh = config.fresh_search
    h, w, c = target.shape
    parameter, cands = image_candidates(config.field, fresh, (h, w), c, config.trainer.steps, device)
    side = fresh.spectrum_side(min(h, w))
    result = fresh_select([cand for cand, _ in cands], target, seeds=fresh.seeds, crop=fresh.crop, side=side, parameter=parameter)
    chosen = next(cfg for cand, cfg in cands if cand.label == result.best.label)
    return chosen, result


def ranking_table(result: FreshResult, title: str = "FreSh ranking") -> Table:
    table = Table(title=f"{title} of {result.parameter}", caption=f"{result.seeds} seeds, K={result.crop}, {result.seconds:.1f} s")
    for col in ("rank", "candidate", "W1 distance", "± s.e."):
        table.add_column(col, justify="right")
    for i, s in enumerate(result.ranking, 1):
        table.add_row(str(i), s.label, f"{s.distance:.3f}", f"{s.stderr:.3f}")
    return table


def record_fresh(result: FreshResult, run: RunDir, what: str = "") -> None:
    """Print the ranking and the pick, and write ``fresh.json`` into the run (every task's --fresh)."""
    console.print(ranking_table(result, f"FreSh ranking ({what})" if what else "FreSh ranking"))
    console.print(f"FreSh picked {result.best.label} (selection took {result.seconds:.1f} s)")
    atomic_write_text(run.path / "fresh.json", json.dumps(result.to_dict(), indent=1))


def apply_fresh(config: ImageTrainConfig, target: Tensor, run: RunDir, device: torch.device) -> ImageTrainConfig:
    """Select the field with FreSh, print the ranking, write ``fresh.json`` and the updated ``config.yaml``."""
    chosen, result = select_image_field(config, target, device)
    record_fresh(result, run)
    config = replace(config, field=chosen)
    run.write_config(config)
    return config
