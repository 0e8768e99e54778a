"""Composition roots, one straight-line function per task: data → field → task → trainer → outputs."""

import json
from dataclasses import replace

import torch
from rich.console import Console

from fieldforge.app.atomic import atomic_write_bytes, atomic_write_text
from fieldforge.app.config import ImageTrainConfig
from fieldforge.app.image_task import ImageTask
from fieldforge.app.runs import RunDir
from fieldforge.app.trainer import Trainer, resolve_device
from fieldforge.data.images import decode, encode_image, load_image
from fieldforge.data.samplers import PixelSampler
from fieldforge.fields.field import Field

console = Console(stderr=True)


def build_image_field(config: ImageTrainConfig, channels: int) -> Field:
    torch.manual_seed(config.trainer.seed)
    return Field(config.field, in_dim=2, out_dim=channels, max_steps=config.trainer.steps)


def train_image(config: ImageTrainConfig, run: RunDir | None = None) -> tuple[RunDir, dict[str, float]]:
    """Fit (or resume fitting) a field to an image; writes the run directory and returns its metrics."""
    if run is None:
        run = RunDir.create(config.trainer.output_dir, config.trainer.name, prefix=f"image-{config.method}")
    run.write_config(config)
    image = load_image(config.data, config.max_pixels, config.downscale, config.fit_budget)
    target = image.encoded()
    info = {"height": image.height, "width": image.width, "channels": image.channels, "transfer": image.transfer, "has_alpha": image.has_alpha}
    atomic_write_text(run.path / "data.json", json.dumps(info, indent=1))
    device = resolve_device(config.trainer.device)
    if config.fresh and not (run.path / "fresh.json").is_file():  # FreSh: choose the field before building it
        from fieldforge.app.fresh_image import apply_fresh

        config = apply_fresh(config, target, run, device)
    field = build_image_field(config, image.channels).to(device)
    sampler = PixelSampler(target, config.trainer.batch_size, device, seed=config.trainer.seed)
    task = ImageTask(field, sampler, target, config.loss)
    trainer = Trainer(config.trainer, config.optim, task, run, device)
    start = trainer.resume()
    if start:
        console.print(f"resuming {run.path} from step {start}")
    console.print(
        f"{config.method}: {image.width}×{image.height}×{image.channels} ({image.transfer}) on {device}, "
        f"{field.num_parameters():,} parameters, {config.trainer.steps} steps"
    )
    metrics = trainer.train()
    assert task.last_render is not None
    png = encode_image(decode(task.last_render, image.transfer, image.has_alpha), "png", image.has_alpha)
    atomic_write_bytes(run.renders_dir / "reconstruction.png", png)
    return run, metrics


def resume_image(run_path, steps: int | None = None) -> tuple[RunDir, dict[str, float]]:
    run = RunDir.open(run_path)
    config: ImageTrainConfig = run.read_config()
    if steps is not None:
        config = replace(config, trainer=replace(config.trainer, steps=steps))
    return train_image(config, run)
