"""Radiance-field distillation, PVD's progressive stages (Fang et al. 2023) with PVD-AL's hard-ray replay.

The teacher is used only through its query (``teacher(points, directions) → FieldOutputs``). Before
training, the student's occupancy grid is filled from the teacher's density (so the student starts with
the teacher's empty space, and keeps it); every batch is then sampled along rays with that grid and the
teacher's density for early termination, and both networks evaluate the *same* sample points:

1. ``features``: ‖v_S − v_T‖² of the intermediate feature vector, when both sides have one of the same size;
2. ``points``: per point, the clamped log-density |clamp(log σ_S) − clamp(log σ_T)| (PVD's [-2, 7] raw range,
   ``losses.density_loss_per_sample``) and the colour ‖c_S − c_T‖²;
3. ``render``: the rendered colour of the student against the teacher's rendering along the same samples,
   plus the point losses with a small weight.

Rays come from the training views and from random virtual views (a training camera rotated about the
scene centre by up to ``virtual_angle`` degrees), each with a random background colour shared by both
sides. In stage 3 the highest-error rays are kept in a pool and replayed into later batches (PVD-AL).
Stage weights are the trainer's ``Stage.loss_weights``. Evaluation is the student task's (test-view
PSNR/SSIM against the real images) plus ``teacher_psnr`` (student vs teacher renders of the same views)
and ``teacher_test_psnr`` (the teacher against the real images).
"""

import math

import torch
from fieldforge.app.distill.losses import colour_loss_per_sample, density_loss_per_sample, feature_loss_per_sample
from fieldforge.app.tasks.base import TaskContext
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.fields.metrics import psnr
from fieldforge.fields.radiance_model import NerfModel
from fieldforge.fields.rendering.contraction import uncontract
from fieldforge.fields.rendering.rays import generate_rays, ndc_rays, pixel_grid
from fieldforge.fields.rendering.sampling import RaySamples
from fieldforge.fields.rendering.volume import RenderOutputs, volume_render
from torch import Tensor


RAY_HEADROOM = 1.2
"""Rays marched per step yield about this many times the sample budget (the excess is cut): full batches."""


class TeacherSampler:
    """Samples rays with the student's geometry (box, step, contraction, grid) and the teacher's density."""

    def __init__(self, model: NerfModel, teacher) -> None:
        self.model, self.teacher = model, teacher

    def from_field(self, points: Tensor) -> Tensor:
        """Field-space points (the grid's) → the normalized frame the teacher is queried in."""
        if not self.model.contracted:
            return points
        lo, hi = self.model.scene_box[0], self.model.scene_box[1]
        return uncontract(points) * (hi - lo) / 2 + (lo + hi) / 2

    @torch.no_grad()
    def fill_grid(self, passes: int = 4, seed: int = 0) -> None:
        """The student's occupancy grid from the teacher's density: ``passes`` jittered points per cell, max-pooled."""
        r = self.model.render_config
        grid = self.model.grid
        grid.occs.fill_(-1.0)
        for k in range(passes):
            grid.update(k, lambda p: self.teacher.query(self.from_field(p)).density, self.model.step_size, threshold=r.grid_threshold,
                        decay=1.0, warmup_steps=passes + 1, seed=seed, fraction=1.0)

    def density(self, points: Tensor) -> Tensor:
        return self.teacher.query(points).density

    @torch.no_grad()
    def samples(self, origins: Tensor, directions: Tensor, training: bool, generator: torch.Generator | None = None) -> RaySamples:
        """``NerfModel.sample`` with the teacher's density deciding early termination."""
        return self.model.sample(origins, directions, training, generator, density_fn=self.density)

    @torch.no_grad()
    def render_image(self, c2w: Tensor, intrinsics: Tensor, width: int, height: int, distortion: Tensor | None, background: Tensor,
                     ndc: tuple[float, float, float] | None = None, chunk: int = 4096) -> Tensor:
        """The teacher's rendering ``(h, w, 3)`` of one camera (as ``NerfModel.render_image``)."""
        device = self.model.scene_box.device
        pix = pixel_grid(height, width, device)
        out = []
        for i in range(0, pix.shape[0], chunk):
            p = pix[i : i + chunk]
            n = p.shape[0]
            dist = None if distortion is None or not bool((distortion != 0).any()) else distortion.to(device)[None].expand(n, 6)
            o, d = generate_rays(c2w.to(device)[None].expand(n, 4, 4), intrinsics.to(device)[None].expand(n, 4), p, dist)
            if ndc is not None:
                o, d = ndc_rays(o, d, *ndc)
            s = self.samples(o, d, training=False)
            pos = s.positions(o, d)
            t = self.teacher.query(pos, d[s.ray_indices]) if s.n_samples else None
            res = volume_render(s, lambda t0, t1, ri, t=t: (t.rgb, t.density), background.to(device))
            out.append(res.rgb.float().cpu())
        return torch.cat(out).reshape(height, width, 3).clamp(0, 1)


def rotations(axis: Tensor, angle: Tensor) -> Tensor:
    """Rodrigues: rotation matrices ``(n, 3, 3)`` about unit ``axis`` ``(n, 3)`` by ``angle`` ``(n,)`` radians."""
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


class NerfDistillTask:
    """Trainer task of PVD's stages (names ``features``, ``points``, ``render``; weights from the stage)."""

    def __init__(self, model: NerfModel, teacher, student, config, ctx: TaskContext) -> None:
        self.model, self.teacher, self.student = model, teacher, student
        self.device = ctx.device
        o = config.distill
        self.options = o
        self.batch = o.batch_size
        self.seed = ctx.seed(config.trainer.seed)
        self.grid_seed = config.trainer.seed  # the same on every rank: data-parallel ranks build one grid
        self.sampler = TeacherSampler(model, teacher)
        self.fill_grid()
        probe = torch.zeros(1, 3, device=self.device) + model.scene_box.mean(0)
        tf = teacher.query(probe).features
        with torch.no_grad():
            sf = model(probe).features
        self.features = tf is not None and sf is not None and tf.shape[-1] == sf.shape[-1]
        self.generator = torch.Generator().manual_seed(self.seed + 41)
        self.n_rays = 512
        self.pool_o = torch.zeros(0, 3)
        self.pool_d = torch.zeros(0, 3)
        self.pool_err = torch.zeros(0)
        self.teacher_views: dict[tuple[int, int, int], Tensor] = {}

    def fill_grid(self) -> None:
        """The student's occupancy grid from the teacher's density (kept for training and rendering)."""
        self.sampler.fill_grid(seed=self.grid_seed + 43)

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    # -- rays --------------------------------------------------------------------------------------
    def virtual_rays(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Rays of random virtual cameras: training cameras rotated about the scene centre (≤ virtual_angle)."""
        st, g = self.student, generator or self.generator
        train = torch.tensor(st.capture.split["train"])
        idx = train[torch.randint(0, train.shape[0], (n,), generator=g)]
        axis = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
        angle = torch.rand(n, generator=g) * math.radians(self.options.virtual_angle)
        rot = rotations(axis, angle).to(self.device)
        c2w = st.c2w[idx.to(self.device)].clone()
        centre = self.model.scene_box.mean(0)
        c2w[:, :3, :3] = rot @ c2w[:, :3, :3]
        c2w[:, :3, 3] = torch.einsum("nij,nj->ni", rot, c2w[:, :3, 3] - centre) + centre
        cams = st.capture.cameras
        size = torch.stack([cams.width[idx], cams.height[idx]], dim=-1).float()
        pix = (torch.rand(n, 2, generator=g) * size).to(self.device)
        o, d = generate_rays(c2w, st.intr[idx.to(self.device)], pix)
        if st.ndc is not None:
            o, d = ndc_rays(o, d, *st.ndc)
        return o, d

    def rays(self, n: int, hard: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        g = generator or self.generator
        n_fresh = n - hard
        n_virtual = round(n_fresh * self.options.virtual_views)
        frames, pix, _ = self.student.bank.sample(n_fresh - n_virtual, g)
        o1, d1 = self.student.rays(frames, pix)
        o2, d2 = self.virtual_rays(n_virtual, g)
        parts_o, parts_d = [o1, o2], [d1, d2]
        if hard:
            pick = torch.randint(0, self.pool_o.shape[0], (hard,), generator=self.generator)
            parts_o.append(self.pool_o[pick].to(self.device))
            parts_d.append(self.pool_d[pick].to(self.device))
        return torch.cat(parts_o), torch.cat(parts_d)

    # -- training ----------------------------------------------------------------------------------
    def ray_batch(self, budget: int, hard: int = 0) -> tuple[Tensor, Tensor, Tensor, RaySamples]:
        """Rays (training + virtual views, ``hard`` replayed), a random background each, and the teacher-guided
        samples of the leading rays whose samples fit ``budget`` (the ray count adapts to it)."""
        o, d = self.rays(self.n_rays, hard)
        bg = torch.rand(o.shape[0], 3, generator=self.generator).to(self.device)
        samples = self.sampler.samples(o, d, training=True, generator=self.generator)
        marched = samples.n_samples
        if marched > budget:
            samples = samples.leading(budget)
            o, d, bg = o[:samples.n_rays], d[:samples.n_rays], bg[:samples.n_rays]
        # the next ray count from what these rays yielded before the cut (after it, a batch always looks full
        # and the count crept up ~1% a step, to 2^15 rays marched for a few hundred used), 20% over the budget
        self.n_rays = int(min(1 << 15, max(64, self.n_rays * RAY_HEADROOM * budget / max(marched, 1))))
        return o, d, bg, samples

    def weight(self, ctx: StepContext, name: str) -> float:
        """The stage's loss weight; a ``features`` stage without compatible features trains the point losses
        instead (stage 2's), so its steps are not spent on a zero loss."""
        if ctx.stage.name == "features" and not self.features:
            return 1.0 if name in ("density", "colour") else 0.0
        return ctx.weight(name, 0.0)

    def train_step(self, ctx: StepContext) -> StepResult:
        w = {name: self.weight(ctx, name) for name in ("features", "density", "colour", "rgb")}
        w_rgb = w["rgb"]
        hard = min(round(self.n_rays * self.options.hard_rays), self.pool_o.shape[0]) if w_rgb > 0 else 0
        o, d, bg, samples = self.ray_batch(self.batch, hard)
        n_samples = samples.n_samples
        if n_samples == 0:
            loss = sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0
            return StepResult(loss=loss, log={"samples": 0.0})
        pos = samples.positions(o, d)
        dirs = d[samples.ray_indices]
        t = self.teacher.query(pos, dirs)
        s = self.model(pos, dirs)
        log: dict[str, float] = {"rays": float(o.shape[0]), "samples_per_ray": n_samples / o.shape[0]}
        loss = torch.zeros((), device=self.device)
        psl = torch.zeros(n_samples, device=self.device)
        if self.features and w["features"] > 0:
            fl = feature_loss_per_sample(s.features, t.features)
            loss = loss + w["features"] * fl.mean()
            psl = psl + fl.detach()
            log["features"] = float(fl.detach().mean())
        if w["density"] > 0:
            dl = density_loss_per_sample(s.density, t.density, self.options.density_range)
            loss = loss + w["density"] * dl.mean()
            psl = psl + dl.detach()
            log["density"] = float(dl.detach().mean())
        if w["colour"] > 0:
            cl = colour_loss_per_sample(s.rgb, t.rgb)
            loss = loss + w["colour"] * cl.mean()
            log["colour"] = float(cl.detach().mean())
        if w_rgb > 0:
            teacher_out = volume_render(samples, lambda t0, t1, ri: (t.rgb, t.density), bg)
            student_out: RenderOutputs = volume_render(samples, lambda t0, t1, ri: (s.rgb, s.density), bg)
            per_ray = ((student_out.rgb.float() - teacher_out.rgb.float()) ** 2).mean(-1)
            loss = loss + w_rgb * per_ray.mean()
            psl = per_ray.detach()[samples.ray_indices]
            log["psnr"] = -10 * math.log10(max(float(per_ray.detach().mean()), 1e-12))
            self.update_pool(o, d, per_ray.detach())
        coords = self.model.field.to_unit(self.model.to_field(pos.detach())).clamp(0, 1)
        return StepResult(loss=loss, coords=coords, per_sample_loss=psl, log=log)

    def update_pool(self, o: Tensor, d: Tensor, err: Tensor) -> None:
        """Keep the ``hard_pool`` highest-error rays seen (replayed rays re-enter with their new error)."""
        all_o = torch.cat([self.pool_o, o.detach().cpu()])
        all_d = torch.cat([self.pool_d, d.detach().cpu()])
        all_e = torch.cat([self.pool_err, err.float().cpu()])
        k = min(self.options.hard_pool, all_e.shape[0])
        top = torch.topk(all_e, k, sorted=True).indices
        self.pool_o, self.pool_d, self.pool_err = all_o[top], all_d[top], all_e[top]

    # -- evaluation --------------------------------------------------------------------------------
    def teacher_view(self, index: int, height: int, width: int) -> Tensor:
        key = (index, height, width)
        if key not in self.teacher_views:
            from fieldforge.app.tasks.nerf import scaled_view

            st = self.student
            cams = st.capture.cameras
            k, w, h = scaled_view(cams, index, max(height, width) if max(height, width) < max(int(cams.width[index]), int(cams.height[index])) else None)
            dist = cams.distortion[index] if st.has_distortion else None
            self.teacher_views[key] = self.sampler.render_image(cams.camera_to_world[index], k, w, h, dist, st.background, st.ndc)
        return self.teacher_views[key]

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        metrics = self.student.evaluate(step, final, track)
        fid, own = [], []
        for i, rgb, target in track(self.student.last_renders, "teacher renders"):
            ref = self.teacher_view(i, rgb.shape[0], rgb.shape[1])
            fid.append(psnr(rgb, ref))
            own.append(psnr(ref, target))
        if fid:
            metrics["teacher_psnr"] = sum(fid) / len(fid)
            metrics["teacher_test_psnr"] = sum(own) / len(own)
        return metrics

    def preview(self) -> bytes | None:
        return self.student.preview()

    @property
    def last_renders(self):
        return self.student.last_renders

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "n_rays": self.n_rays, "pool_o": self.pool_o, "pool_d": self.pool_d, "pool_err": self.pool_err}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.n_rays = int(state["n_rays"])
        self.pool_o, self.pool_d, self.pool_err = state["pool_o"], state["pool_d"], state["pool_err"]
