"""FreSh: pick an encoding hyperparameter before training by matching spectra (Kania et al. 2024).

For each candidate value (Fourier σ, PE max frequency, SIREN ω₀, …) the **untrained** model is
rendered over several seeds; the spectrum of each render is compared with the target's spectrum by the
1-D Wasserstein-1 distance, and the candidate with the smallest mean distance wins. Only that one is
then trained.

Spectrum (as FreSh's ``get_spectrum``): resize the signal to a square (cube) of side ``s``
(antialiased), take ``|FFT|`` over the spatial axes and sum it over channels, keep one of each
conjugate-symmetric pair of frequencies, sum the magnitudes along each anti-diagonal (all raw FFT
indices with equal index sum ``i + j (+ k)``: a "Manhattan frequency radius"), drop the DC entry and
keep the first ``K`` entries. Entry ``r − 1`` of the result holds index sum ``r``, so a sinusoid with
``c`` cycles across the square peaks at position ``c − 1``.

The selection API is generic: ``fresh_select`` takes one "render at init" callable per candidate
(``seed → signal``), so images, NeRF training views or SDF grids all use it. Which config attribute a
given encoding/network exposes to FreSh is declared once, in ``FRESH_PARAMETERS``
(``register_fresh_parameter`` adds more, e.g. the hash grid's finest resolution).
"""

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from scipy.stats import wasserstein_distance
from torch import Tensor

MAX_SIDE = 1024
"""Signals are resized to a square of side min(h, w), capped here (as FreSh does)."""


# -- spectrum --------------------------------------------------------------------------------------
def resize_to_cube(signal: Tensor, side: int, spatial_dims: int) -> Tensor:
    """Resize ``(*spatial, c)`` to ``(side,)*spatial_dims + (c,)``: antialiased bilinear in 2D, trilinear in 3D."""
    if tuple(signal.shape[:spatial_dims]) == (side,) * spatial_dims:
        return signal
    x = signal.movedim(-1, 0)[None].double()
    if spatial_dims == 2:
        y = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    elif spatial_dims == 3:
        y = F.interpolate(x, size=(side, side, side), mode="trilinear", align_corners=False)
    else:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return y[0].movedim(0, -1)


def nonredundant_mask(side: int, spatial_dims: int) -> Tensor:
    """Boolean ``(side,)*d`` mask keeping one frequency of each conjugate pair ``k ↔ −k mod side``.

    The kept member has the smaller raw index sum (ties: the lexicographically smaller index vector;
    self-conjugate frequencies are kept). In 2D this is exactly FreSh's ``get_2d_fft_mask``: the
    upper-left anti-triangle ``i + j ≤ s − 1`` with the axes cut at ``s // 2``, plus half of ``i + j = s``.
    """
    grids = torch.meshgrid(*([torch.arange(side)] * spatial_dims), indexing="ij")
    k = torch.stack(grids, -1)  # (..., d)
    p = (-k) % side
    sk, sp = k.sum(-1), p.sum(-1)
    # Lexicographic k ≤ p: compare the first differing coordinate.
    diff = p - k
    first = torch.argmax((diff != 0).int(), dim=-1, keepdim=True)
    lex_le = torch.gather(diff, -1, first)[..., 0] >= 0
    return (sk < sp) | ((sk == sp) & lex_le)


@functools.lru_cache(maxsize=16)
def _diagonal_bins(side: int, spatial_dims: int) -> tuple[Tensor, Tensor]:
    """The non-redundant mask and the raw index sum of every kept frequency."""
    mask = nonredundant_mask(side, spatial_dims)
    index_sum = sum(torch.meshgrid(*([torch.arange(side)] * spatial_dims), indexing="ij"))
    return mask, index_sum[mask]  # type: ignore[index]


def spectrum(
    signal: Float[Tensor, "..."],
    spatial_dims: int = 2,
    crop: int | None = 64,
    side: int | None = None,
    drop_dc: bool = True,
) -> Float[Tensor, " k"]:
    """FreSh spectrum of a channels-last signal ``(h, w, c)`` (or ``(d, h, w, c)`` with ``spatial_dims=3``).

    Args:
        crop: keep the first K entries after dropping DC (FreSh: 64 for images/SIREN, 128 for FF); None keeps all.
        side: resize to this side first (default: the smallest spatial side, capped at 1024).
    """
    if signal.ndim != spatial_dims + 1:
        raise ValueError(f"expected a (*spatial[{spatial_dims}], c) signal, got shape {tuple(signal.shape)}")
    s = min(int(min(signal.shape[:spatial_dims])), MAX_SIDE) if side is None else int(side)
    cube = resize_to_cube(signal.double(), s, spatial_dims)
    mag = torch.fft.fftn(cube, dim=tuple(range(spatial_dims))).abs().sum(-1)  # (s,)*d, summed over channels
    mask, kept_sums = _diagonal_bins(s, spatial_dims)
    spec = torch.bincount(kept_sums, weights=mag.cpu()[mask], minlength=spatial_dims * (s - 1) + 1)
    if drop_dc:
        spec = spec[1:]
    return spec if crop is None else spec[:crop]


def spectrum_distance(target: Tensor, model: Tensor) -> float:
    """1-D Wasserstein-1 distance between two spectra seen as distributions over their bin index.

    ``scipy.stats.wasserstein_distance`` normalizes the weights, so only the spectral shape matters. A
    model whose spectrum is zero (a constant output) is infinitely far.
    """
    u = target.detach().cpu().double().numpy()
    v = model.detach().cpu().double().numpy()
    if not (np.isfinite(v).all() and v.sum() > 0):
        return math.inf
    bins = np.arange(len(u))
    return float(wasserstein_distance(bins, bins[: len(v)], u_weights=u, v_weights=v))


# -- selection -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FreshCandidate:
    """One hyperparameter value and how to render the untrained model for it."""

    label: str
    value: float
    render: Callable[[int], Tensor]
    """``seed → signal`` at initialization, same layout as the target (``(*spatial, c)`` or ``(v, *spatial, c)``)."""


@dataclass
class FreshScore:
    label: str
    value: float
    distance: float
    """Mean Wasserstein distance over seeds (and views)."""
    stderr: float
    """Standard error of that mean over seeds."""
    distances: list[float]
    seconds: float


@dataclass
class FreshResult:
    ranking: list[FreshScore]
    """Candidates sorted by distance, best first."""
    parameter: str
    seeds: int
    crop: int | None
    side: int | None
    seconds: float
    """Wall time of the whole selection (renders + spectra)."""

    @property
    def best(self) -> FreshScore:
        return self.ranking[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "best": {"label": self.best.label, "value": self.best.value, "distance": self.best.distance},
            "seeds": self.seeds, "crop": self.crop, "side": self.side, "seconds": self.seconds,
            "ranking": [dataclasses.asdict(s) for s in self.ranking],
        }


def _views(signal: Tensor, spatial_dims: int) -> Tensor:
    """``(*spatial, c)`` → ``(1, *spatial, c)``; ``(v, *spatial, c)`` stays."""
    if signal.ndim == spatial_dims + 1:
        return signal[None]
    if signal.ndim == spatial_dims + 2:
        return signal
    raise ValueError(f"expected (*spatial, c) or (views, *spatial, c) with {spatial_dims} spatial axes, got {tuple(signal.shape)}")


def fresh_select(
    candidates: Sequence[FreshCandidate],
    target: Tensor,
    *,
    seeds: int = 10,
    crop: int | None = 64,
    side: int | None = None,
    spatial_dims: int = 2,
    parameter: str = "",
    on_candidate: Callable[[FreshScore], None] | None = None,
) -> FreshResult:
    """Rank candidates by the spectral distance of their untrained renders to ``target``.

    Each candidate is rendered with seeds ``0..seeds−1``; with several views (``(v, *spatial, c)``), a
    seed's distance is the mean over views. Returns the ranking (best first) with means and standard errors.
    """
    if not candidates:
        raise ValueError("FreSh needs at least one candidate")
    if seeds < 1:
        raise ValueError(f"FreSh needs at least one seed, got {seeds}")
    t0 = time.perf_counter()
    target_views = _views(target, spatial_dims)
    target_specs = [spectrum(t, spatial_dims, crop, side) for t in target_views]
    scores = []
    for cand in candidates:
        c0 = time.perf_counter()
        distances = []
        for seed in range(seeds):
            with torch.no_grad():
                out = _views(cand.render(seed), spatial_dims)
            if out.shape[0] != target_views.shape[0]:
                raise ValueError(f"candidate {cand.label!r} rendered {out.shape[0]} views, the target has {target_views.shape[0]}")
            ds = [spectrum_distance(ts, spectrum(o.float().cpu(), spatial_dims, crop, side)) for ts, o in zip(target_specs, out)]
            distances.append(float(np.mean(ds)))
        arr = np.asarray(distances)
        mean = float(arr.mean())
        se = float(arr.std() / math.sqrt(len(arr))) if np.isfinite(mean) else math.inf
        score = FreshScore(cand.label, cand.value, mean, se, distances, time.perf_counter() - c0)
        scores.append(score)
        if on_candidate is not None:
            on_candidate(score)
    ranking = sorted(scores, key=lambda s: (s.distance, s.value))
    return FreshResult(ranking, parameter, seeds, crop, side, time.perf_counter() - t0)


@dataclass(frozen=True)
class FreshSearch:
    """FreSh settings every task shares: candidates, seeds and spectrum size."""

    values: tuple[float, ...] = ()
    """Candidate values of the tuned hyperparameter (default: its grid: FF σ 1..20, SIREN ω₀ 10..200, PE top octave 1..12, hash-grid finest resolution 32..4096)."""
    seeds: int = 10
    """Random initializations per candidate (the distance is their mean)."""
    crop: int = 64
    """Spectrum entries K kept after dropping DC (FreSh: 64 for images and SIREN, 128 for Fourier features)."""


@dataclass(frozen=True)
class FreshConfig(FreshSearch):
    """FreSh settings for image fields (``train image --fresh``)."""
    full_resolution: bool = False
    """Compare spectra at the signal's smallest side (FreSh's default; renders every candidate at full size) instead of at 2·crop+1 (its --downscale option, far cheaper)."""
    supersample: int = 1
    """Render the untrained model at supersample × the spectrum side per axis, then antialias-downscale (1: sample it directly)."""

    def spectrum_side(self, signal_side: int) -> int | None:
        """Side the spectra are computed at (None: the signal's own smallest side, capped at 1024)."""
        return None if self.full_resolution else min(2 * self.crop + 1, signal_side)


@dataclass(frozen=True)
class VolumeFreshConfig(FreshSearch):
    """FreSh for SDF/occupancy fields: spectra of the field sampled on a cube (half of the image K, as FreSh's 3-D setting)."""

    seeds: int = 5
    """Random initializations per candidate (each one samples the whole cube)."""
    crop: int = 32
    """Spectrum entries K kept after dropping DC."""
    max_side: int = 32
    """Largest cube side the target and each untrained field are sampled on (side = min(2K+1, this))."""

    def volume_side(self) -> int:
        return max(8, min(2 * self.crop + 1, self.max_side))


@dataclass(frozen=True)
class NerfFreshConfig(FreshSearch):
    """FreSh for radiance fields: untrained renders of a few training views against those images."""

    crop: int = 32
    """Spectrum entries K (FreSh uses half of the image setting for NeRF)."""
    seeds: int = 3
    """Random initializations per candidate (each one renders every view)."""
    views: int = 2
    """Training views compared (spread evenly over the training split)."""
    steps_per_ray: int = 64
    """Ray-marching steps of the renders at initialization (the occupancy grid is all-occupied then)."""


# -- which hyperparameter each component exposes ---------------------------------------------------
@dataclass(frozen=True)
class FreshParameter:
    """A config attribute FreSh may tune, and its default candidate grid (FreSh's own grids where it has one)."""

    component: Literal["encoding", "network"]
    """Which part of the field config holds it."""
    attribute: str
    values: tuple[float, ...]
    integer: bool = False
    render_overrides: tuple[tuple[str, float], ...] = ()
    """Attributes of the same component set only for the renders at init (hash grid: a large table init)."""

    @property
    def name(self) -> str:
        return f"{self.component}.{self.attribute}"


FRESH_PARAMETERS: dict[type, FreshParameter] = {}
"""Exact config type → tunable parameter. Progressive encodings are deliberately absent: their untrained
output is masked, so its spectrum does not reflect the hyperparameter."""


def register_fresh_parameter(config_type: type, parameter: FreshParameter) -> None:
    """Declare which attribute of ``config_type`` FreSh tunes (one line per component, at import time)."""
    FRESH_PARAMETERS[config_type] = parameter


PROGRESSIVE_NETWORKS = ("PINsConfig",)
"""Networks that open their inputs progressively: at initialization they hide most of the encoding, so an
untrained render says little about its hyperparameter and FreSh refuses them (as it does SAPE and c2f)."""


def fresh_parameter(field_config: Any) -> FreshParameter:
    """The tunable parameter of a field config (its network first, e.g. SIREN's ω₀, then its encoding)."""
    network = type(getattr(field_config, "network", None)).__name__
    if network in PROGRESSIVE_NETWORKS:
        raise LookupError(f"FreSh cannot rank network {network}: it opens its frequency bands progressively, so its untrained output does not reflect them")
    for component in ("network", "encoding"):
        part = getattr(field_config, component, None)
        if part is not None and type(part) in FRESH_PARAMETERS and FRESH_PARAMETERS[type(part)].component == component:
            return FRESH_PARAMETERS[type(part)]
    enc, net = type(getattr(field_config, "encoding", None)).__name__, type(getattr(field_config, "network", None)).__name__
    known = ", ".join(sorted(t.__name__ for t in FRESH_PARAMETERS))
    raise LookupError(f"FreSh has no tunable hyperparameter for encoding {enc} / network {net} (supported: {known})")


def with_value(field_config: Any, parameter: FreshParameter, value: float) -> Any:
    """A copy of ``field_config`` with the parameter set to ``value``."""
    part = getattr(field_config, parameter.component)
    v = int(round(value)) if parameter.integer else float(value)
    return dataclasses.replace(field_config, **{parameter.component: dataclasses.replace(part, **{parameter.attribute: v})})


def init_render_config(field_config: Any, seed: int) -> Any:
    """The config FreSh renders for its ``seed``-th initialization: components with their own ``seed``
    (random Fourier matrices) get it, so every random part is redrawn, and the tuned component's
    ``render_overrides`` apply. Training uses the plain candidate config."""
    changes = {}
    parameter = fresh_parameter(field_config)
    for component in ("encoding", "network"):
        part = getattr(field_config, component, None)
        if part is None or not dataclasses.is_dataclass(part):
            continue
        names = {f.name for f in dataclasses.fields(part)}
        update: dict[str, Any] = {"seed": seed} if "seed" in names else {}
        if component == parameter.component:
            update.update({k: v for k, v in parameter.render_overrides if k in names})
        if update:
            changes[component] = dataclasses.replace(part, **update)
    return dataclasses.replace(field_config, **changes) if changes else field_config


def candidate_configs(field_config: Any, values: Sequence[float] = ()) -> tuple[FreshParameter, list[tuple[str, float, Any]]]:
    """``(parameter, [(label, value, config), ...])`` for the given values (default: the parameter's grid)."""
    parameter = fresh_parameter(field_config)
    grid = tuple(values) or parameter.values
    return parameter, [(f"{parameter.attribute}={v:g}", float(v), with_value(field_config, parameter, v)) for v in grid]


def _register_builtin() -> None:
    from fieldforge.fields.encodings.fourier import FourierEncodingConfig
    from fieldforge.fields.encodings.frequency import FrequencyEncodingConfig
    from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig
    from fieldforge.fields.networks.siren import SirenConfig

    # FreSh's grids: FF σ = 1..20, SIREN ω₀ = 10..200 step 10; PE: the top octave log2(max frequency).
    register_fresh_parameter(FourierEncodingConfig, FreshParameter("encoding", "sigma", tuple(float(v) for v in range(1, 21))))
    register_fresh_parameter(FrequencyEncodingConfig, FreshParameter("encoding", "max_log2_frequency", tuple(float(v) for v in range(1, 13))))
    register_fresh_parameter(SirenConfig, FreshParameter("network", "first_omega", tuple(float(v) for v in range(10, 201, 10))))
    # Hash grid: the finest resolution; rendered with a large table init, else the untrained output ignores the grid.
    register_fresh_parameter(HashGridEncodingConfig, FreshParameter(
        "encoding", "max_resolution", (32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0), integer=True,
        render_overrides=(("init_scale", 1.0),),
    ))


_register_builtin()
