"""Surface-reconstruction metrics between point sets sampled from two surfaces (scipy ``cKDTree``).

Conventions (Occupancy Networks, Mescheder et al. 2019): with ``A`` sampled on the prediction and ``B``
on the reference,

- Chamfer-L1 = ½ (mean_a ‖a − NN_B(a)‖ + mean_b ‖b − NN_A(b)‖)   (mean Euclidean distance; same units)
- Chamfer-L2 = ½ (mean_a ‖a − NN_B(a)‖² + mean_b ‖b − NN_A(b)‖²)
- normal consistency = ½ (mean_a |n_a · n_NN_B(a)| + mean_b |n_b · n_NN_A(b)|)   (1 is perfect; unsigned)
- F-score(τ) = 2PR/(P+R), precision P = fraction of A within τ of B, recall R = fraction of B within τ of A
- volumetric IoU = |inside_A ∩ inside_B| / |inside_A ∪ inside_B| over the same query points.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from jaxtyping import Bool, Float
from scipy.spatial import cKDTree
from torch import Tensor


def _np(x: Tensor) -> np.ndarray:
    return x.detach().double().cpu().numpy()


def nearest(query: Float[Tensor, "n 3"], reference: Float[Tensor, "m 3"]) -> tuple[Float[Tensor, " n"], Tensor]:
    """Distance from each query point to its nearest reference point, and that point's index."""
    dist, idx = cKDTree(_np(reference)).query(_np(query), k=1, workers=-1)
    return torch.from_numpy(dist), torch.from_numpy(idx.astype(np.int64))


@dataclass(frozen=True)
class SurfaceMetrics:
    chamfer_l1: float
    chamfer_l2: float
    f_score: float
    precision: float
    recall: float
    threshold: float
    normal_consistency: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def surface_metrics(
    pred: Float[Tensor, "n 3"],
    reference: Float[Tensor, "m 3"],
    threshold: float,
    pred_normals: Float[Tensor, "n 3"] | None = None,
    reference_normals: Float[Tensor, "m 3"] | None = None,
) -> SurfaceMetrics:
    """Chamfer-L1/L2, F-score at ``threshold`` and (when both normal sets are given) normal consistency."""
    if pred.shape[0] == 0 or reference.shape[0] == 0:
        raise ValueError("surface_metrics needs non-empty point sets")
    d_pr, i_pr = nearest(pred, reference)
    d_rp, i_rp = nearest(reference, pred)
    precision = float((d_pr < threshold).double().mean())
    recall = float((d_rp < threshold).double().mean())
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    nc = None
    if pred_normals is not None and reference_normals is not None:
        na, nb = _np(pred_normals), _np(reference_normals)
        na = na / np.linalg.norm(na, axis=1, keepdims=True).clip(1e-12)
        nb = nb / np.linalg.norm(nb, axis=1, keepdims=True).clip(1e-12)
        c1 = np.abs((na * nb[i_pr.numpy()]).sum(axis=1)).mean()
        c2 = np.abs((nb * na[i_rp.numpy()]).sum(axis=1)).mean()
        nc = float(0.5 * (c1 + c2))
    return SurfaceMetrics(
        chamfer_l1=float(0.5 * (d_pr.mean() + d_rp.mean())),
        chamfer_l2=float(0.5 * ((d_pr**2).mean() + (d_rp**2).mean())),
        f_score=f,
        precision=precision,
        recall=recall,
        threshold=threshold,
        normal_consistency=nc,
    )


def chamfer_distance(a: Float[Tensor, "n 3"], b: Float[Tensor, "m 3"]) -> tuple[float, float]:
    """``(Chamfer-L1, Chamfer-L2)`` of two point sets (see the module docstring)."""
    m = surface_metrics(a, b, threshold=0.0)
    return m.chamfer_l1, m.chamfer_l2


def volumetric_iou(inside_a: Bool[Tensor, " n"], inside_b: Bool[Tensor, " n"]) -> float:
    """IoU of two occupancy labelings of the same query points (1.0 when both are empty)."""
    a, b = inside_a.bool(), inside_b.bool()
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


__all__ = ["SurfaceMetrics", "chamfer_distance", "nearest", "surface_metrics", "volumetric_iou"]
