"""A nerfstudio ``Model`` whose radiance field is a FieldForge NeRF method preset (``fieldforge train nerf
--method NAME``): the same ``NerfModel`` (field, occupancy grid, packed ray marching, volume rendering), fed
by nerfstudio's data managers and shown in its viewer. Nothing is reimplemented here: this module only
translates nerfstudio's ``RayBundle`` / batches / callbacks to the ``NerfModel`` calls ``NerfTask`` makes.

Coordinates are nerfstudio's dataparser frame (its ``scene_box`` is the model's box). No LPIPS (nerfstudio
computes it with AlexNet weights it downloads): evaluations report PSNR and SSIM from ``fieldforge.fields``.
"""

from dataclasses import dataclass, field, replace
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from torch import Tensor

from fieldforge.app.tasks.nerf import TASK
from fieldforge.fields.metrics import psnr, ssim
from fieldforge.fields.radiance_model import NerfModel


@dataclass
class FieldForgeModelConfig(ModelConfig):
    """A FieldForge radiance-field method preset as a nerfstudio model."""

    _target: Type = field(default_factory=lambda: FieldForgeModel)
    method: str = "ngp"
    """FieldForge NeRF method preset (`fieldforge train nerf --help` lists them)."""
    enable_collider: bool = False
    """The occupancy grid and the scene box bound the samples; no near/far collider."""
    steps_per_ray: Optional[int] = None
    """Marching steps across the scene box (None: the preset's)."""
    grid_resolution: Optional[int] = None
    """Occupancy grid cells per axis (None: the preset's)."""
    contraction: bool = False
    """Unbounded scenes: contract space outside the scene box (mip-NeRF 360)."""
    background: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Colour RGBA images are composited over for evaluation and the viewer (training: random per ray)."""
    seed: int = 0
    """Seed of the occupancy grid's random cells."""
    sizes: Literal["auto", "cpu", "cuda", "preset"] = "auto"
    """Hash-table and grid sizes of the default method (ngp): 'auto' = those of the device it trains on (as
    `fieldforge train nerf` without --method), 'cpu' / 'cuda' = that device's, 'preset' = as published. Other
    methods are always as published. Loading a checkpoint on another device needs the sizes it was trained with."""


class FieldForgeModel(Model):
    """nerfstudio ``Model`` around a FieldForge ``NerfModel`` (``self.nerf``)."""

    config: FieldForgeModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        sizes = self.config.sizes if self.config.sizes != "auto" else torch.device(self.kwargs.get("device") or "cpu").type
        self.run_config = run_config(self.config, sizes)
        self.nerf = NerfModel(self.run_config.field, self.scene_box.aabb.float(), self.run_config.render)
        self.max_steps = 1
        self._progress_inputs: tuple[Tensor | None, Tensor | None] = (None, None)
        self._samples: tuple[Tensor, Tensor] | None = None
        self._train_background: Tensor | None = None
        self._n_samples = 1

    # -- optimisation ------------------------------------------------------------------------------
    def get_param_groups(self) -> Dict[str, List]:
        """One nerfstudio group, ``fields``, holding the preset's torch parameter groups (their own lr
        multipliers and weight decay: hash tables, CAM grids); the method config's scheduler scales them all."""
        return {"fields": self.nerf.param_groups(self.run_config.optim.lr)}

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        trainer = training_callback_attributes.trainer
        if trainer is not None:
            self.max_steps = max(1, int(trainer.config.max_num_iterations))
        every = self.run_config.render.grid_update_every

        def update_grid(step: int) -> None:
            if step % every == 0:
                self.nerf.update_grid(step, self.config.seed)

        def update_progress(step: int) -> None:
            coords, psl = self._progress_inputs
            self.nerf.update(min(1.0, (step + 1) / self.max_steps), coords, psl)
            self._progress_inputs = (None, None)

        return [
            TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_grid, update_every_num_iters=1),
            TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], update_progress, update_every_num_iters=1),
        ]

    # -- rendering ---------------------------------------------------------------------------------
    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        """``rgb (n, 3)``, ``accumulation (n, 1)``, ``depth (n, 1)``. Training renders without a background
        (the loss composites prediction and target over the same random colour, as ``NerfTask`` does)."""
        shape = ray_bundle.origins.shape[:-1]
        origins = ray_bundle.origins.reshape(-1, 3)
        directions = ray_bundle.directions.reshape(-1, 3)
        background = None if self.training else torch.tensor(self.config.background, device=origins.device)
        out, positions, ray_indices = self.nerf.render_rays(origins, directions, background, training=self.training)
        if self.training:
            self._samples = (positions, ray_indices)
            self._train_background = torch.rand(origins.shape[0], 3, device=origins.device).reshape(*shape, 3)
            self._n_samples = max(1, int(out.n_samples))
        return {
            "rgb": out.rgb.float().reshape(*shape, 3),
            "accumulation": out.opacity.float().reshape(*shape, 1),
            "depth": out.depth.float().reshape(*shape, 1),
        }

    def _targets(self, outputs: Dict[str, Tensor], image: Tensor) -> tuple[Tensor, Tensor]:
        """Prediction and target in the same background: random per ray when training on RGBA."""
        rgb, acc = outputs["rgb"], outputs["accumulation"]
        image = image.to(rgb.device).float()
        if image.shape[-1] == 4:
            if self.training:
                bg = self._train_background
            else:
                bg = torch.tensor(self.config.background, device=rgb.device).expand_as(image[..., :3])
            target = image[..., :3] * image[..., 3:] + bg * (1.0 - image[..., 3:])
        else:
            bg, target = torch.tensor(self.config.background, device=rgb.device), image
        pred = rgb + bg * (1.0 - acc) if self.training else rgb
        return pred, target

    def get_metrics_dict(self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        pred, target = self._targets(outputs, batch["image"])
        mse = ((pred.detach() - target) ** 2).mean()
        metrics = {"psnr": -10.0 * torch.log10(mse.clamp(min=1e-12))}
        if self.training:  # DynamicBatchPipeline adapts the rays per batch to a sample budget, as NerfTask does
            metrics["num_samples_per_batch"] = torch.tensor(self._n_samples)
        return metrics

    def get_loss_dict(self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor], metrics_dict=None) -> Dict[str, Tensor]:
        pred, target = self._targets(outputs, batch["image"])
        per_ray = ((pred - target) ** 2).mean(-1)
        loss = per_ray.mean()
        if self.training and self._samples is not None:
            positions, ray_indices = self._samples
            if positions.shape[0]:  # progressive encodings see each sample's position and its ray's loss
                self._progress_inputs = (self.nerf.field.to_unit(positions.detach()).clamp(0, 1), per_ray.detach()[ray_indices])
            else:  # every ray in empty space: keep a graph so the step is a no-op, not an error
                loss = loss + 0.0 * sum(p.sum() for p in self.nerf.parameters() if p.requires_grad)
            self._samples = None
        return {"rgb_loss": loss}

    def get_image_metrics_and_images(self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """PSNR and SSIM of a whole evaluation image (no LPIPS: it would download AlexNet)."""
        pred, target = self._targets(outputs, batch["image"])
        pred = pred.clamp(0, 1)
        metrics = {"psnr": float(psnr(pred, target)), "ssim": float(ssim(pred, target))}
        images = {"img": torch.cat([target, pred], dim=1), "accumulation": outputs["accumulation"].expand_as(pred)}
        return metrics, images


def run_config(config: FieldForgeModelConfig, sizes: str = "preset"):
    """The FieldForge NeRF run config of the model config's preset, with its render overrides. The default
    method gets a device's sizes (``sizes``: ``cpu``, ``cuda``; ``preset``: none), as ``fieldforge train nerf``
    without ``--method`` does."""
    if config.method not in TASK.methods:
        raise ValueError(f"unknown FieldForge NeRF method {config.method!r}; known: {', '.join(TASK.methods)}")
    base = TASK.preset_config(config.method)
    if config.method == TASK.default and sizes != "preset":
        base = TASK.sized_for(base, torch.device(sizes))
    render = replace(base.render, contraction=config.contraction)
    if config.steps_per_ray is not None:
        render = replace(render, steps_per_ray=config.steps_per_ray)
    if config.grid_resolution is not None:
        render = replace(render, grid_resolution=config.grid_resolution)
    return replace(base, render=render)


__all__ = ["FieldForgeModel", "FieldForgeModelConfig", "run_config"]
