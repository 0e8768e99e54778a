"""The NeRF task: a radiance field + occupancy grid trained on random rays of a capture's train views.

``NerfModel`` is what checkpoints hold (``field.*`` and ``grid.*``) and what exporters and the viewer
use, through capabilities (``Renderable``, ``HasDensity``). Rays are packed (nerfacc-style): each ray
keeps only its samples in occupied cells before its transmittance vanishes, which is what makes the CPU
path usable. The number of rays per step adapts so a step has about ``render.target_samples`` samples.
"""

import math
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fieldforge.app.config_nerf import NerfTrainConfig, RenderConfig
from fieldforge.app.trainer import StepResult
from fieldforge.data.captures.capture import Cameras, Capture
from fieldforge.fields.field import Field, FieldConfig
from fieldforge.fields.metrics import psnr, ssim
from fieldforge.fields.rendering.contraction import contract, lindisp_steps
from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid
from fieldforge.fields.rendering.rays import generate_rays, ndc_rays, pixel_grid
from fieldforge.fields.rendering.sampling import edge_samples, filter_samples, march_rays, ray_aabb_intersect
from fieldforge.fields.rendering.volume import RenderOutputs, volume_render

CONTRACTED_BOX = 2.0


class NerfModel(nn.Module):
    """Radiance field + occupancy grid over the scene box (or over contracted space)."""

    def __init__(self, field_config: FieldConfig, scene_box: Tensor, render: RenderConfig, max_steps: int = 1) -> None:
        super().__init__()
        self.render_config = render
        self.contracted = render.contraction
        self.register_buffer("scene_box", scene_box.detach().float().clone())
        if self.contracted:
            # the normalized scene box maps onto [-1, 1]^3 before contraction; the field covers [-2, 2]^3
            field_box = torch.tensor([[-CONTRACTED_BOX] * 3, [CONTRACTED_BOX] * 3])
        else:
            field_box = self.scene_box
        self.field = Field(field_config, in_dim=3, bbox=field_box, max_steps=max_steps)
        if self.field.radiance_head is None:
            raise ValueError("a NeRF needs a field with head='radiance'")
        self.grid = OccupancyGrid(field_box, render.grid_resolution)

    # -- coordinates -------------------------------------------------------------------------------
    def to_field(self, points: Tensor) -> Tensor:
        """Normalized-frame points → the field's input space (contracted when the scene is unbounded)."""
        if not self.contracted:
            return points
        lo, hi = self.scene_box[0], self.scene_box[1]
        return contract((points - (lo + hi) / 2) / ((hi - lo) / 2))

    @property
    def step_size(self) -> float:
        box = self.grid.aabb if self.contracted else self.scene_box
        return float((box[1] - box[0]).norm()) / self.render_config.steps_per_ray

    # -- capabilities (Renderable, HasDensity) -----------------------------------------------------
    def density(self, points: Tensor) -> Tensor:
        """Volume density ``(n,)`` at normalized-frame points."""
        return self.field.density(self.to_field(points))

    def rgb_density(self, points: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        return self.field.rgb_density(self.to_field(points), directions)

    # -- training hooks ----------------------------------------------------------------------------
    def update(self, step: int, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        self.field.update(step, coords, per_sample_loss)

    def param_groups(self, lr: float) -> list[dict]:
        return self.field.param_groups(lr)

    def update_grid(self, step: int, seed: int = 0) -> None:
        r = self.render_config
        self.grid.update(
            step, self.field.density, self.step_size, threshold=r.grid_threshold, decay=r.grid_decay,
            warmup_steps=r.grid_warmup_steps, seed=seed, fraction=r.grid_update_fraction,
        )

    # -- rendering ---------------------------------------------------------------------------------
    def sample(self, origins: Tensor, directions: Tensor, training: bool, generator: torch.Generator | None = None):
        r = self.render_config

        def sigma_fn(t0: Tensor, t1: Tensor, ri: Tensor) -> Tensor:
            return self.density(origins[ri] + (0.5 * (t0 + t1))[:, None] * directions[ri])

        use_sigma = sigma_fn if (r.early_stop_eps > 0 or r.alpha_thre > 0) else None
        if not self.contracted:
            return march_rays(
                origins, directions, self.scene_box, self.step_size, occupied_fn=self.grid.occupied, sigma_fn=use_sigma,
                near_plane=r.near_plane, stratified=training, generator=generator, alpha_thre=r.alpha_thre,
                early_stop_eps=r.early_stop_eps, max_steps=4 * r.steps_per_ray,
            )
        near = torch.full((origins.shape[0],), max(r.near_plane, 1e-3), device=origins.device)
        t_near, t_far = ray_aabb_intersect(origins, directions, self.scene_box)
        near = torch.where((t_far > t_near) & (t_near > near), t_near, near)
        edges = lindisp_steps(near, r.contraction_steps, stratified=training, generator=generator)
        samples = edge_samples(edges)
        return filter_samples(
            samples, origins, directions, occupied_fn=lambda p: self.grid.occupied(self.to_field(p)), sigma_fn=use_sigma,
            alpha_thre=r.alpha_thre, early_stop_eps=r.early_stop_eps,
        )

    def render_rays(
        self, origins: Tensor, directions: Tensor, background: Tensor | None, training: bool = False,
        generator: torch.Generator | None = None, max_samples: int | None = None,
    ) -> tuple[RenderOutputs, Tensor, Tensor]:
        """Render rays; also returns the field-space sample positions and their ray indices.

        With ``max_samples``, only the leading rays whose samples fit the budget are rendered (at least
        one ray): ``out`` then covers ``out.rgb.shape[0]`` rays (a training step's memory bound).
        """
        samples = self.sample(origins, directions, training, generator)
        if max_samples is not None and samples.n_samples > max_samples:
            fits = torch.cumsum(samples.counts(), 0) <= max_samples
            cut = max(1, int(fits.sum()))
            samples = samples.select(samples.ray_indices < cut)
            samples = replace(samples, n_rays=cut)
            origins, directions = origins[:cut], directions[:cut]
            if background is not None and background.ndim == 2:
                background = background[:cut]
        positions: list[Tensor] = []

        def rgb_sigma_fn(t0: Tensor, t1: Tensor, ri: Tensor) -> tuple[Tensor, Tensor]:
            p = self.to_field(origins[ri] + (0.5 * (t0 + t1))[:, None] * directions[ri])
            positions.append(p)
            return self.field.rgb_density(p, directions[ri])

        out = volume_render(samples, rgb_sigma_fn, background)
        pos = positions[0] if positions else origins.new_zeros(0, 3)
        return out, pos, samples.ray_indices

    @torch.no_grad()
    def render_image(
        self, c2w: Tensor, intrinsics: Tensor, width: int, height: int, distortion: Tensor | None, background: Tensor,
        ndc: tuple[float, float, float] | None = None, chunk: int = 8192,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(rgb (h, w, 3), depth (h, w), opacity (h, w))`` of one camera, in chunks of rays."""
        device = self.scene_box.device
        pix = pixel_grid(height, width, device)
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


def ndc_params(capture_ndc: bool, cameras: Cameras) -> tuple[float, float, float] | None:
    """``(focal, width, height)`` of the NDC projection (first camera), or None."""
    if not capture_ndc:
        return None
    return float(cameras.intrinsics[0, 0]), float(cameras.width[0]), float(cameras.height[0])


@dataclass
class PixelBank:
    """All training pixels, flattened (CPU, pinned for CUDA): colours plus the frame of each pixel."""

    colors: Tensor
    """``(N, c)`` stored values (uint8 or float)."""
    offsets: Tensor
    """``(F + 1,)`` start of each frame's pixels."""
    frames: Tensor
    """``(F,)`` capture frame index of each bank frame."""
    widths: Tensor
    valid: Tensor | None
    """Indices of usable pixels (masks) or None for all."""

    @staticmethod
    def build(capture: Capture, indices: list[int], device: torch.device) -> "PixelBank":
        ims = [capture.images[i] for i in indices]
        channels = max(im.shape[-1] for im in ims)
        flat = []
        for im in ims:
            if im.shape[-1] < channels:  # an RGB frame among RGBA ones: opaque
                alpha = torch.full((*im.shape[:2], 1), 255 if im.dtype == torch.uint8 else 1.0, dtype=im.dtype)
                im = torch.cat([im, alpha], dim=-1)
            flat.append(im.reshape(-1, channels))
        dtype = torch.uint8 if all(f.dtype == torch.uint8 for f in flat) else torch.float32
        colors = torch.cat([f if f.dtype == dtype else (f.float() / 255.0 if f.dtype == torch.uint8 else f) for f in flat])
        sizes = torch.tensor([im.shape[0] * im.shape[1] for im in ims])
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
        valid = None
        if capture.masks is not None:
            parts = []
            for k, i in enumerate(indices):
                m = capture.masks[i]
                local = torch.arange(int(sizes[k])) if m is None else torch.nonzero(m.reshape(-1)).squeeze(-1)
                parts.append(local + offsets[k])
            valid = torch.cat(parts)
        if device.type == "cuda":
            colors = colors.pin_memory()
        widths = torch.tensor([im.shape[1] for im in ims])
        return PixelBank(colors, offsets, torch.tensor(indices), widths, valid)

    @property
    def n_pixels(self) -> int:
        return int(self.valid.shape[0]) if self.valid is not None else int(self.offsets[-1])

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``(frame index (n,), pixel centres (n, 2), colours (n, c) float)`` of random pixels."""
        idx = torch.randint(0, self.n_pixels, (n,), generator=generator)
        if self.valid is not None:
            idx = self.valid[idx]
        k = torch.searchsorted(self.offsets, idx, right=True) - 1
        local = idx - self.offsets[k]
        w = self.widths[k]
        y = torch.div(local, w, rounding_mode="floor")
        x = local - y * w
        pix = torch.stack([x.float() + 0.5, y.float() + 0.5], dim=-1)
        c = self.colors[idx]
        c = c.float() / 255.0 if c.dtype == torch.uint8 else c.float()
        return self.frames[k], pix, c


class NerfTask:
    def __init__(self, model: NerfModel, capture: Capture, config: NerfTrainConfig, device: torch.device) -> None:
        self.model = model
        self.capture = capture
        self.config = config
        self.device = device
        self.render = config.render
        self.bank = PixelBank.build(capture, capture.split["train"], device)
        cams = capture.cameras
        self.c2w, self.intr, self.dist = cams.camera_to_world.to(device), cams.intrinsics.to(device), cams.distortion.to(device)
        self.has_distortion = cams.has_distortion()
        self.ndc = ndc_params(capture.ndc, cams)
        self.background = capture.background.to(device)
        self.generator = torch.Generator().manual_seed(config.trainer.seed)
        self.n_rays = config.trainer.batch_size
        self.total_steps = config.trainer.steps
        self.last_renders: list[tuple[int, Tensor, Tensor]] = []
        self.seed = config.trainer.seed

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def rays(self, frames: Tensor, pix: Tensor) -> tuple[Tensor, Tensor]:
        frames, pix = frames.to(self.device), pix.to(self.device)
        dist = self.dist[frames] if self.has_distortion else None
        o, d = generate_rays(self.c2w[frames], self.intr[frames], pix, dist)
        if self.ndc is not None:
            o, d = ndc_rays(o, d, *self.ndc)
        return o, d

    def train_step(self, step: int) -> StepResult:
        if step % self.render.grid_update_every == 0:
            self.model.update_grid(step, self.seed)
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
    def render_view(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        cams = self.capture.cameras
        dist = cams.distortion[index] if self.has_distortion else None
        return self.model.render_image(
            cams.camera_to_world[index], cams.intrinsics[index], int(cams.width[index]), int(cams.height[index]), dist,
            self.background, self.ndc, self.render.chunk,
        )

    def evaluate(self, step: int) -> dict[str, float]:
        views = self.capture.split["test"] or self.capture.split["train"][:1]
        if step < self.total_steps:
            views = views[: self.config.eval_views]
        t0 = time.perf_counter()
        ps, ss, n_pix = [], [], 0
        self.last_renders = []
        for i in views:
            rgb, _, _ = self.render_view(i)
            target = self.capture.composited(i)
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

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "n_rays": self.n_rays}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.n_rays = int(state["n_rays"])


# --- composition root -----------------------------------------------------------------------------


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
        "image_paths": [str(p) for p in capture.image_paths],
        "downscale": capture.downscale,
        "transfer": capture.transfer,
    }


def build_model(config: NerfTrainConfig, scene_box: Tensor) -> NerfModel:
    torch.manual_seed(config.trainer.seed)
    return NerfModel(config.field, scene_box, config.render, max_steps=config.trainer.steps)


def train_nerf(config: NerfTrainConfig, run=None):
    """Train (or resume) a NeRF; writes the run directory (config, capture.json, checkpoints, renders)."""
    import json

    from rich.console import Console

    from fieldforge.app.atomic import atomic_write_bytes, atomic_write_text
    from fieldforge.app.runs import RunDir
    from fieldforge.app.trainer import Trainer, resolve_device
    from fieldforge.data.captures import load_capture
    console = Console(stderr=True)
    capture = load_capture(config.data, config.capture, config.format)  # bad input fails before a run dir exists
    if run is None:
        run = RunDir.create(config.trainer.output_dir, config.trainer.name, prefix=f"nerf-{config.method}")
    run.write_config(config)
    atomic_write_text(run.path / "capture.json", json.dumps(capture_metadata(capture)))
    device = resolve_device(config.trainer.device)
    if config.fresh and not (run.path / "fresh.json").is_file():  # FreSh: choose the field before building it
        from fieldforge.app.fresh_volume import apply_fresh_nerf

        config = apply_fresh_nerf(config, capture, run, device)
    model = build_model(config, capture.scene_box).to(device)
    task = NerfTask(model, capture, config, device)
    trainer = Trainer(config.trainer, config.optim, task, run, device)
    start = trainer.resume()
    if start:
        console.print(f"resuming {run.path} from step {start}")
    console.print(
        f"{config.method}: {capture.describe()}; {model.field.num_parameters():,} parameters, "
        f"{config.trainer.steps} steps on {device}"
    )
    metrics = trainer.train()
    for i, rgb, target in task.last_renders:
        # stored values are written as they are (the PNG holds display values already)
        atomic_write_bytes(run.renders_dir / f"test_{i:04d}.png", encode_stored_png(rgb))
        atomic_write_bytes(run.renders_dir / f"test_{i:04d}_gt.png", encode_stored_png(target))
    return run, metrics


def encode_stored_png(values: Tensor) -> bytes:
    """8-bit PNG of stored (display) values in [0, 1]."""
    import imageio.v3 as iio
    import numpy as np

    arr = (values.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return iio.imwrite("<bytes>", np.ascontiguousarray(arr), extension=".png")


def resume_nerf(run_path, steps: int | None = None):
    from dataclasses import replace

    from fieldforge.app.runs import RunDir
    from fieldforge.data.errors import InputError

    run = RunDir.open(run_path)
    config = run.read_config()
    if not isinstance(config, NerfTrainConfig):
        raise InputError(run.path, f"not a NeRF run (its config is {type(config).__name__})")
    if steps is not None:
        config = replace(config, trainer=replace(config.trainer, steps=steps))
    return train_nerf(config, run)
