"""The image-fitting task: a 2D field regressed onto the image's stored values."""

import math

import torch
from torch import Tensor

from fieldforge.app.trainer import StepResult
from fieldforge.data.samplers import PixelSampler
from fieldforge.fields.field import Field
from fieldforge.fields.losses import per_sample_loss
from fieldforge.fields.metrics import psnr, ssim


class ImageTask:
    def __init__(self, field: Field, sampler: PixelSampler, target: Tensor, loss: str = "mse") -> None:
        self.model = field
        self.sampler = sampler
        self.target = target  # (h, w, c) on CPU
        self.loss = loss
        self.last_render: Tensor | None = None

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def train_step(self, step: int) -> StepResult:
        coords, target = self.sampler.sample()
        pred = self.model(coords).values
        psl = per_sample_loss(self.loss, pred, target)
        loss = psl.mean()
        mse = float(((pred.detach().float() - target) ** 2).mean())
        return StepResult(loss=loss, coords=coords, per_sample_loss=psl, log={"psnr": -10 * math.log10(max(mse, 1e-12))})

    def render(self) -> Tensor:
        """The field at every training pixel, ``(h, w, c)`` on CPU."""
        parts = [self.model(c).values.float().cpu() for c, _ in self.sampler.chunks()]
        return torch.cat(parts).reshape(self.target.shape).clamp(0, 1)

    def evaluate(self, step: int) -> dict[str, float]:
        image = self.render()
        self.last_render = image
        return {"psnr": psnr(image, self.target), "ssim": ssim(image, self.target)}

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
