"""``ns-train`` methods (entry-point group ``nerfstudio.method_configs``): one ``MethodSpecification`` per
FieldForge NeRF preset, ``fieldforge-<preset>``, with the preset's optimizer and step count translated to
nerfstudio's optimizer/scheduler configs, nerfstudio's own ``nerfstudio-data`` dataparser and data manager.

    ns-train fieldforge-ngp --data path/to/capture          # capture in nerfstudio format
    ns-train fieldforge-cam --data … --pipeline.model.steps-per-ray 512
"""

from dataclasses import dataclass
from typing import Tuple, Type

import torch
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import CosineDecaySchedulerConfig, ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.dynamic_batch import DynamicBatchPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from fieldforge.app.integrations.nerfstudio.model import FieldForgeModelConfig
from fieldforge.app.tasks.nerf import TASK

METHOD_PREFIX = "fieldforge-"
"""``ns-train`` name of a preset: ``fieldforge-<preset>``."""


@dataclass
class FieldForgeAdamConfig(AdamOptimizerConfig):
    """Adam with the preset's betas (nerfstudio's Adam config has none)."""

    _target: Type = torch.optim.Adam
    betas: Tuple[float, float] = (0.9, 0.99)


def trainer_config(method: str) -> TrainerConfig:
    """nerfstudio ``TrainerConfig`` of a FieldForge NeRF preset (its steps, optimizer and lr schedule)."""
    base = TASK.preset_config(method)
    optim, steps = base.optim, base.trainer.steps
    if optim.schedule == "cosine":
        scheduler = CosineDecaySchedulerConfig(warm_up_end=optim.warmup_steps, learning_rate_alpha=optim.final_lr_ratio, max_steps=steps)
    elif optim.schedule == "exponential":
        scheduler = ExponentialDecaySchedulerConfig(
            lr_final=optim.lr * optim.final_lr_ratio, warmup_steps=optim.warmup_steps, max_steps=steps, ramp="linear"
        )
    else:
        scheduler = None
    return TrainerConfig(
        method_name=METHOD_PREFIX + method,
        steps_per_eval_batch=500,
        steps_per_save=1000,
        max_num_iterations=steps,
        mixed_precision=False,
        # rays per batch adapt to the preset's sample budget (NerfTask's adaptive batch), starting at its batch size
        pipeline=DynamicBatchPipelineConfig(
            target_num_samples=base.render.target_samples,
            max_num_samples_per_ray=max(1, base.render.target_samples // base.trainer.batch_size),
            datamanager=VanillaDataManagerConfig(
                dataparser=NerfstudioDataParserConfig(), train_num_rays_per_batch=4096, eval_num_rays_per_batch=4096
            ),
            model=FieldForgeModelConfig(method=method, eval_num_rays_per_chunk=4096),
        ),
        optimizers={
            "fields": {
                "optimizer": FieldForgeAdamConfig(lr=optim.lr, eps=optim.eps, weight_decay=optim.weight_decay, betas=optim.betas),
                "scheduler": scheduler,
            }
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 12),
        vis="viewer",
    )


def method_specification(method: str) -> MethodSpecification:
    return MethodSpecification(config=trainer_config(method), description=f"FieldForge {method}: {TASK.methods[method].description}")


PRESETS = ("ngp", "cam", "rbf", "sape", "kilonerf")
"""The presets registered as entry points (pyproject.toml ``nerfstudio.method_configs``)."""

ngp = method_specification("ngp")
cam = method_specification("cam")
rbf = method_specification("rbf")
sape = method_specification("sape")
kilonerf = method_specification("kilonerf")

__all__ = [
    "FieldForgeAdamConfig", "METHOD_PREFIX", "PRESETS", "cam", "kilonerf", "method_specification", "ngp", "rbf", "sape", "trainer_config",
]
