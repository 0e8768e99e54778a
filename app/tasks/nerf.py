"""Radiance fields: a field + occupancy grid trained on random rays of a capture's train views
(``fieldforge train nerf``).

Presets choose the field (encoding, network, radiance head) and, where the method prescribes them, the
optimizer; defaults stay in the component dataclasses. Sampling for every method is the same
occupancy-grid marcher (nerfacc-style), so methods differ only in the field. Rays are packed: each ray
keeps only its samples in occupied cells before its transmittance vanishes, which is what makes the CPU
path usable. The number of rays per step adapts so a step has about ``render.target_samples`` samples.
"""

import dataclasses
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
import tyro
from torch import Tensor, nn

from fieldforge.app.config import MethodPreset, OptimizerConfig, RadianceFieldConfig, TrainerConfig, task_field
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks.base import TaskContext, TaskDefinition, summary_parts
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.data.captures import load_capture
from fieldforge.data.captures.capture import Cameras, Capture, CaptureOptions
from fieldforge.data.samplers import PixelBank
from fieldforge.data.transforms import Similarity
from fieldforge.fields.encodings import FourierEncodingConfig, FrequencyEncodingConfig
from fieldforge.fields.field import FieldConfig
from fieldforge.fields.fresh import FreshCandidate, NerfFreshConfig, fresh_select, init_render_config
from fieldforge.fields.metrics import psnr, ssim
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.radiance import RadianceHeadConfig
from fieldforge.fields.radiance_model import NerfModel, RenderConfig
from fieldforge.fields.rendering.rays import generate_rays, ndc_rays

DEFAULT_METHOD = "ngp"
"""instant-ngp on every device (25.95 dB on lego_half after 376 s on 2 CPU cores, 31.1 dB in 75 s on an H100)."""

@dataclass(frozen=True)
class NerfTrainConfig:
    """Train a radiance field on a multi-view capture."""

    data: Path = Path("")
    """Capture: a directory or transforms file (nerfstudio, Blender, LLFF, COLMAP)."""
    format: Literal["auto", "nerfstudio", "blender", "llff", "colmap"] = "auto"
    """Capture format ('auto' detects it)."""
    method: str = DEFAULT_METHOD
    """Method preset; --field.* options override it."""
    field: RadianceFieldConfig = dataclasses.field(default_factory=lambda: task_field(METHODS[DEFAULT_METHOD].field, RadianceFieldConfig))
    optim: OptimizerConfig = dataclasses.field(default_factory=lambda: METHODS[DEFAULT_METHOD].optim)
    trainer: Annotated[TrainerConfig, tyro.conf.OmitArgPrefixes] = dataclasses.field(
        default_factory=lambda: TrainerConfig(steps=3000, batch_size=4096, eval_every=1000, checkpoint_every=1000)
    )
    """--batch-size is the initial number of rays per step (adapted to --render.target-samples)."""
    capture: Annotated[CaptureOptions, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=CaptureOptions)
    """How the capture is read (--downscale, --background, --holdout-every, …; old spelling --capture.* still works)."""
    render: RenderConfig = dataclasses.field(default_factory=RenderConfig)
    loss: Literal["mse", "smooth_l1"] = "mse"
    """Photometric loss per ray."""
    eval_views: int = 4
    """Periodic evaluations render the first N test views (the final one renders all)."""
    eval_max_side: int = 200
    """Periodic evaluations render at most this many pixels on the longer side (the final one: full size)."""
    fresh: bool = False
    """Pick the encoding's frequency hyperparameter (FF σ, PE top octave, SIREN ω₀, hash-grid finest resolution) with
    FreSh before training: spectra of the untrained candidates vs a few training views rendered at init."""
    fresh_search: NerfFreshConfig = dataclasses.field(default_factory=NerfFreshConfig)
    """FreSh candidates and settings (used with --fresh)."""


_NGP_OPTIM = OptimizerConfig(lr=1e-2, final_lr_ratio=0.03, warmup_steps=100, eps=1e-15, weight_decay=1e-6)
"""instant-ngp / nerfacc: Adam lr 1e-2, ε 1e-15, small weight decay, decayed about 30× over training."""


def _ngp_field() -> FieldConfig:
    from fieldforge.fields.encodings.hashgrid import HashGridEncodingConfig

    return FieldConfig(
        encoding=HashGridEncodingConfig(),
        network=MLPConfig(width=64, n_hidden_layers=1),
        head="radiance",
        radiance=RadianceHeadConfig(density_bias=-1.0),  # nerfacc: σ = trunc_exp(raw − 1)
    )


METHODS: dict[str, MethodPreset] = {
    "nerf": MethodPreset(
        FieldConfig(
            encoding=FrequencyEncodingConfig(n_frequencies=10),
            network=MLPConfig(width=256, n_hidden_layers=8, skips=(4,)),
            head="radiance",
            radiance=RadianceHeadConfig(
                density_activation="softplus",  # nerfstudio's vanilla NeRF; ReLU can start (and stay) empty
                geo_feat_dim=256,
                direction_encoding=FrequencyEncodingConfig(n_frequencies=4),
                color_network=MLPConfig(width=128, n_hidden_layers=1),
            ),
        ),
        "NeRF (Mildenhall et al. 2020): 10-octave PE, 8×256 MLP with a skip at 4, 4-octave view PE; occupancy-grid sampling",
        OptimizerConfig(lr=5e-4, final_lr_ratio=0.1),
    ),
    "ngp": MethodPreset(
        _ngp_field(),
        "instant-ngp (Müller et al. 2022): 16-level hash grid, 1×64 density MLP, SH-4 view encoding, 2×64 colour MLP",
        _NGP_OPTIM,
    ),
    "ff": MethodPreset(
        FieldConfig(
            encoding=FourierEncodingConfig(sigma=8.0, n_features=256, include_input=True),
            network=MLPConfig(width=256, n_hidden_layers=4),
            head="radiance",
            radiance=RadianceHeadConfig(geo_feat_dim=32, color_network=MLPConfig(width=64, n_hidden_layers=2)),
        ),
        "Gaussian Fourier features (Tancik et al. 2020) σ=8 cycles per box, 256 frequencies + 4×256 MLP, SH-4 views",
        OptimizerConfig(lr=1e-3, final_lr_ratio=0.1),
    ),
}


def _more_presets() -> dict[str, MethodPreset]:
    """Presets of the progressive and grid-hybrid representations (imported lazily: other modules)."""
    from fieldforge.fields.encodings import CoarseToFineFrequencyConfig, HashGridEncodingConfig, SAPEConfig
    from fieldforge.fields.networks import CAMConfig, PINsConfig, RBFConfig, TileBankConfig

    nerf = METHODS["nerf"]
    ff = METHODS["ff"]
    return {
        "c2f": MethodPreset(
            replace(nerf.field, encoding=CoarseToFineFrequencyConfig(n_frequencies=10, window_start=0.1, window_end=0.5)),
            "NeRF with BARF's coarse-to-fine window over the 10 position octaves (opens over 10%–50% of training)",
            nerf.optim,
        ),
        "sape": MethodPreset(
            replace(ff.field, encoding=SAPEConfig(sigma=8.0, n_features=256)),
            "SAPE: the ff preset's Fourier features unmasked per 64³ cell while the cell's ray loss stays > 1e-3",
            ff.optim,
        ),
        "cam": MethodPreset(
            replace(
                nerf.field,
                network=CAMConfig(mlp=MLPConfig(width=256, n_hidden_layers=4), grid_resolution=(64,)),
            ),
            "NeRF PE + CAM: 4×256 MLP modulated by scalar tri-plane γ/β grids (64², grid lr ×10)",
            nerf.optim,
        ),
        "pins": MethodPreset(
            replace(ff.field, network=PINsConfig(width=160)),
            "PINs: the ff preset's Fourier features in 4 bands, 4 progressively opened residual levels of 2×160",
            ff.optim,
        ),
        "rbf": MethodPreset(
            replace(METHODS["ngp"].field, encoding=HashGridEncodingConfig(log2_table_size=17), network=RBFConfig()),
            "GNF: hash grid (16×2, 2^17 rows/level) + 64 Gaussian RBF kernels + linear read-out, SH-4 colour branch",
            _NGP_OPTIM,
        ),
        "kilonerf": MethodPreset(
            FieldConfig(
                encoding=FrequencyEncodingConfig(n_frequencies=10),
                network=TileBankConfig(),
                head="radiance",
                radiance=RadianceHeadConfig(
                    density_activation="softplus",
                    geo_feat_dim=32,
                    direction_encoding=FrequencyEncodingConfig(n_frequencies=4),
                    color_network=TileBankConfig(n_hidden_layers=1),
                ),
            ),
            "KiloNeRF (Reiser et al. 2021): 16 tiles along the box's longest axis, each a tiny MLP (10-octave PE → 2×32 ReLU → "
            "density + 32-d feature; + 4-octave view PE → 32 → RGB); best distilled from a teacher (fieldforge distill)",
            OptimizerConfig(lr=1e-3, final_lr_ratio=0.1),
        ),
    }


METHODS.update(_more_presets())


class NerfTask:
    """Trainer task: photometric loss on random rays of the training views; test-view PSNR/SSIM."""

    def __init__(self, model: NerfModel, capture: Capture, config: NerfTrainConfig, device: torch.device, seed: int) -> None:
        self.model = model
        self.capture = capture
        self.config = config
        self.device = device
        self.render = config.render
        self.bank = PixelBank.build(capture, capture.split["train"], device)
        cams = capture.cameras
        self.c2w, self.intr, self.dist = cams.camera_to_world.to(device), cams.intrinsics.to(device), cams.distortion.to(device)
        self.has_distortion = cams.has_distortion()
        self.ndc = cams.ndc_projection() if capture.ndc else None
        self.background = capture.background.to(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.n_rays = config.trainer.batch_size
        self.last_renders: list[tuple[int, Tensor, Tensor]] = []
        self.seed = seed

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def rays(self, frames: Tensor, pix: Tensor) -> tuple[Tensor, Tensor]:
        frames, pix = frames.to(self.device), pix.to(self.device)
        dist = self.dist[frames] if self.has_distortion else None
        o, d = generate_rays(self.c2w[frames], self.intr[frames], pix, dist)
        if self.ndc is not None:
            o, d = ndc_rays(o, d, *self.ndc)
        return o, d

    def train_step(self, ctx: StepContext) -> StepResult:
        if ctx.step % self.render.grid_update_every == 0:
            self.model.update_grid(ctx.step, self.config.trainer.seed)  # one seed on every rank: the ranks share the grid
        frames, pix, colors = self.bank.sample(self.n_rays, self.generator)
        colors = colors.to(self.device)
        o, d = self.rays(frames, pix)
        if colors.shape[-1] == 4:
            if self.render.random_background:
                bg = torch.rand(colors.shape[0], 3, generator=self.generator).to(self.device)
            else:
                bg = self.background.expand(colors.shape[0], 3)
            target = colors[:, :3] * colors[:, 3:] + bg * (1.0 - colors[:, 3:])
        else:
            bg, target = self.background, colors
        cap = 4 * self.render.target_samples if self.render.target_samples > 0 else None
        out, positions, ray_indices = self.model.render_rays(o, d, bg, training=True, generator=self.generator, max_samples=cap)
        target = target[: out.rgb.shape[0]]  # rays past the sample budget were dropped
        if self.config.loss == "smooth_l1":
            per_ray = F.smooth_l1_loss(out.rgb.float(), target, reduction="none", beta=0.1).mean(-1)
        else:
            per_ray = ((out.rgb.float() - target) ** 2).mean(-1)
        loss = per_ray.mean()
        if out.n_samples == 0:  # every ray in empty space: nothing to learn from this batch, keep a graph
            loss = loss + 0.0 * sum(p.sum() for p in self.model.parameters() if p.requires_grad)
        mse = float(((out.rgb.detach().float() - target) ** 2).mean())
        n_rays, n_samples = target.shape[0], out.n_samples
        if self.render.target_samples > 0:
            ratio = self.render.target_samples / max(n_samples, 1)
            self.n_rays = int(min(self.render.max_rays, max(256, self.n_rays * ratio)))
        coords = psl = None
        if n_samples:
            # progressive encodings see the sample positions and the loss of each sample's ray
            coords = self.model.field.to_unit(positions.detach()).clamp(0, 1)
            psl = per_ray.detach()[ray_indices]
        return StepResult(
            loss=loss,
            coords=coords,
            per_sample_loss=psl,
            log={"psnr": -10 * math.log10(max(mse, 1e-12)), "rays": float(n_rays), "samples_per_ray": n_samples / max(1, n_rays)},
        )

    # -- evaluation --------------------------------------------------------------------------------
    def render_view(self, index: int, max_side: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(rgb, depth, opacity)`` of a capture view, at most ``max_side`` pixels on its longer side."""
        cams = self.capture.cameras
        dist = cams.distortion[index] if self.has_distortion else None
        k, w, h = scaled_view(cams, index, max_side)
        return self.model.render_image(cams.camera_to_world[index], k, w, h, dist, self.background, self.ndc, self.render.chunk)

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        """Final: every test view at full resolution. Periodic: the first ``eval_views`` at ≤ ``eval_max_side`` px."""
        views = self.capture.split["test"] or self.capture.split["train"][:1]
        max_side = None if final else self.config.eval_max_side
        if not final:
            views = views[: self.config.eval_views]
        t0 = time.perf_counter()
        ps, ss, n_pix = [], [], 0
        self.last_renders = []
        for i in track(views, "render test views" if final else "evaluate"):
            rgb, _, _ = self.render_view(i, max_side)
            target = resized(self.capture.composited(i), rgb.shape[0], rgb.shape[1])
            ps.append(psnr(rgb, target))
            ss.append(ssim(rgb, target))
            n_pix += rgb.shape[0] * rgb.shape[1]
            self.last_renders.append((i, rgb, target))
        dt = time.perf_counter() - t0
        mean_mse = sum(10 ** (-p / 10) for p in ps) / len(ps)
        return {
            "psnr": sum(ps) / len(ps),
            "psnr_of_mean_mse": -10 * math.log10(mean_mse),
            "ssim": sum(ss) / len(ss),
            "eval_views": float(len(views)),
            "render_rays_per_s": n_pix / max(dt, 1e-9),
            "grid_occupancy": self.model.grid.occupancy_fraction(),
        }

    def preview(self) -> bytes | None:
        """PNG of the first view of the last evaluation beside its ground truth."""
        if not self.last_renders:
            return None
        _, rgb, target = self.last_renders[0]
        return encode_display_png(torch.cat([rgb, target.float()], dim=1))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "n_rays": self.n_rays}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.n_rays = int(state["n_rays"])


def scaled_view(cameras: Cameras, index: int, max_side: int | None = None, short_side: int | None = None) -> tuple[Tensor, int, int]:
    """``(intrinsics, width, height)`` of a view scaled down to ``max_side`` on its longer side, or to
    ``short_side`` on its shorter side (``None``: as captured)."""
    w, h = int(cameras.width[index]), int(cameras.height[index])
    k = cameras.intrinsics[index].clone().float()
    if short_side is not None:
        s = short_side / min(w, h)
    elif max_side is not None and max(w, h) > max_side:
        s = max_side / max(w, h)
    else:
        return k, w, h
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    k[0], k[2] = k[0] * nw / w, k[2] * nw / w
    k[1], k[3] = k[1] * nh / h, k[3] * nh / h
    return k, nw, nh


def resized(image: Tensor, height: int, width: int) -> Tensor:
    """``(h, w, c)`` image antialias-resized to ``height × width`` (unchanged when it already is)."""
    if image.shape[:2] == (height, width):
        return image
    x = image.float().permute(2, 0, 1)[None]
    return F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)[0].permute(1, 2, 0)


def fresh_views(capture: Capture, count: int) -> list[int]:
    """``count`` training views spread evenly over the training split."""
    train = capture.split["train"]
    count = max(1, min(count, len(train)))
    return [train[round(i * (len(train) - 1) / max(1, count - 1))] for i in range(count)] if count > 1 else [train[0]]


def capture_metadata(capture: Capture) -> dict:
    """What exporters need without re-reading the images (written to ``<run>/capture.json``)."""
    return {
        "format": capture.format,
        "source": str(capture.source),
        "cameras": capture.cameras.to_dict(),
        "split": capture.split,
        "normalization": capture.normalization.to_dict(),
        "scene_box": capture.scene_box.tolist(),
        "background": capture.background.tolist(),
        "ndc": capture.ndc,
        "scene_model": capture.scene_model,
        "scene_reason": capture.scene_reason,
        "image_paths": [str(p) for p in capture.image_paths],
        "downscale": capture.downscale,
        "transfer": capture.transfer,
        **sparse_points_preview(capture),
    }


SPARSE_PREVIEW_POINTS = 4096
"""Sparse points kept in capture.json for the viewer (a deterministic subsample, normalized frame)."""


def sparse_points_preview(capture: Capture) -> dict:
    """``{"sparse_points": {"xyz": [[x, y, z], …], "rgb": …}}`` (≤ SPARSE_PREVIEW_POINTS), or nothing."""
    if capture.points is None or len(capture.points) == 0:
        return {}
    pts = capture.points.float()
    keep = torch.randperm(len(pts), generator=torch.Generator().manual_seed(0))[:SPARSE_PREVIEW_POINTS]
    out = {"xyz": [[round(v, 5) for v in p] for p in pts[keep].tolist()]}
    if capture.point_colors is not None:
        out["rgb"] = [[round(v, 3) for v in c] for c in capture.point_colors.float()[keep].tolist()]
    return {"sparse_points": out}




def encode_display_png(values: Tensor) -> bytes:
    """8-bit PNG of stored (display) values in [0, 1]: a capture's PNGs already hold display values."""
    from fieldforge.data.formats import encode_png

    return encode_png(values.detach().float().clamp(0, 1).cpu())


class NerfTaskDefinition(TaskDefinition):
    name = "nerf"
    config_type = NerfTrainConfig
    methods = METHODS
    default = DEFAULT_METHOD
    data_hint = "a capture directory or transforms file"
    info_file = "capture.json"
    extra_help = ("--process True: --data may be a folder of unposed photos or a video; it is posed first with "
                  "'fieldforge capture process' into DATA-capture/ (reused when it exists).\n")

    def preset_config(self, method: str) -> NerfTrainConfig:
        preset = METHODS[method]
        return replace(NerfTrainConfig(), method=method, field=task_field(preset.field, RadianceFieldConfig), optim=preset.optim)

    def sized_for(self, config: NerfTrainConfig, device: torch.device) -> NerfTrainConfig:
        """CPU (README's 2-core lego run): 2^17-row tables, 512 steps per ray, 64³ occupancy grid, 128 samples per
        ray in unbounded and forward-facing scenes (a step's 2^16 samples then hold ~4× more rays than with 512:
        real photos leave little empty space to skip); CUDA (instant-ngp / the H100 run): 2^19-row tables,
        finest resolution 2048, 1024 steps per ray, 128³ grid, 512 samples per ray in those scenes."""
        enc = config.field.encoding
        if device.type == "cuda":
            field = replace(config.field, encoding=replace(enc, log2_table_size=19, max_resolution=2048))
            render = replace(config.render, grid_resolution=128, steps_per_ray=1024, contraction_steps=512)
        else:
            field = replace(config.field, encoding=replace(enc, log2_table_size=17))
            render = replace(config.render, grid_resolution=64, steps_per_ray=512, contraction_steps=128)
        return replace(config, field=field, render=render)

    def prepare(self, config: NerfTrainConfig) -> Capture:
        options = config.capture
        if config.render.contraction and options.scene_model == "auto" and options.ndc is None:
            options = replace(options, scene_model="unbounded")  # the older spelling of --scene-model unbounded
        return load_capture(config.data, options, config.format)

    def run_info(self, config: NerfTrainConfig, capture: Capture) -> dict:
        return capture_metadata(capture)

    def build_model(self, config: NerfTrainConfig, info: dict) -> NerfModel:
        """The scene model recorded in capture.json decides contraction (runs written before it: the config's flag)
        and, in NDC scenes, the marching step."""
        render = config.render
        recorded = info.get("scene_model")
        if recorded is not None and render.contraction != (recorded == "unbounded"):
            render = replace(render, contraction=recorded == "unbounded")
        if recorded == "ndc":  # contraction_steps across NDC depth −1..1, the box [-1, 1]³'s diagonal being 2√3
            render = replace(render, steps_per_ray=math.ceil(render.contraction_steps * math.sqrt(3.0)))
        return NerfModel(config.field, torch.tensor(info["scene_box"], dtype=torch.float32), render)

    def build_task(self, config: NerfTrainConfig, model: nn.Module, capture: Capture, ctx: TaskContext) -> NerfTask:
        return NerfTask(model, capture, config, ctx.device, ctx.seed(config.trainer.seed))  # type: ignore[arg-type]

    def select_fresh(self, config: NerfTrainConfig, capture: Capture, info: dict, device: torch.device):
        """Untrained renders of a few training views at 2K+1 px against those views (FreSh's torch-ngp fork)."""
        from fieldforge.app.fresh import candidates

        fresh: NerfFreshConfig = config.fresh_search
        parameter, configs = candidates(config.field, fresh)
        side = 2 * fresh.crop + 1
        views = fresh_views(capture, fresh.views)
        cams = capture.cameras
        scaled = [scaled_view(cams, i, short_side=side) for i in views]
        goal = torch.stack([resized(capture.composited(i), h, w) for i, (_, w, h) in zip(views, scaled)])
        ndc = cams.ndc_projection() if capture.ndc else None
        render = replace(config.render, steps_per_ray=fresh.steps_per_ray)

        def make(field_config: FieldConfig):
            def renders(seed: int) -> Tensor:
                torch.manual_seed(seed)
                model = self.build_model(replace(config, field=init_render_config(field_config, seed), render=render), info).to(device).eval()
                out = []
                with torch.no_grad():
                    for i, (k, w, h) in zip(views, scaled):
                        dist = cams.distortion[i] if cams.has_distortion() else None
                        out.append(model.render_image(cams.camera_to_world[i], k, w, h, dist, capture.background, ndc, render.chunk)[0])
                return torch.stack(out)

            return renders

        cands = [FreshCandidate(label, value, make(cfg)) for label, value, cfg in configs]
        result = fresh_select(cands, goal, seeds=fresh.seeds, crop=fresh.crop, side=side, spatial_dims=2, parameter=parameter)
        chosen = next(cfg for label, _, cfg in configs if label == result.best.label)
        return chosen, result, f"{len(views)} training views at {side} px"

    def describe(self, config: NerfTrainConfig, capture: Capture, model: nn.Module, device: torch.device) -> str:
        n = sum(p.numel() for p in model.field.parameters())
        scene = f"scene model {capture.scene_model}: {capture.scene_reason}" if capture.scene_reason else ""
        line = f"{config.method}: {capture.describe()}; {n:,} parameters, {config.trainer.steps} steps on {device}"
        return f"{scene}\n{line}" if scene else line

    def finish(self, run: RunDir, task: NerfTask, config: NerfTrainConfig, capture: Capture, metrics: dict) -> None:
        from fieldforge.app.atomic import atomic_write_bytes

        for i, rgb, target in task.last_renders:
            atomic_write_bytes(run.renders_dir / f"test_{i:04d}.png", encode_display_png(rgb))
            atomic_write_bytes(run.renders_dir / f"test_{i:04d}_gt.png", encode_display_png(target))

    def summary_line(self, config: NerfTrainConfig, metrics: dict, path: Path) -> str:
        parts = summary_parts(metrics, (("psnr", "test PSNR {:.2f} dB"), ("ssim", "SSIM {:.4f}")))
        return ", ".join([f"trained {config.method}", *parts]) + f" → {path}"

    def frame(self, info: dict) -> Similarity:
        return Similarity.from_dict(info["normalization"])


TASK = NerfTaskDefinition()


def nerf_train_config(method: str) -> NerfTrainConfig:
    """The run config of a radiance-field method preset."""
    return TASK.preset_config(method)
