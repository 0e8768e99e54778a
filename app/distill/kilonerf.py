"""KiloNeRF distillation (Reiser et al. 2021): per-tile distillation, then fine-tuning on the training images.

Through ``fieldforge.fields.kilonerf`` only:

- the student's occupancy grid is filled from the teacher's density (3×3×3 sub-samples per cell, σ > τ)
  and kept (empty-space skipping; rendering uses KiloNeRF's early termination at transmittance < 0.01);
- stage ``tiles``: every tile gets ``batch_size / T`` (≥ 1) uniform points of its own cell per step, with
  random view directions; targets are the teacher's α = 1 − exp(−σ·δ) (δ: the marching step) and RGB; the
  loss is the MSE over the 4 outputs averaged per tile and summed over tiles;
- stage ``finetune``: the student task's photometric step on the training images (its own grid updates
  off), plus λ·Σ‖p‖₂ (unsquared, as KiloNeRF's code) over the view-dependent layers only.

Evaluation adds the per-tile 0.99-quantile of the squared error on held-out tile points
(``tile_q99_max`` / ``tile_q99_median``; the paper monitors it) to the student's metrics and the fidelity
to the teacher (``teacher_psnr``) of ``NerfDistillTask``.
"""

from dataclasses import replace

import torch
from fieldforge.app.distill.nerf import NerfDistillTask
from fieldforge.app.tasks.base import TaskContext
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.fields import kilonerf as kn
from torch import Tensor

HELD_OUT_PER_TILE = 16


class KiloNerfDistillTask(NerfDistillTask):
    def __init__(self, model, teacher, student, config, ctx: TaskContext) -> None:
        model.render_config = kn.kilonerf_render_config(model.render_config)
        self.occupied_fraction = 0.0
        super().__init__(model, teacher, student, config, ctx)
        student.render = replace(student.render, grid_update_every=1 << 40)  # the grid stays the teacher's
        self.n_tiles = kn.n_tiles(model)
        self.per_tile = max(1, self.batch // self.n_tiles)
        gen = torch.Generator().manual_seed(self.seed + 53)
        self.held_out = kn.sample_in_tiles(model, HELD_OUT_PER_TILE, gen)
        self.held_dirs = torch.nn.functional.normalize(torch.randn(self.held_out[0].shape[0], 3, generator=gen), dim=-1).to(self.device)

    def fill_grid(self) -> None:
        """KiloNeRF's occupancy grid: 3×3×3 sub-samples of the teacher's density per cell, σ > τ."""
        self.occupied_fraction = kn.fill_occupancy(self.model, lambda p: self.teacher.query(p).density)

    def alpha_rgb(self, out) -> Tensor:
        """``(n, 4)``: α = 1 − exp(−σ·δ) and RGB."""
        alpha = 1.0 - torch.exp(-out.density.float().clamp(max=1e6) * self.model.step_size)
        return torch.cat([alpha[:, None], out.rgb.float()], dim=-1)

    def tile_errors(self, points: Tensor, dirs: Tensor) -> Tensor:
        """Per-point MSE over (α, RGB) ``(n,)``."""
        target = self.alpha_rgb(self.teacher.query(points, dirs))
        return ((self.alpha_rgb(self.model(points, dirs)) - target) ** 2).mean(-1)

    def train_step(self, ctx: StepContext) -> StepResult:
        if ctx.stage.name == "finetune":
            result = self.student.train_step(ctx)
            result.loss = result.loss + kn.view_dependent_penalty(self.model).to(result.loss.device)
            return result
        points, _ = kn.sample_in_tiles(self.model, self.per_tile, self.generator)
        dirs = torch.nn.functional.normalize(torch.randn(points.shape[0], 3, generator=self.generator), dim=-1).to(self.device)
        err = self.tile_errors(points, dirs)
        loss = err.mean() * self.n_tiles  # mean per tile (equal counts), summed over tiles
        coords = self.model.field.to_unit(self.model.to_field(points)).clamp(0, 1)
        return StepResult(loss=loss, coords=coords, per_sample_loss=err.detach(), log={"tile_mse": float(err.detach().mean())})

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        metrics = super().evaluate(step, final, track)
        points, ids = self.held_out
        err = torch.cat([self.tile_errors(p, d) for p, d in zip(points.split(1 << 15), self.held_dirs.split(1 << 15))])
        q99 = kn.per_tile_quantile(err, ids, self.n_tiles, 0.99)
        q99 = q99[~torch.isnan(q99)]
        metrics.update({"tile_q99_max": float(q99.max()), "tile_q99_median": float(q99.median()), "tiles": float(self.n_tiles),
                        "teacher_grid_occupancy": self.occupied_fraction})
        return metrics
