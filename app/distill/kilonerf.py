"""KiloNeRF distillation (Reiser et al. 2021): per-tile distillation, then fine-tuning on the training images.

Through ``fieldforge.fields.kilonerf`` only:

- the student's occupancy grid is filled from the teacher's density (3×3×3 sub-samples per cell, σ > τ = 10)
  and from the teacher's renderings (cells that give some training/virtual ray ≥ 1% of its colour), and kept
  (empty-space skipping; rendering uses KiloNeRF's early termination at transmittance < 0.01);
- stage ``tiles``: ``tile_points`` points per step where rendering evaluates the tiles: uniform in the grid's
  occupied cells (random directions; ``tile_ray_fraction`` of them may instead be the teacher's samples along
  training and virtual rays); tiles in empty space are never rendered and get none. Targets are the
  teacher's α = 1 − exp(−σ·δ) (δ: the marching step) and RGB, with the MSE over the 4 outputs summed over
  tiles, plus PVD's clamped log-density loss (``tile_density_weight``): at our marching step α ≪ 1 through
  most of a surface, so α alone pulls the density too weakly. The student's density activation is
  ``trunc_exp`` and its lr 5e-3 (``distill_config``): with KiloNeRF's softplus/ReLU and lr 1e-3 (tuned for
  150k steps) a 32-wide tile cannot reach σ in the hundreds in hundreds of steps and the student ends
  ~8 dB under its teacher;
- stage ``finetune``: the student task's photometric step on the training images (its own grid updates
  off), plus λ·Σ‖p‖₂ (unsquared, as KiloNeRF's code) over the view-dependent layers only.

Evaluation adds the per-tile 0.99-quantile of the squared error on held-out points of the occupied cells
(``tile_q99_max`` / ``tile_q99_median``; the paper monitors it) to the student's metrics and the fidelity
to the teacher (``teacher_psnr``) of ``NerfDistillTask``.
"""

from dataclasses import replace

import torch
from fieldforge.app.distill.losses import density_loss_per_sample
from fieldforge.app.distill.nerf import NerfDistillTask
from fieldforge.app.tasks.base import TaskContext
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.fields import kilonerf as kn
from fieldforge.fields.rendering.volume import volume_render
from torch import Tensor

HELD_OUT_PER_TILE = 16


class KiloNerfDistillTask(NerfDistillTask):
    def __init__(self, model, teacher, student, config, ctx: TaskContext) -> None:
        model.render_config = kn.kilonerf_render_config(model.render_config)
        self.occupied_fraction = 0.0
        super().__init__(model, teacher, student, config, ctx)
        student.render = replace(student.render, grid_update_every=1 << 40)  # the grid stays the teacher's
        self.batch = config.distill.tile_points
        self.n_tiles = kn.n_tiles(model)
        self.cells = torch.nonzero(model.grid.binary.reshape(-1).cpu()).squeeze(-1)
        gen = torch.Generator().manual_seed(self.seed + 53)
        held = self.occupied_points(HELD_OUT_PER_TILE * self.n_tiles, gen)  # the space rendering evaluates
        self.held_out = (held, kn.tile_ids(model, held))
        self.held_dirs = torch.nn.functional.normalize(torch.randn(held.shape[0], 3, generator=gen), dim=-1).to(self.device)

    def fill_grid(self) -> None:
        """KiloNeRF's occupancy grid: a cell is occupied when any of its 3×3×3 sub-samples has teacher σ > τ
        (``occupancy_threshold``, KiloNeRF's 10), **or** when the teacher's rendering of one of
        ``occupancy_rays`` training/virtual rays takes ≥ ``occupancy_weight`` of its colour from the cell.
        τ alone is in scene units (σ scales with 1/length) and suits a converged teacher: on lego_half ×⅛
        (δ ≈ 0.005) it drops the thin parts a 250-step teacher draws with σ ∈ (2, 10) (the teacher through that
        grid: 23.7 vs 25.2 dB), while τ = 2 also keeps the teacher's faint haze (2× the cells, 6× slower frames).
        The rendering criterion keeps what the teacher's images are made of (there: 25.22 dB through the grid,
        6.2% of the cells vs τ's 4.1%). Rays and jitter are seeded alike on every rank: one grid for all."""
        self.sampler.fill_grid(seed=self.grid_seed + 43)  # the renderer's grid (σ·δ above its threshold), to march the rays
        visible = self.rendered_cells(self.options.occupancy_rays, self.options.occupancy_weight) if self.options.occupancy_rays else None
        kn.fill_occupancy(self.model, lambda p: self.teacher.query(p).density, threshold=self.options.occupancy_threshold)
        grid = self.model.grid
        if visible is not None:
            grid.binary |= visible.reshape(grid.binary.shape)
        self.occupied_fraction = grid.occupancy_fraction()

    @torch.no_grad()
    def rendered_cells(self, n_rays: int, share: float, chunk: int = 4096) -> Tensor:
        """``(n_cells,)`` bool: cells from which the teacher's rendering of some of ``n_rays`` training and virtual
        rays (the student's grid marching, the teacher's density) takes at least ``share`` of the ray's colour."""
        grid = self.model.grid
        best = torch.zeros(grid.n_cells, device=self.device)
        gen = torch.Generator().manual_seed(self.grid_seed + 47)
        for start in range(0, n_rays, chunk):
            o, d = self.rays(min(chunk, n_rays - start), 0, gen)
            samples = self.sampler.samples(o, d, training=False)
            if not samples.n_samples:
                continue
            pos = samples.positions(o, d)
            t = self.teacher.query(pos, d[samples.ray_indices])
            weights = volume_render(samples, lambda t0, t1, ri, t=t: (t.rgb, t.density), None).weights.float()
            cell, inside = grid.cell_of(self.model.to_field(pos))
            key = samples.ray_indices.long() * grid.n_cells + cell  # per (ray, cell): the ray's colour from that cell
            keys, inverse = torch.unique(key[inside], return_inverse=True)
            per_ray_cell = torch.zeros(keys.shape[0], device=self.device).index_add_(0, inverse, weights[inside])
            best.scatter_reduce_(0, keys % grid.n_cells, per_ray_cell, "amax")
        return best >= share

    def alpha_rgb(self, out) -> Tensor:
        """``(n, 4)``: α = 1 − exp(−σ·δ) and RGB."""
        alpha = 1.0 - torch.exp(-out.density.float().clamp(max=1e6) * self.model.step_size)
        return torch.cat([alpha[:, None], out.rgb.float()], dim=-1)

    def tile_errors(self, points: Tensor, dirs: Tensor) -> Tensor:
        """Per-point MSE over (α, RGB) ``(n,)``."""
        target = self.alpha_rgb(self.teacher.query(points, dirs))
        return ((self.alpha_rgb(self.model(points, dirs)) - target) ** 2).mean(-1)

    def occupied_points(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` uniform points in the occupied cells of the teacher's grid (the only space rendering evaluates),
        in the model's input frame; the whole box when nothing is occupied."""
        g = generator or self.generator
        if self.cells.numel() == 0:
            return kn.sample_in_tiles(self.model, max(1, n // self.n_tiles), g)[0]
        grid = self.model.grid
        idx = self.cells[torch.randint(0, self.cells.shape[0], (n,), generator=g)]
        jitter = torch.rand(n, 3, generator=g)
        return self.sampler.from_field(grid.cell_points(idx.to(self.device), jitter.to(self.device)))

    def train_step(self, ctx: StepContext) -> StepResult:
        if ctx.stage.name == "finetune":
            result = self.student.train_step(ctx)
            result.loss = result.loss + kn.view_dependent_penalty(self.model).to(result.loss.device)
            return result
        n_rays = round(self.batch * self.options.tile_ray_fraction)
        parts_p, parts_d = [], []
        if n_rays > 0:  # points where rendering evaluates the tiles: the teacher's samples along training/virtual rays
            o, d, _, samples = self.ray_batch(n_rays)
            if samples.n_samples:
                parts_p.append(samples.positions(o, d))
                parts_d.append(d[samples.ray_indices])
        n_cells = self.batch - sum(x.shape[0] for x in parts_p)
        if n_cells > 0:  # uniform in the occupied cells, random directions
            parts_p.append(self.occupied_points(n_cells))
            parts_d.append(torch.nn.functional.normalize(torch.randn(parts_p[-1].shape[0], 3, generator=self.generator), dim=-1).to(self.device))
        points, dirs = torch.cat(parts_p), torch.cat(parts_d)
        t = self.teacher.query(points, dirs)
        s = self.model(points, dirs)
        err = ((self.alpha_rgb(s) - self.alpha_rgb(t)) ** 2).mean(-1)
        dl = density_loss_per_sample(s.density, t.density, self.options.density_range)
        loss = err.mean() * self.n_tiles + self.options.tile_density_weight * dl.mean()  # per-tile means summed (≈ equal counts)
        coords = self.model.field.to_unit(self.model.to_field(points)).clamp(0, 1)
        log = {"tile_mse": float(err.detach().mean()), "density": float(dl.detach().mean())}
        return StepResult(loss=loss, coords=coords, per_sample_loss=err.detach(), log=log)

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        metrics = super().evaluate(step, final, track)
        points, ids = self.held_out
        err = torch.cat([self.tile_errors(p, d) for p, d in zip(points.split(1 << 15), self.held_dirs.split(1 << 15))])
        q99 = kn.per_tile_quantile(err, ids, self.n_tiles, 0.99)
        q99 = q99[~torch.isnan(q99)]
        metrics.update({"tile_q99_max": float(q99.max()), "tile_q99_median": float(q99.median()), "tiles": float(self.n_tiles),
                        "teacher_grid_occupancy": self.occupied_fraction, "occupancy_threshold": self.options.occupancy_threshold})
        return metrics
