"""Image fitting: a 2D field regressed onto an image's stored values (``fieldforge train image``)."""

import dataclasses
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import torch
import tyro
from torch import Tensor, nn

from fieldforge.app.config import MethodPreset, OptimizerConfig, TaskFieldConfig, TrainerConfig, task_field
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks.base import TaskContext, TaskDefinition, summary_parts
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.data.images import ImageData, decode, encode_image, load_image
from fieldforge.data.samplers import PixelSampler, pixel_coords
from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig, IdentityEncodingConfig
from fieldforge.fields.encodings.coarse_to_fine import CoarseToFineFourierConfig
from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig
from fieldforge.fields.encodings.sape import SAPEConfig
from fieldforge.fields.field import FieldConfig, make_field
from fieldforge.fields.fresh import FreshCandidate, FreshConfig, fresh_select, init_render_config, resize_to_cube
from fieldforge.fields.losses import per_sample_loss
from fieldforge.fields.metrics import psnr, ssim
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.networks.cam import CAMConfig
from fieldforge.fields.networks.kilonerf import TileBankConfig
from fieldforge.fields.networks.pins import PINsConfig
from fieldforge.fields.networks.rbf import RBFConfig
from fieldforge.fields.networks.siren import SirenConfig

METHODS: dict[str, MethodPreset] = {
    "mlp": MethodPreset(
        FieldConfig(encoding=IdentityEncodingConfig()),
        "ReLU MLP on raw coordinates: the spectral-bias baseline",
    ),
    "pe": MethodPreset(
        FieldConfig(encoding=FrequencyEncodingConfig(n_frequencies=8)),
        "NeRF positional encoding, 8 octaves (BARF's image setting) + ReLU MLP",
    ),
    "ff": MethodPreset(
        FieldConfig(encoding=FourierEncodingConfig(sigma=10.0, n_features=256)),
        "Gaussian Fourier features σ=10, 256 frequencies (Tancik et al., natural images) + ReLU MLP",
    ),
    "ngp": MethodPreset(
        FieldConfig(
            encoding=HashGridEncodingConfig(log2_table_size=14, max_resolution=512),
            network=MLPConfig(width=64, n_hidden_layers=2),
        ),
        "instant-ngp hash grid (16 levels × 2, 2^14 rows/level, 16→512; ≈ ff's parameter count) + 2×64 ReLU MLP, lr 1e-2",
        OptimizerConfig(lr=1e-2),
    ),
    "cam": MethodPreset(
        FieldConfig(encoding=FourierEncodingConfig(sigma=10.0, n_features=256), network=CAMConfig()),
        "Fourier features σ=10 + CAM-modulated 3×256 MLP (32×32 scalar γ/β grids, layer norm, grid lr ×10)",
    ),
    "rbf": MethodPreset(
        FieldConfig(encoding=HashGridEncodingConfig(log2_table_size=14, max_resolution=512), network=RBFConfig()),
        "GNF: hash grid (16×2, 2^14 rows/level, 16→512) + 64 Gaussian RBF kernels + linear read-out, lr 1e-2",
        OptimizerConfig(lr=1e-2),
    ),
    "c2f": MethodPreset(
        FieldConfig(encoding=CoarseToFineFourierConfig(sigma=10.0, n_features=256, include_input=True)),
        "Fourier features σ=10 opened low→high by BARF's cosine window over the first 40% of training + ReLU MLP",
    ),
    "pins": MethodPreset(
        FieldConfig(encoding=FourierEncodingConfig(sigma=10.0, n_features=256), network=PINsConfig(width=160)),
        "PINs: Fourier features σ=10 split into 4 bands, 4 residual levels of 2×160 opened progressively (≈ ff's parameters)",
    ),
    "sape": MethodPreset(
        FieldConfig(encoding=SAPEConfig(sigma=20.0, n_features=256)),
        "SAPE: Fourier features σ=20 (the paper's), unmasked per 128² grid cell while the local loss > 1e-3 + ReLU MLP",
    ),
    "siren": MethodPreset(
        FieldConfig(encoding=IdentityEncodingConfig(), network=SirenConfig()),
        "SIREN 3×256, ω₀=30, on coordinates in [-1,1], lr 1e-4 (Sitzmann et al.)",
        OptimizerConfig(lr=1e-4),
    ),
    "kilonerf": MethodPreset(
        FieldConfig(encoding=FrequencyEncodingConfig(n_frequencies=10), network=TileBankConfig()),
        "KiloNeRF tiles: 16×16 tiny MLPs (10-octave PE → 2×32 ReLU → RGB), each pixel evaluated by its tile's MLP, lr 5e-3",
        OptimizerConfig(lr=5e-3),
    ),
}

DEFAULT_METHOD = "ngp"
"""The default on every device: a hash grid reaches 30 dB on a Kodak image in seconds on a CPU (ff: minutes)."""


@dataclass(frozen=True)
class ImageTrainConfig:
    """Fit a neural field to one image."""

    data: Path = Path("")
    """Image file (PNG, JPEG, TIFF, EXR)."""
    method: str = DEFAULT_METHOD
    """Method preset (its values are the defaults of the field and optimizer options below)."""
    field: TaskFieldConfig = dataclasses.field(default_factory=lambda: task_field(METHODS[DEFAULT_METHOD].field))
    optim: OptimizerConfig = dataclasses.field(default_factory=lambda: METHODS[DEFAULT_METHOD].optim)
    trainer: Annotated[TrainerConfig, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=TrainerConfig)
    loss: Literal["mse", "l1"] = "mse"
    """Per-pixel loss on the stored (sRGB-encoded for PNG/JPEG) values."""
    max_pixels: int = 64_000_000
    """Refuse images with more pixels than this (after --downscale) unless --fit-budget."""
    downscale: int = 1
    """Integer box-filter downscale factor applied on load."""
    fit_budget: bool = False
    """Downscale images over --max-pixels until they fit instead of refusing them."""
    fresh: bool = False
    """Pick the encoding's frequency hyperparameter (FF σ, PE top octave, SIREN ω₀, hash-grid finest resolution) with FreSh before training."""
    fresh_search: FreshConfig = dataclasses.field(default_factory=FreshConfig)
    """FreSh candidates and settings (used with --fresh)."""


class ImageTask:
    """Trainer task: a 2D field regressed onto the image's stored values at random pixels."""

    def __init__(self, field: nn.Module, sampler: PixelSampler, target: Tensor, loss: str = "mse", transfer: str = "srgb",
                 has_alpha: bool = False) -> None:
        self.model = field
        self.transfer, self.has_alpha = transfer, has_alpha
        self.sampler = sampler
        self.target = target  # (h, w, c) on CPU
        self.loss = loss
        self.last_render: Tensor | None = None

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def train_step(self, ctx: StepContext) -> StepResult:
        coords, target = self.sampler.sample()
        pred = self.model(coords).values
        psl = per_sample_loss(self.loss, pred, target)
        loss = psl.mean()
        mse = float(((pred.detach().float() - target) ** 2).mean())
        return StepResult(loss=loss, coords=coords, per_sample_loss=psl, log={"psnr": -10 * math.log10(max(mse, 1e-12))})

    def render(self, track: Track | None = None) -> Tensor:
        """The field at every training pixel, ``(h, w, c)`` on CPU."""
        chunks = list(self.sampler.chunks())
        items = track(chunks, "render") if track is not None else chunks
        parts = [self.model(c).values.float().cpu() for c, _ in items]
        return torch.cat(parts).reshape(self.target.shape).clamp(0, 1)

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        image = self.render(track)
        self.last_render = image
        return {"psnr": psnr(image, self.target), "ssim": ssim(image, self.target)}

    def preview(self) -> bytes | None:
        """PNG of the last evaluated render, as the final reconstruction is written."""
        if self.last_render is None:
            return None
        return encode_image(decode(self.last_render, self.transfer, self.has_alpha), "png", self.has_alpha)  # type: ignore[arg-type]

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])


class ImageTaskDefinition(TaskDefinition):
    name = "image"
    config_type = ImageTrainConfig
    methods = METHODS
    default = DEFAULT_METHOD
    data_hint = "an image file"

    def preset_config(self, method: str) -> ImageTrainConfig:
        preset = METHODS[method]
        return replace(ImageTrainConfig(), method=method, field=task_field(preset.field), optim=preset.optim)

    def sized_for(self, config: ImageTrainConfig, device: torch.device) -> ImageTrainConfig:
        """CPU: 2^14-row tables, 8,192-pixel batches, 1,000 steps (≈ 40 s on 2 cores for a Kodak image);
        CUDA: instant-ngp's 2^19-row tables, 65,536-pixel batches, 2,000 steps."""
        if device.type == "cuda":
            field = replace(config.field, encoding=replace(config.field.encoding, log2_table_size=19))
            return replace(config, field=field, trainer=replace(config.trainer, steps=2000, batch_size=1 << 16))
        return replace(config, trainer=replace(config.trainer, steps=1000, batch_size=8192))

    def prepare(self, config: ImageTrainConfig) -> ImageData:
        return load_image(config.data, config.max_pixels, config.downscale, config.fit_budget)

    def run_info(self, config: ImageTrainConfig, image: ImageData) -> dict:
        return {"height": image.height, "width": image.width, "channels": image.channels, "transfer": image.transfer, "has_alpha": image.has_alpha}

    def build_model(self, config: ImageTrainConfig, info: dict) -> nn.Module:
        return make_field(config.field, in_dim=2, out_dim=int(info["channels"]))

    def build_task(self, config: ImageTrainConfig, model: nn.Module, image: ImageData, ctx: TaskContext) -> ImageTask:
        target = image.encoded()
        sampler = PixelSampler(target, config.trainer.batch_size, ctx.device, seed=ctx.seed(config.trainer.seed))
        return ImageTask(model, sampler, target, config.loss, image.transfer, image.has_alpha)

    def select_fresh(self, config: ImageTrainConfig, image: ImageData, info: dict, device: torch.device):
        from fieldforge.app.fresh import candidates

        target = image.encoded()
        fresh = config.fresh_search
        h, w, c = target.shape
        parameter, configs = candidates(config.field, fresh)
        side = fresh.spectrum_side(min(h, w))
        # full resolution: render the image grid (the spectrum resizes both alike); else the square it is taken on
        rh, rw = (h, w) if side is None else (side * fresh.supersample,) * 2

        def make(field_config: FieldConfig):
            def render(seed: int) -> Tensor:
                out = self.render_at_init(replace(config, field=field_config), info, seed, rh, rw, device)
                return out if side is None or fresh.supersample == 1 else resize_to_cube(out, side, 2)

            return render

        cands = [FreshCandidate(label, value, make(cfg)) for label, value, cfg in configs]
        result = fresh_select(cands, target, seeds=fresh.seeds, crop=fresh.crop, side=side, parameter=parameter)
        chosen = next(cfg for label, _, cfg in configs if label == result.best.label)
        return chosen, result, ""

    def render_at_init(self, config: ImageTrainConfig, info: dict, seed: int, height: int, width: int, device: torch.device,
                       chunk: int = 65536) -> Tensor:
        """The untrained field of ``config`` (seeded) on a ``height × width`` pixel grid, ``(h, w, c)`` on CPU."""
        torch.manual_seed(seed)
        field = self.build_model(replace(config, field=init_render_config(config.field, seed)), info).to(device).eval()
        coords = pixel_coords(height, width).to(device)
        with torch.no_grad():
            values = torch.cat([field(coords[i : i + chunk]).values.float() for i in range(0, coords.shape[0], chunk)])
        return values.cpu().reshape(height, width, -1)

    def describe(self, config: ImageTrainConfig, image: ImageData, model: nn.Module, device: torch.device) -> str:
        n = sum(p.numel() for p in model.parameters())
        return f"{config.method}: {image.width}×{image.height}×{image.channels} ({image.transfer}) on {device}, {n:,} parameters, {config.trainer.steps} steps"

    def finish(self, run: RunDir, task: ImageTask, config: ImageTrainConfig, image: ImageData, metrics: dict) -> None:
        from fieldforge.app.atomic import atomic_write_bytes

        png = task.preview()
        assert png is not None
        atomic_write_bytes(run.renders_dir / "reconstruction.png", png)

    def summary_line(self, config: ImageTrainConfig, metrics: dict, path: Path) -> str:
        parts = summary_parts(metrics, (("psnr", "PSNR {:.2f} dB"), ("ssim", "SSIM {:.4f}")))
        return ", ".join([f"trained {config.method}", *parts]) + f" → {path}"


TASK = ImageTaskDefinition()


def image_train_config(method: str) -> ImageTrainConfig:
    """The run config of an image method preset."""
    return TASK.preset_config(method)


__all__ = ["METHODS", "TASK", "ImageTask", "ImageTrainConfig", "image_train_config"]
