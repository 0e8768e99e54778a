"""KiloNeRF models for the distiller, the fine-tuner, benchmarks and the viewer: use only these functions.

A KiloNeRF model is any model built from a ``kilonerf`` preset (``fieldforge train image|sdf|nerf --method
kilonerf``): a ``Field`` (images, SDFs) or a ``NerfModel`` whose network is a tile bank
(:class:`~fieldforge.fields.networks.kilonerf.TileBank`). Pass models as ``load_run``/``build_model``
return them (DDP / ``torch.compile`` wrappers are stripped here); points are in the model's input frame
(world points of a field, normalized-frame points of a ``NerfModel``). Nothing else needs to look inside
a concrete class::

    from fieldforge.fields import kilonerf as kn

    kn.has_tiles(model)                          # True for kilonerf models (False: the others)
    t = kn.n_tiles(model)                        # T tiles (16 along the box's longest axis by default)
    ids = kn.tile_ids(model, points)             # (n,) tile of each point; outside the box: clamped
    pts, ids = kn.sample_in_tiles(model, 128, generator)   # (T·128, d) uniform points in every tile, tile-major
    q99 = kn.per_tile_quantile(err, ids, t, 0.99)          # (T,) per-tile 0.99-quantile of a per-point error (NaN: no point)
    kn.fill_occupancy(model, teacher.density)    # NeRF: the model's grid from any σ function, 3×3×3 sub-samples, τ = 10
    render = kn.kilonerf_render_config(config.render)      # early ray termination at T < 0.01 (KiloNeRF)
    names = kn.VIEW_DEPENDENT_GROUPS             # param-group names of the direction + RGB layers
    params = kn.view_dependent_parameters(model) # their parameters ([] for images/SDFs)
    loss = loss + kn.view_dependent_penalty(model)   # fine-tuning: 1e-6 · Σ‖p‖₂ over them (KiloNeRF)
    seconds, rgb = kn.time_render(model, c2w, intrinsics, width, height, background)  # one timed frame
    colors = kn.tile_colors(ids)                 # (n, 3) a distinct colour per tile (a "tile id" render mode)

KiloNeRF distils α = 1 − exp(−σ·δ) (bounded) rather than σ, and RGB, per tile (``sample_in_tiles`` gives the
points, ``per_tile_quantile`` the per-tile 0.99-quantile of the squared error that the paper monitors), then
fine-tunes on the training images with L2 on ``view_dependent_parameters`` only. Rendering goes through the
one renderer (``NerfModel.render_image``): empty-space skipping with the occupancy grid and early ray
termination from ``RenderConfig``.
"""

import time
from dataclasses import replace

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from fieldforge.fields.field import Field
from fieldforge.fields.kernels.tiles_reference import tile_index
from fieldforge.fields.networks.kilonerf import TileBank
from fieldforge.fields.radiance_model import NerfModel, RenderConfig
from fieldforge.fields.rendering.contraction import uncontract
from fieldforge.fields.rendering.occupancy_from_density import KILONERF_SUBSAMPLES, KILONERF_THRESHOLD, fill_occupancy_grid
from fieldforge.fields.wrapping import unwrap

VIEW_DEPENDENT_GROUPS: tuple[str, ...] = ("radiance.network",)
"""Parameter groups (``model.param_groups(lr)`` names) of KiloNeRF's view-dependent part: the per-tile
direction layer and RGB layer (the radiance head's colour tile bank)."""

KILONERF_EARLY_STOP = 0.01
"""Early ray termination: stop a ray once its transmittance is below this (KiloNeRF)."""


def _field(model: nn.Module) -> Field:
    model = unwrap(model)
    field = model.field if isinstance(model, NerfModel) else model
    if not isinstance(field, Field):
        raise TypeError(f"expected a field or a NerfModel, got {type(model).__name__}")
    return field


def _bank(model: nn.Module) -> TileBank:
    network = _field(model).network
    if not isinstance(network, TileBank):
        raise ValueError(f"not a KiloNeRF model: its network is {type(network).__name__}, not a tile bank (train it with --method kilonerf)")
    return network


def has_tiles(model: nn.Module) -> bool:
    """Whether the model is a KiloNeRF tile bank (``tile_ids`` and the rest apply)."""
    try:
        return isinstance(_field(model).network, TileBank)
    except TypeError:
        return False


def n_tiles(model: nn.Module) -> int:
    return _bank(model).n_tiles


def resolution(model: nn.Module) -> tuple[int, ...]:
    """Tiles per axis."""
    return tuple(_bank(model).resolution)


def _to_unit(model: nn.Module, points: Tensor) -> Tensor:
    inner = unwrap(model)
    field = _field(inner)
    p = inner.to_field(points) if isinstance(inner, NerfModel) else points
    return field.to_unit(p)


def _from_unit(model: nn.Module, unit: Tensor) -> Tensor:
    inner = unwrap(model)
    field = _field(inner)
    lo, hi = field.bbox[0], field.bbox[1]
    p = lo + unit * (hi - lo)
    if isinstance(inner, NerfModel) and inner.contracted:
        slo, shi = inner.scene_box[0], inner.scene_box[1]
        p = uncontract(p) * ((shi - slo) / 2) + (slo + shi) / 2
    return p


def tile_ids(model: nn.Module, points: Float[Tensor, "n d"]) -> Int[Tensor, " n"]:
    """Tile of each point ``(n,)`` (points in the model's input frame; outside the box: the nearest tile)."""
    bank = _bank(model)
    return tile_index(_to_unit(model, points), bank.resolution)[0]


def sample_in_tiles(
    model: nn.Module, per_tile: int, generator: torch.Generator | None = None
) -> tuple[Float[Tensor, "m d"], Int[Tensor, " m"]]:
    """``per_tile`` uniform points inside every tile, tile-major: ``(T·per_tile, d)`` points in the model's
    input frame and their tile ids ``(T·per_tile,)`` (KiloNeRF distils each tiny MLP on its own cell)."""
    bank = _bank(model)
    res = torch.tensor(bank.resolution)
    t = bank.n_tiles
    ids = torch.arange(t).repeat_interleave(per_tile)
    ijk, rem = [], ids.clone()
    for r in reversed(bank.resolution):
        ijk.append(rem % r)
        rem = rem // r
    ijk = torch.stack(ijk[::-1], dim=-1).float()
    jitter = torch.rand(ids.shape[0], len(bank.resolution), generator=generator)
    unit = ((ijk + jitter) / res).clamp(max=1.0 - 1e-6)
    device = _field(model).bbox.device
    return _from_unit(model, unit.to(device)), ids.to(device)


def per_tile_quantile(errors: Float[Tensor, " n"], ids: Int[Tensor, " n"], n: int, q: float = 0.99) -> Float[Tensor, " t"]:
    """The ``q``-quantile (linear interpolation, as ``torch.quantile``) of ``errors`` within each tile ``(n,)``;
    NaN for tiles without points."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    errors = errors.detach().float().reshape(-1)
    ids = ids.long().reshape(-1)
    if errors.numel() == 0:
        return torch.full((n,), float("nan"), device=errors.device)
    counts = torch.bincount(ids, minlength=n)
    order = torch.argsort(errors, stable=True)
    order = order[torch.argsort(ids[order], stable=True)]  # by tile, errors ascending within a tile
    sorted_err = errors[order]
    starts = torch.cumsum(counts, 0) - counts
    pos = q * (counts - 1).clamp(min=0).float()
    lo, hi = pos.floor().long(), pos.ceil().long()
    frac = pos - lo.float()
    last = sorted_err.shape[0] - 1
    out = sorted_err[(starts + lo).clamp(max=last)] * (1 - frac) + sorted_err[(starts + hi).clamp(max=last)] * frac
    return torch.where(counts > 0, out, torch.full_like(out, float("nan")))


def fill_occupancy(
    model: nn.Module, sigma_fn, threshold: float = KILONERF_THRESHOLD, subsamples: int = KILONERF_SUBSAMPLES
) -> float:
    """Set a NerfModel's occupancy grid from ``sigma_fn(points (m, 3)) → σ (m,)`` (points in the model's
    input frame: e.g. a teacher's ``density``, or the model's own): a cell is occupied when any of its
    ``subsamples³`` sub-samples has ``σ > threshold``. Returns the occupied fraction."""
    inner = unwrap(model)
    if not isinstance(inner, NerfModel):
        raise TypeError(f"occupancy grids belong to radiance models, got {type(inner).__name__}")
    if inner.contracted:
        def field_sigma(p: Tensor) -> Tensor:  # the grid lives in contracted (field) space
            slo, shi = inner.scene_box[0], inner.scene_box[1]
            return sigma_fn(uncontract(p) * ((shi - slo) / 2) + (slo + shi) / 2)
    else:
        field_sigma = sigma_fn
    return fill_occupancy_grid(inner.grid, field_sigma, threshold, subsamples, step_size=inner.step_size, chunk=inner.render_config.render_samples)


def kilonerf_render_config(render: RenderConfig) -> RenderConfig:
    """``render`` with KiloNeRF's early ray termination (transmittance < 0.01)."""
    return replace(render, early_stop_eps=KILONERF_EARLY_STOP)


def view_dependent_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of :data:`VIEW_DEPENDENT_GROUPS` (empty for models without a view-dependent branch)."""
    groups = unwrap(model).param_groups(1.0)
    return [p for g in groups if g.get("name") in VIEW_DEPENDENT_GROUPS for p in g["params"]]


KILONERF_L2 = 1e-6
"""Weight of the fine-tuning regularizer on the view-dependent layers (KiloNeRF)."""


def view_dependent_penalty(model: nn.Module, weight: float = KILONERF_L2) -> Tensor:
    """KiloNeRF's fine-tuning regularizer ``weight · Σ_p ‖p‖₂`` over :func:`view_dependent_parameters` (the
    paper's code adds the unsquared norm of each weight and bias tensor); a zero scalar when there are none."""
    params = view_dependent_parameters(model)
    if not params:
        return torch.zeros(())
    return weight * torch.stack([p.norm() for p in params]).sum()


def tile_colors(ids: Int[Tensor, " n"]) -> Float[Tensor, "n 3"]:
    """A fixed, well-spread colour per tile id ``(n, 3)`` in [0.15, 1] (golden-ratio hues), for tile-id renders."""
    h = (ids.double() * 0.6180339887498949) % 1.0
    k = torch.tensor([0.0, 2.0 / 3.0, 1.0 / 3.0], dtype=torch.float64, device=ids.device)
    rgb = 0.5 + 0.5 * torch.cos(2 * torch.pi * (h[:, None] + k))
    return (0.15 + 0.85 * rgb).float()


@torch.no_grad()
def time_render(
    model: nn.Module, c2w: Tensor, intrinsics: Tensor, width: int, height: int, background: Tensor,
    distortion: Tensor | None = None, repeats: int = 1,
) -> tuple[float, Tensor]:
    """Seconds per frame (best of ``repeats``, CUDA synchronized) and the rendered ``(h, w, 3)`` image of one
    camera through ``NerfModel.render_image`` (its render config: skipping, early termination)."""
    inner = unwrap(model)
    if not isinstance(inner, NerfModel):
        raise TypeError(f"time_render renders radiance models, got {type(inner).__name__}")
    cuda = inner.scene_box.is_cuda
    best, rgb = float("inf"), None
    for _ in range(max(1, repeats)):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        rgb, _, _ = inner.render_image(c2w, intrinsics, width, height, distortion, background)
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    assert rgb is not None
    return best, rgb


__all__ = [
    "KILONERF_EARLY_STOP",
    "KILONERF_L2",
    "VIEW_DEPENDENT_GROUPS",
    "fill_occupancy",
    "has_tiles",
    "kilonerf_render_config",
    "n_tiles",
    "per_tile_quantile",
    "resolution",
    "sample_in_tiles",
    "tile_colors",
    "tile_ids",
    "time_render",
    "view_dependent_parameters",
    "view_dependent_penalty",
]
