"""Aligning recovered camera poses to known ones: Umeyama's similarity fit and per-camera pose errors.

Structure from motion recovers poses up to a similarity (rotation, translation, scale); comparing them to
the exact ones needs that similarity first: :func:`umeyama` (Umeyama 1991, least squares over points) and
:func:`align_poses` (cameras: orientations and centres).
"""

import numpy as np
from fieldforge.data.transforms import Similarity
from jaxtyping import Float


def umeyama(source: Float[np.ndarray, "n 3"], target: Float[np.ndarray, "n 3"], with_scale: bool = True) -> Similarity:
    """The similarity ``S`` minimizing ``Σ‖target_i − S(source_i)‖²`` (``n ≥ 3`` points, not collinear)."""
    src, dst = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or src.shape[0] < 3:
        raise ValueError(f"umeyama needs two (n, 3) arrays with n ≥ 3, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    if not var_s > 0:
        raise ValueError("umeyama: the source points coincide")
    cov = xd.T @ xs / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rot = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign) / var_s) if with_scale else 1.0
    # dst = scale·R·src + offset, and Similarity is p' = scale·(R p + translation)
    offset = mu_d - scale * rot @ mu_s
    return Similarity(rot, offset / scale, scale)


def align_poses(estimated: Float[np.ndarray, "n 4 4"], reference: Float[np.ndarray, "n 4 4"]) -> Similarity:
    """The similarity taking estimated camera-to-world poses onto reference ones: rotation = the chordal
    mean of ``R_ref,i R_est,iᵀ`` (every camera's orientation votes), then scale and translation by least
    squares over the camera centres (Umeyama's formulas with that rotation fixed).

    Umeyama on the centres alone leaves the rotation poorly determined when the cameras lie near a plane
    or an arc (a walk-around): a fraction of a degree of tilt that no camera actually has.
    """
    est, ref = np.asarray(estimated, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if est.shape != ref.shape or est.ndim != 3 or est.shape[1:] != (4, 4) or len(est) < 2:
        raise ValueError(f"align_poses needs two (n, 4, 4) arrays with n ≥ 2, got {est.shape} and {ref.shape}")
    u, _, vt = np.linalg.svd((ref[:, :3, :3] @ np.swapaxes(est[:, :3, :3], -1, -2)).sum(0))
    rot = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    ce, cr = est[:, :3, 3], ref[:, :3, 3]
    xe, xr = (ce - ce.mean(0)) @ rot.T, cr - cr.mean(0)
    var = float((xe**2).sum())
    if not var > 0:
        raise ValueError("align_poses: the estimated camera centres coincide")
    scale = float((xe * xr).sum() / var)
    if not scale > 0:
        raise ValueError("align_poses: the estimated and reference camera centres are arranged in opposite ways")
    offset = cr.mean(0) - scale * rot @ ce.mean(0)
    return Similarity(rot, offset / scale, scale)


def pose_errors(
    estimated: Float[np.ndarray, "n 4 4"], reference: Float[np.ndarray, "n 4 4"]
) -> dict[str, np.ndarray | float | Similarity]:
    """Camera-to-world poses (same convention, any frames) compared after :func:`align_poses`.

    Returns ``alignment`` (estimated → reference frame), ``rotation_deg`` ``(n,)`` (angle of
    ``R_refᵀ R_aligned``), ``translation`` ``(n,)`` (centre distance in reference units),
    ``translation_rel`` ``(n,)`` (divided by ``scene_size``: the largest distance between two reference
    camera centres) and ``scene_size``.
    """
    est, ref = np.asarray(estimated, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    sim = align_poses(est, ref)
    aligned = sim.apply_poses(est)
    rel = np.swapaxes(ref[:, :3, :3], -1, -2) @ aligned[:, :3, :3]
    cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    rotation_deg = np.degrees(np.arccos(cos))
    translation = np.linalg.norm(aligned[:, :3, 3] - ref[:, :3, 3], axis=-1)
    centres = ref[:, :3, 3]
    scene_size = float(np.linalg.norm(centres[:, None] - centres[None], axis=-1).max())
    return {
        "alignment": sim,
        "rotation_deg": rotation_deg,
        "translation": translation,
        "translation_rel": translation / max(scene_size, 1e-12),
        "scene_size": scene_size,
    }


__all__ = ["align_poses", "pose_errors", "umeyama"]
