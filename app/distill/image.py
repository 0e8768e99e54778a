"""Image distillation: the student regresses the teacher at continuous coordinates.

Each batch is half uniform points of the unit square and half pixel centres jittered by up to half a
pixel, so the student learns the teacher's continuous function rather than its values at the training
pixels: it can be rendered (``export image --scale``) at a higher resolution than the training image.
Evaluation is the student's own (PSNR/SSIM against the real image) plus ``teacher_psnr``: student vs
teacher on a grid ``supersample`` times finer than the image.
"""

import math

import torch
from fieldforge.app.tasks.base import TaskContext
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.data.samplers import pixel_coords
from fieldforge.fields.metrics import psnr
from torch import Tensor, nn


class ImageDistillTask:
    """Trainer task: MSE to the teacher's values at uniform and jittered sub-pixel coordinates."""

    def __init__(self, model: nn.Module, teacher, student, config, ctx: TaskContext) -> None:
        self.model, self.teacher, self.student = model, teacher, student
        self.device = ctx.device
        self.height, self.width = int(student.target.shape[0]), int(student.target.shape[1])
        self.batch = config.distill.batch_size
        self.supersample = max(1, config.distill.supersample)
        self.generator = torch.Generator().manual_seed(ctx.seed(config.trainer.seed) + 17)
        self.teacher_grid: Tensor | None = None

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def sample(self) -> Tensor:
        """``(batch, 2)`` coordinates: half uniform in the unit square, half jittered pixel centres."""
        n_uniform = self.batch // 2
        uniform = torch.rand(n_uniform, 2, generator=self.generator)
        n = self.batch - n_uniform
        px = torch.randint(0, self.width, (n,), generator=self.generator).float()
        py = torch.randint(0, self.height, (n,), generator=self.generator).float()
        jitter = torch.rand(n, 2, generator=self.generator)
        pixels = torch.stack([(px + jitter[:, 0]) / self.width, (py + jitter[:, 1]) / self.height], dim=-1)
        return torch.cat([uniform, pixels]).clamp(0.0, 1.0 - 1e-6).to(self.device)

    def train_step(self, ctx: StepContext) -> StepResult:
        coords = self.sample()
        target = self.teacher.query(coords).values.float()
        pred = self.model(coords).values
        psl = ((pred.float() - target) ** 2).mean(-1)
        loss = psl.mean()
        return StepResult(loss=loss, coords=coords, per_sample_loss=psl.detach(), log={"teacher_psnr": -10 * math.log10(max(float(loss.detach()), 1e-12))})

    def fine_grid(self, field) -> Tensor:
        coords = pixel_coords(self.height, self.width, float(self.supersample)).to(self.device)
        return torch.cat([field(c).values.float().cpu() for c in coords.split(65536)]).clamp(0, 1)

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        metrics = self.student.evaluate(step, final, track)
        if self.teacher_grid is None:
            self.teacher_grid = self.fine_grid(self.teacher.query)
        metrics["teacher_psnr"] = psnr(self.fine_grid(self.model), self.teacher_grid)
        return metrics

    def preview(self) -> bytes | None:
        return self.student.preview()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
