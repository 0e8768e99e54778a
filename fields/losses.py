"""Losses that return per-sample values too, for progressive encodings' feedback (SAPE)."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


def mse_per_sample(pred: Float[Tensor, "n c"], target: Float[Tensor, "n c"]) -> Float[Tensor, " n"]:
    """Squared error averaged over channels, one value per sample."""
    return ((pred.float() - target.float()) ** 2).mean(dim=-1)


def l1_per_sample(pred: Float[Tensor, "n c"], target: Float[Tensor, "n c"]) -> Float[Tensor, " n"]:
    return (pred.float() - target.float()).abs().mean(dim=-1)


def per_sample_loss(kind: str, pred: Tensor, target: Tensor) -> Tensor:
    if kind == "mse":
        return mse_per_sample(pred, target)
    if kind == "l1":
        return l1_per_sample(pred, target)
    raise ValueError(f"unknown loss {kind!r}")



# -- signed distance / occupancy / implicit surfaces (3D shapes) ------------------------------------------


def _full(x: Tensor) -> Tensor:
    """At least float32 (half-precision outputs are upcast; float64 stays float64 for reference tests)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def sdf_l1_per_sample(pred: Float[Tensor, " n"], target: Float[Tensor, " n"], clamp: float | None = None) -> Float[Tensor, " n"]:
    """``|pred − target|``; with ``clamp = δ`` both are clamped to ``[−δ, δ]`` first (DeepSDF), so the loss
    concentrates on the band around the surface."""
    p, t = _full(pred), _full(target)
    if clamp is not None:
        p, t = p.clamp(-clamp, clamp), t.clamp(-clamp, clamp)
    return (p - t).abs()


def occupancy_bce_per_sample(logits: Float[Tensor, " n"], target: Float[Tensor, " n"]) -> Float[Tensor, " n"]:
    """Binary cross-entropy of occupancy logits against ``{0, 1}`` (or soft) targets, per sample."""
    return torch.nn.functional.binary_cross_entropy_with_logits(_full(logits), _full(target).to(_full(logits).dtype), reduction="none")


def spatial_gradient(values: Float[Tensor, " n"], points: Float[Tensor, "n d"], create_graph: bool = True) -> Float[Tensor, "n d"]:
    """``∇_x f`` of per-point scalars w.r.t. the points they were computed from (``points.requires_grad``).

    ``create_graph=True`` keeps the graph so a loss on the gradient (eikonal, normals) trains the
    parameters: a double backward through the network and the encoding.
    """
    (grad,) = torch.autograd.grad(values, points, grad_outputs=torch.ones_like(values), create_graph=create_graph)
    return grad


def eikonal_per_sample(grad: Float[Tensor, "n d"]) -> Float[Tensor, " n"]:
    """``(‖∇f‖ − 1)²``: a signed distance has unit gradient almost everywhere (IGR, Gropp et al. 2020)."""
    return (_full(grad).norm(dim=-1) - 1.0) ** 2


@dataclass
class ImplicitLoss:
    """Implicit-surface loss value and its parts; ``per_sample`` is ``(n_surface + n_off,)`` in that order."""

    loss: Tensor
    per_sample: Tensor
    terms: dict[str, float]


def implicit_surface_loss(
    sdf_fn: Callable[[Tensor], Tensor],
    surface: Float[Tensor, "n 3"],
    normals: Float[Tensor, "n 3"],
    off_surface: Float[Tensor, "m 3"],
    off_surface_sdf: Float[Tensor, " m"] | None = None,
    near: Float[Tensor, "k 3"] | None = None,
    near_sdf: Float[Tensor, " k"] | None = None,
    surface_weight: float = 30.0,
    normal_weight: float = 1.0,
    eikonal_weight: float = 0.5,
    off_surface_weight: float = 1.0,
    off_surface_alpha: float = 200.0,
    distance_weight: float = 10.0,
) -> ImplicitLoss:
    """Point-cloud SDF loss (SIREN / IGR, plus optional approximate-distance targets): with ``f = sdf_fn``,

    ``w_s·mean|f(x_s)| + w_n·mean(1 − cos(∇f(x_s), n_s)) + w_e·mean(‖∇f(x)‖ − 1)² + w_o·mean exp(−α|f(x_o)|)
    + w_d·mean|f(x_t) − d_t|``

    over surface points ``x_s`` with normals ``n_s``, off-surface points ``x_o`` and, where targets ``d_t``
    are given, the off-surface (``off_surface_sdf``) and near-surface (``near``/``near_sdf``) points ``x_t``;
    the eikonal term runs over all points. Gradients come from autograd with ``create_graph``, so training
    differentiates through them (a double backward through network and encoding).
    ``per_sample`` is ordered surface, off-surface, near.
    """
    if (near is None) != (near_sdf is None):
        raise ValueError("near points and near_sdf targets go together")
    n_s, n_o = surface.shape[0], off_surface.shape[0]
    parts = [surface, off_surface] + ([near] if near is not None else [])
    x = torch.cat(parts).detach().requires_grad_(True)
    f = sdf_fn(x)
    grad = spatial_gradient(f, x)
    f = _full(f)
    f_s, f_o, f_p = f[:n_s], f[n_s : n_s + n_o], f[n_s + n_o :]
    eik = eikonal_per_sample(grad)
    cos = torch.nn.functional.cosine_similarity(_full(grad[:n_s]), normals.to(_full(grad).dtype), dim=-1, eps=1e-8)
    surf = f_s.abs()
    normal = 1.0 - cos
    off = torch.exp(-off_surface_alpha * f_o.abs())
    per = [surface_weight * surf + normal_weight * normal, off_surface_weight * off]
    loss = surface_weight * surf.mean() + normal_weight * normal.mean() + eikonal_weight * eik.mean() + off_surface_weight * off.mean()
    terms = {"surface": float(surf.detach().mean()), "normal": float(normal.detach().mean()), "eikonal": float(eik.detach().mean()), "off": float(off.detach().mean())}
    errors = []
    if off_surface_sdf is not None:
        err_o = (f_o - off_surface_sdf.to(f.dtype)).abs()
        per[1] = per[1] + distance_weight * err_o
        errors.append(err_o)
    if near is not None:
        err_p = (f_p - near_sdf.to(f.dtype)).abs()  # type: ignore[union-attr]
        per.append(distance_weight * err_p)
        errors.append(err_p)
    if errors:
        err = torch.cat(errors)
        loss = loss + distance_weight * err.mean()
        terms["distance"] = float(err.detach().mean())
    per_sample = torch.cat(per) + eikonal_weight * eik
    return ImplicitLoss(loss=loss, per_sample=per_sample, terms=terms)


__all__ = [
    "ImplicitLoss",
    "eikonal_per_sample",
    "implicit_surface_loss",
    "l1_per_sample",
    "mse_per_sample",
    "occupancy_bce_per_sample",
    "per_sample_loss",
    "sdf_l1_per_sample",
    "spatial_gradient",
    "torch",
]
