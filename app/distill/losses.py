"""Distillation losses (pure torch): PVD's clamped density, features, colours, SDF values and normals.

Density (PVD's "special treatment"): PVD clamps the raw density of both networks to ``[-2, 7]`` before
``exp``. Students here may use another activation than the teacher (softplus NeRF vs trunc_exp hash grid),
so the clamp is applied to what that raw value *is* for an exponential activation, ``log σ``, on both sides:
``log σ`` clamped to ``[-2, 7]`` bounds σ to ``[0.14, 1097]``. The student's side is clamped in value but
passes its gradient straight through, so a student far below or above the range is still pulled into it
(a plain clamp would give it no gradient); σ itself is first bounded to ``[1e-8, 1e8]``, so infinite or
zero densities give finite losses and gradients.
"""

import torch
from jaxtyping import Float
from torch import Tensor

DENSITY_RANGE = (-2.0, 7.0)
"""PVD's ``sigma_clip_min/max`` on ``log σ``."""
SIGMA_BOUNDS = (1e-8, 1e8)


def clamped_log_density(sigma: Float[Tensor, " n"], lo: float = DENSITY_RANGE[0], hi: float = DENSITY_RANGE[1],
                        straight_through: bool = False) -> Float[Tensor, " n"]:
    """``clamp(log σ, lo, hi)``; with ``straight_through`` the gradient of ``log σ`` passes the clamp."""
    log_sigma = torch.log(torch.nan_to_num(sigma.float(), nan=SIGMA_BOUNDS[0], posinf=SIGMA_BOUNDS[1]).clamp(*SIGMA_BOUNDS))
    clamped = log_sigma.clamp(lo, hi)
    if not straight_through:
        return clamped
    return log_sigma + (clamped - log_sigma).detach()


def density_loss_per_sample(student_sigma: Tensor, teacher_sigma: Tensor, density_range: tuple[float, float] = DENSITY_RANGE) -> Tensor:
    """``|clamp(log σ_S) − clamp(log σ_T)|`` per sample ``(n,)`` (finite for any input)."""
    s = clamped_log_density(student_sigma, *density_range, straight_through=True)
    with torch.no_grad():
        t = clamped_log_density(teacher_sigma, *density_range)
    return (s - t).abs()


def feature_loss_per_sample(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared difference of intermediate features ``(n, f)`` → ``(n,)``."""
    return ((student.float() - teacher.float()) ** 2).mean(-1)


def colour_loss_per_sample(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared colour difference ``(n, 3)`` → ``(n,)``."""
    return ((student.float() - teacher.float()) ** 2).mean(-1)


def normal_loss_per_sample(student_grad: Tensor, teacher_grad: Tensor) -> Tensor:
    """``1 − cos(∇f_S, ∇f_T)`` per point ``(n,)``."""
    return 1.0 - torch.nn.functional.cosine_similarity(student_grad.float(), teacher_grad.float(), dim=-1, eps=1e-8)


__all__ = [
    "DENSITY_RANGE", "clamped_log_density", "colour_loss_per_sample", "density_loss_per_sample", "feature_loss_per_sample",
    "normal_loss_per_sample",
]
