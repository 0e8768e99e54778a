"""``NerfModel``: a radiance field + occupancy grid over a scene box (or over contracted space), and its
``RenderConfig`` (ray marching with the grid, early termination, backgrounds).

This is what NeRF checkpoints hold (``field.*`` and ``grid.*``) and what exporters, the viewer and the
distiller use through capabilities: ``Queryable`` (``model(points, directions) → FieldOutputs``),
``HasDensity`` (``density``) and ``Renderable`` (``rgb_density``), all declared by the class. Points are in
the capture's normalized frame; the model applies its own contraction (``to_field``) inside.

Rays are packed (nerfacc-style): each ray keeps only its samples in occupied cells before its
transmittance vanishes, which is what makes the CPU path usable. Everything here takes tensors
(cameras as ``c2w``/intrinsics tensors), never ``data`` types.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from fieldforge.fields.field import FieldConfig, RadianceField, make_field
from fieldforge.fields.outputs import FieldOutputs
from fieldforge.fields.rendering.contraction import contract, lindisp_steps
from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid
from fieldforge.fields.rendering.rays import generate_rays, ndc_rays, pixel_grid
from fieldforge.fields.rendering.sampling import RaySamples, edge_samples, filter_samples, march_rays, points_along, ray_aabb_intersect
from fieldforge.fields.rendering.volume import RenderOutputs, volume_render, volume_render_rounds
from jaxtyping import Float
from torch import Tensor, nn

RENDER_BYTES_PER_SAMPLE = 8192
"""Stated peak memory per candidate sample when rendering with the 16-level hash grid on a CPU (measured:
≈ 6 KB; the 8-level PE/MLP fields need less). ``RenderConfig.render_samples`` × this is the rendering budget."""

ROUND_CANDIDATES = 16
"""Rendering without gradients (``volume_render_rounds``) evaluates at most ``render_samples`` points at once but
holds up to this many times as many candidate samples (a few dozen bytes each, against kilobytes per evaluated
sample): chunks of rays that many times larger."""

CONTRACTED_BOX = 2.0
"""Half-size of the field's box in contracted scenes (contraction maps all of space into radius 2)."""


@dataclass(frozen=True)
class RenderConfig:
    """Ray marching with an occupancy grid, early termination and backgrounds."""

    steps_per_ray: int = 1024
    """Marching step = scene-box diagonal / steps_per_ray (nerfacc's lego setting ≈ 1039)."""
    grid_resolution: int = 64
    """Occupancy grid cells per axis (instant-ngp: 128; 64 keeps the warm-up sweeps affordable on a CPU)."""
    grid_update_every: int = 16
    """Update the occupancy grid every N steps (instant-ngp)."""
    grid_warmup_steps: int = 256
    """Before this step every grid cell is re-evaluated at each update; afterwards half of them."""
    grid_update_fraction: float = 0.5
    """After warm-up, each update evaluates this fraction of the cells (half uniform, half occupied)."""
    grid_decay: float = 0.95
    """Running-max decay of the cells' opacity estimate."""
    grid_threshold: float = 0.01
    """A cell is occupied when σ·step exceeds min(mean, threshold)."""
    early_stop_eps: float = 1e-4
    """Stop marching a ray once its transmittance is below this (0 disables the density pre-pass)."""
    alpha_thre: float = 0.0
    """Drop samples with opacity below this (0 keeps all)."""
    near_plane: float = 0.0
    """Minimum distance from the camera."""
    random_background: bool = True
    """Train RGBA captures against a random background colour per ray (learns transparency properly)."""
    target_samples: int = 1 << 16
    """Adapt the number of rays per step so each step has about this many samples (0: fixed --batch-size rays);
    a step never renders more than 4× this many samples (the rays past the budget are dropped)."""
    max_rays: int = 1 << 15
    """Upper bound of the adaptive ray count."""
    contraction: bool = False
    """Unbounded scenes: contract space outside the box (mip-NeRF 360) and sample linearly then in disparity."""
    contraction_steps: int = 512
    """Samples per ray before skipping where content may lie at any depth: contracted scenes (linear inside
    the box, then in disparity) and forward-facing ones (across NDC depth −1..1)."""
    chunk: int = 8192
    """Most rays per chunk when rendering whole images (render_samples may make chunks smaller)."""
    render_samples: int = 1 << 16
    """Memory bound of rendering (evaluations, exports, viewer frames) and of the training step's density
    pre-pass: at most this many candidate samples are held at once (a chunk of rays has at most this many
    divided by the samples a ray can have; every field evaluation at most this many points). Peak memory is
    about 8 KB per sample with the 16-level hash grid on a CPU: 2^16 samples ≈ 0.5 GB, whatever the image
    size or the samples per ray."""


class NerfModel(nn.Module):
    """Radiance field + occupancy grid over the scene box (or over contracted space)."""

    field: RadianceField

    def __init__(self, field_config: FieldConfig, scene_box: Float[Tensor, "2 3"], render: RenderConfig) -> None:
        super().__init__()
        if field_config.head != "radiance":
            raise ValueError(f"a NeRF needs a field with head='radiance', got {field_config.head!r}")
        self.render_config = render
        self.contracted = render.contraction
        self.register_buffer("scene_box", scene_box.detach().float().clone())
        if self.contracted:
            # the normalized scene box maps onto [-1, 1]^3 before contraction; the field covers [-2, 2]^3
            field_box = torch.tensor([[-CONTRACTED_BOX] * 3, [CONTRACTED_BOX] * 3])
        else:
            field_box = self.scene_box
        field = make_field(field_config, in_dim=3, bbox=field_box)
        assert isinstance(field, RadianceField)
        self.field = field
        self.grid = OccupancyGrid(field_box, render.grid_resolution)

    # -- coordinates -------------------------------------------------------------------------------
    def to_field(self, points: Float[Tensor, "n 3"]) -> Float[Tensor, "n 3"]:
        """Normalized-frame points → the field's input space (contracted when the scene is unbounded)."""
        if not self.contracted:
            return points
        lo, hi = self.scene_box[0], self.scene_box[1]
        return contract((points - (lo + hi) / 2) / ((hi - lo) / 2))

    @property
    def step_size(self) -> float:
        box = self.grid.aabb if self.contracted else self.scene_box
        return float((box[1] - box[0]).norm()) / self.render_config.steps_per_ray

    @property
    def samples_per_ray_bound(self) -> int:
        """Most candidate samples one ray can have before skipping (what ``render_samples`` is divided by)."""
        r = self.render_config
        if self.contracted:
            return r.contraction_steps
        # a ray crosses at most the box diagonal: steps_per_ray steps (+1 for a stratified offset)
        return min(r.steps_per_ray + 1, 4 * r.steps_per_ray)

    def rays_per_chunk(self, chunk: int | None = None, max_samples: int | None = None) -> int:
        """Rays rendered together so that no more than ``max_samples`` (default ``render_samples``) candidates exist at once."""
        budget = self.render_config.render_samples if max_samples is None else max_samples
        limit = self.render_config.chunk if chunk is None else chunk
        return max(1, min(limit, budget // self.samples_per_ray_bound))

    # -- capabilities (Queryable, Renderable, HasDensity) ------------------------------------------
    def forward(self, points: Float[Tensor, "n 3"], directions: Tensor | None = None) -> FieldOutputs:
        """Teacher query at normalized-frame points: density (+ colour along unit ``directions``) and features."""
        return self.field(self.to_field(points), directions)

    def density(self, points: Float[Tensor, "n 3"]) -> Float[Tensor, " n"]:
        """Volume density ``(n,)`` at normalized-frame points."""
        return self.field.density(self.to_field(points))

    def rgb_density(self, points: Float[Tensor, "n 3"], directions: Float[Tensor, "n 3"]) -> tuple[Tensor, Tensor]:
        """Colour ``(n, 3)`` along unit ``directions`` and density ``(n,)`` at normalized-frame points."""
        return self.field.rgb_density(self.to_field(points), directions)

    # -- training hooks ----------------------------------------------------------------------------
    def occupied(self, points: Float[Tensor, "n 3"]) -> Tensor:
        """Whether the occupancy grid marks each normalized-frame point's cell occupied ``(n,)`` bool."""
        return self.grid.occupied(self.to_field(points))

    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        """Progressive hook: ``progress`` = step / steps of the training stage; ``coords`` are field-unit points."""
        self.field.update(progress, coords, per_sample_loss)

    def param_groups(self, lr: float) -> list[dict]:
        return self.field.param_groups(lr)

    def update_grid(self, step: int, seed: int = 0) -> None:
        """Occupancy-grid update at a training step (its warm-up and random cells depend on the step)."""
        r = self.render_config
        self.grid.update(
            step, self.field.density, self.step_size, threshold=r.grid_threshold, decay=r.grid_decay,
            warmup_steps=r.grid_warmup_steps, seed=seed, fraction=r.grid_update_fraction,
        )

    # -- rendering ---------------------------------------------------------------------------------
    def sample(self, origins: Tensor, directions: Tensor, training: bool, generator: torch.Generator | None = None,
               density_fn: Callable[[Tensor], Tensor] | None = None, prune: bool = True) -> RaySamples:
        """Samples along the rays through the occupancy grid; ``density_fn`` (default: this model's) decides
        early termination (a distiller passes its teacher's). ``prune=False`` skips empty space only (no
        density evaluated: the caller terminates rays itself, as :func:`volume_render_rounds`)."""
        r = self.render_config
        density = self.density if density_fn is None else density_fn

        def sigma_fn(t0: Tensor, t1: Tensor, ri: Tensor) -> Tensor:
            return density(points_along(origins, directions, ri, 0.5 * (t0 + t1)))

        use_sigma = sigma_fn if prune and (r.early_stop_eps > 0 or r.alpha_thre > 0) else None
        if not self.contracted:
            return march_rays(
                origins, directions, self.scene_box, self.step_size, occupied_fn=self.grid.occupied, sigma_fn=use_sigma,
                near_plane=r.near_plane, stratified=training, generator=generator, alpha_thre=r.alpha_thre,
                early_stop_eps=r.early_stop_eps, max_steps=4 * r.steps_per_ray, eval_chunk=r.render_samples,
                occupied_near_fn=self.grid.occupied_near, near_distance=self.grid.cell_size,
            )
        near = torch.full((origins.shape[0],), max(r.near_plane, 1e-3), device=origins.device)
        t_near, t_far = ray_aabb_intersect(origins, directions, self.scene_box)
        near = torch.where((t_far > t_near) & (t_near > near), t_near, near)
        edges = lindisp_steps(near, r.contraction_steps, stratified=training, generator=generator)
        samples = edge_samples(edges)
        return filter_samples(
            samples, origins, directions, occupied_fn=lambda p: self.grid.occupied(self.to_field(p)), sigma_fn=use_sigma,
            alpha_thre=r.alpha_thre, early_stop_eps=r.early_stop_eps, eval_chunk=r.render_samples,
        )

    def render_rays(
        self, origins: Tensor, directions: Tensor, background: Tensor | None, training: bool = False,
        generator: torch.Generator | None = None, max_samples: int | None = None,
    ) -> tuple[RenderOutputs, Tensor, Tensor]:
        """Render rays; also returns the field-space sample positions and their ray indices.

        With ``max_samples``, only the leading rays whose samples fit the budget are rendered (at least
        one ray): ``out`` then covers ``out.rgb.shape[0]`` rays (a training step's memory bound). Without
        ``training``, rays are rendered in chunks of at most ``render_samples`` candidate samples; without
        gradients too, in rounds (:func:`volume_render_rounds`: chunks of ``ROUND_CANDIDATES`` × as many
        candidates, at most ``render_samples`` evaluated at once; ``out.weights`` and the positions then cover
        every candidate, zero weight where a ray had stopped).
        """
        if not training:  # rendering: bounded memory
            rounds = not torch.is_grad_enabled()
            bounds = self.chunk_bounds(origins, directions, ROUND_CANDIDATES if rounds else 1)
            if len(bounds) > 1:
                return self._render_chunked(origins, directions, background, bounds)
            if rounds:
                return self._render_rounds(origins, directions, background)
        samples = self.sample(origins, directions, training, generator)
        if max_samples is not None and samples.n_samples > max_samples:
            samples = samples.leading(max_samples)
            cut = samples.n_rays
            origins, directions = origins[:cut], directions[:cut]
            if background is not None and background.ndim == 2:
                background = background[:cut]
        positions: list[Tensor] = []
        out = volume_render(samples, self._rgb_sigma_fn(origins, directions, positions), background)
        pos = positions[0] if positions else origins.new_zeros(0, 3)
        return out, pos, samples.ray_indices

    def _rgb_sigma_fn(self, origins: Tensor, directions: Tensor, positions: list[Tensor] | None = None):
        """The renderers' ``rgb_sigma_fn`` along these rays; appends the field-space points to ``positions``."""

        def rgb_sigma_fn(t0: Tensor, t1: Tensor, ri: Tensor) -> tuple[Tensor, Tensor]:
            p = self.to_field(points_along(origins, directions, ri, 0.5 * (t0 + t1)))
            if positions is not None:
                positions.append(p)
            return self.field.rgb_density(p, directions, ri)

        return rgb_sigma_fn

    def _render_rounds(self, origins: Tensor, directions: Tensor, background: Tensor | None) -> tuple[RenderOutputs, Tensor, Tensor]:
        """Inference: skip empty space, then evaluate each sample once, ray by ray in rounds, until each ray's
        transmittance vanishes (no density pre-pass)."""
        r = self.render_config
        samples = self.sample(origins, directions, training=False, prune=False)
        rgb_sigma_fn = self._rgb_sigma_fn(origins, directions)
        out = volume_render_rounds(samples, rgb_sigma_fn, background, r.early_stop_eps, r.alpha_thre, r.render_samples)
        return out, self.to_field(samples.positions(origins, directions)), samples.ray_indices

    def candidate_counts(self, origins: Tensor, directions: Tensor) -> Tensor:
        """Upper bound of each ray's candidate samples before skipping ``(n,)``: its steps through the box."""
        r = self.render_config
        if self.contracted:
            return torch.full((origins.shape[0],), r.contraction_steps, dtype=torch.long, device=origins.device)
        t_near, t_far = ray_aabb_intersect(origins, directions, self.scene_box)
        span = (t_far - t_near.clamp(min=r.near_plane)).clamp(min=0.0)
        return torch.ceil(span / self.step_size).long().clamp(0, 4 * r.steps_per_ray) + 1

    def chunk_bounds(self, origins: Tensor, directions: Tensor, factor: int = 1) -> list[tuple[int, int]]:
        """``[(start, end)]`` ray ranges with at most ``factor × render_samples`` candidates (and ``chunk`` rays) each."""
        r = self.render_config
        budget = factor * r.render_samples
        cum = torch.cumsum(self.candidate_counts(origins, directions), 0).cpu()
        bounds, start, n = [], 0, origins.shape[0]
        while start < n:
            before = int(cum[start - 1]) if start else 0
            end = int(torch.searchsorted(cum, before + budget, right=True))
            end = min(max(end, start + 1), start + r.chunk, n)
            bounds.append((start, end))
            start = end
        return bounds

    def _render_chunked(self, origins: Tensor, directions: Tensor, background: Tensor | None, bounds: list[tuple[int, int]]) -> tuple[RenderOutputs, Tensor, Tensor]:
        rounds = not torch.is_grad_enabled()
        outs, positions, indices = [], [], []
        for i, j in bounds:
            bg = background[i:j] if background is not None and background.ndim == 2 else background
            if rounds:
                out, pos, ri = self._render_rounds(origins[i:j], directions[i:j], bg)
            else:
                out, pos, ri = self.render_rays(origins[i:j], directions[i:j], bg)
            outs.append(out)
            positions.append(pos)
            indices.append(ri + i)
        out = RenderOutputs(
            torch.cat([o.rgb for o in outs]), torch.cat([o.opacity for o in outs]), torch.cat([o.depth for o in outs]),
            torch.cat([o.weights for o in outs]), sum(o.n_samples for o in outs),
        )
        return out, torch.cat(positions), torch.cat(indices)

    @torch.no_grad()
    def render_image(
        self, c2w: Tensor, intrinsics: Tensor, width: int, height: int, distortion: Tensor | None, background: Tensor,
        ndc: tuple[float, float, float] | None = None, chunk: int | None = None, max_samples: int | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(rgb (h, w, 3), depth (h, w), opacity (h, w))`` of one camera (``c2w`` 4×4, ``intrinsics``
        ``(fx, fy, cx, cy)``, ``distortion`` 6 coefficients or None), in chunks of at most ``chunk`` rays
        and ``max_samples`` candidate samples (defaults: ``RenderConfig.chunk`` and ``render_samples``: the
        memory bound); ``ndc`` is ``(focal, width, height)`` of a forward-facing capture's NDC projection."""
        device = self.scene_box.device
        pix = pixel_grid(height, width, device)
        if max_samples is not None:
            chunk = self.rays_per_chunk(chunk, max_samples)
        else:  # render_rays splits each chunk by its rays' candidate samples
            chunk = self.render_config.chunk if chunk is None else chunk
        rgb, depth, acc = [], [], []
        for i in range(0, pix.shape[0], chunk):
            p = pix[i : i + chunk]
            n = p.shape[0]
            dist = None if distortion is None or not bool((distortion != 0).any()) else distortion.to(device)[None].expand(n, 6)
            o, d = generate_rays(c2w.to(device)[None].expand(n, 4, 4), intrinsics.to(device)[None].expand(n, 4), p, dist)
            if ndc is not None:
                o, d = ndc_rays(o, d, *ndc)
            out, _, _ = self.render_rays(o, d, background.to(device))
            rgb.append(out.rgb.float().cpu())
            depth.append(out.depth.float().cpu())
            acc.append(out.opacity.float().cpu())
        return (
            torch.cat(rgb).reshape(height, width, 3).clamp(0, 1),
            torch.cat(depth).reshape(height, width),
            torch.cat(acc).reshape(height, width),
        )


__all__ = ["CONTRACTED_BOX", "NerfModel", "RENDER_BYTES_PER_SAMPLE", "RenderConfig"]
