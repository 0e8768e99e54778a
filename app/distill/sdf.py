"""SDF / occupancy distillation: the student regresses the teacher's values near and away from its surface,
with the teacher's gradients (normals) as a target near the surface.

A fixed pool of points (seeded, so a resumed run draws the same batches) is built once from the teacher
query: uniform points in the unit cube, and near-surface points found by projecting uniform points onto
the teacher's zero set (two Newton steps ``p ← p − f ∇f / |∇f|²``) and perturbing them by the SDF task's
sampling sigmas. Targets are the teacher's SDF (L1) or occupancy probability (BCE); near the surface, an
SDF student also matches the direction of the teacher's gradient (``1 − cos``). Evaluation is the
student's own (Chamfer / F-score / IoU against the real shape) plus ``teacher_sdf_mae`` on held-out pool points.
"""

import torch
import torch.nn.functional as F
from fieldforge.app.distill.losses import normal_loss_per_sample
from fieldforge.app.tasks.base import TaskContext
from fieldforge.app.trainer import StepContext, StepResult, Track
from fieldforge.fields.losses import spatial_gradient
from torch import Tensor, nn

POOL_SIZE = 1 << 18
HELD_OUT = 1 << 14


def teacher_value_and_grad(teacher, points: Tensor, target: str, chunk: int = 1 << 15) -> tuple[Tensor, Tensor]:
    """Teacher SDF (or occupancy logit) ``(n,)`` and its spatial gradient ``(n, 3)``."""
    values, grads = [], []
    for p in points.split(chunk):
        with torch.enable_grad():
            q = p.detach().clone().requires_grad_(True)
            out = teacher(q)
            v = out.sdf if target == "sdf" else out.occupancy_logit
            g = spatial_gradient(v, q, create_graph=False)
        values.append(v.detach())
        grads.append(g.detach())
    return torch.cat(values), torch.cat(grads)


def build_pool(teacher, target: str, n: int, near_fraction: float, sigmas: tuple[float, ...], device: torch.device, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(points, values, gradients, near)`` of ``n`` pool points in the unit cube."""
    gen = torch.Generator().manual_seed(seed)
    n_near = int(n * near_fraction)
    uniform = torch.rand(n - n_near, 3, generator=gen).to(device)
    start = torch.rand(n_near, 3, generator=gen).to(device)
    if n_near and target == "sdf":
        p = start
        for _ in range(2):
            v, g = teacher_value_and_grad(teacher, p, target)
            p = (p - v[:, None] * g / (g * g).sum(-1, keepdim=True).clamp(min=1e-8)).clamp(0.0, 1.0)
        sigma = torch.tensor(sigmas)[torch.randint(0, len(sigmas), (n_near,), generator=gen)].to(device)
        near = (p + sigma[:, None] * torch.randn(n_near, 3, generator=gen).to(device)).clamp(0.0, 1.0)
    elif n_near:  # occupancy: keep the points whose teacher probability is uncertain-ish, by rejection
        v, _ = teacher_value_and_grad(teacher, start, target)
        order = torch.argsort(v.abs())
        near = start[order[: max(1, n_near // 4)]].repeat(4, 1)[:n_near]
        near = (near + 0.01 * torch.randn(near.shape, generator=gen).to(device)).clamp(0.0, 1.0)
    else:
        near = start
    points = torch.cat([near, uniform])
    values, grads = teacher_value_and_grad(teacher, points, target)
    is_near = torch.zeros(points.shape[0], dtype=torch.bool, device=device)
    is_near[:n_near] = True
    return points, values, grads, is_near


class SDFDistillTask:
    def __init__(self, model: nn.Module, teacher, student, config, ctx: TaskContext) -> None:
        self.model, self.teacher, self.student = model, teacher, student
        self.device = ctx.device
        self.target = config.target
        o = config.distill
        self.batch, self.normal_weight = o.batch_size, o.normal_weight
        seed = ctx.seed(config.trainer.seed)
        pts, vals, grads, near = build_pool(teacher, self.target, POOL_SIZE + HELD_OUT, o.near_fraction, config.sampling.sigmas, ctx.device, seed + 29)
        perm = torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(seed + 31)).to(ctx.device)
        pts, vals, grads, near = pts[perm], vals[perm], grads[perm], near[perm]
        self.pool = (pts[HELD_OUT:], vals[HELD_OUT:], grads[HELD_OUT:], near[HELD_OUT:])
        self.held_out = (pts[:HELD_OUT], vals[:HELD_OUT])
        self.generator = torch.Generator().manual_seed(seed + 37)

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def train_step(self, ctx: StepContext) -> StepResult:
        pts, vals, grads, near = self.pool
        idx = torch.randint(0, pts.shape[0], (self.batch,), generator=self.generator).to(self.device)
        p, v, g, nr = pts[idx], vals[idx], grads[idx], near[idx]
        log: dict[str, float] = {}
        if self.target == "sdf":
            q = p.clone().requires_grad_(self.normal_weight > 0)
            pred = self.model(q).sdf
            psl = (pred.float() - v).abs()
            loss = psl.mean()
            if self.normal_weight > 0 and bool(nr.any()):
                sg = spatial_gradient(pred, q, create_graph=True)
                normal = normal_loss_per_sample(sg[nr], g[nr])
                loss = loss + self.normal_weight * normal.mean()
                log["normal"] = float(normal.detach().mean())
            log["mae"] = float(psl.detach().mean())
        else:
            pred = self.model(p).occupancy_logit
            psl = F.binary_cross_entropy_with_logits(pred.float(), torch.sigmoid(v), reduction="none")
            loss = psl.mean()
        return StepResult(loss=loss, coords=p, per_sample_loss=psl.detach(), log=log)

    def evaluate(self, step: int, final: bool, track: Track) -> dict[str, float]:
        metrics = self.student.evaluate(step, final, track)
        pts, vals = self.held_out
        out = torch.cat([getattr(self.model(c), "sdf" if self.target == "sdf" else "occupancy_logit").float() for c in pts.split(1 << 15)])
        if self.target == "sdf":
            metrics["teacher_sdf_mae"] = float((out - vals).abs().mean())
        else:
            metrics["teacher_agreement"] = float(((out > 0) == (vals > 0)).float().mean())
        return metrics

    def preview(self) -> bytes | None:
        return self.student.preview()

    @property
    def last_mesh(self):
        return self.student.last_mesh

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
