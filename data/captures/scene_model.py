"""The scene model of a capture, decided from its camera geometry (every format).

Three models, each with the sampler that fits it:

- ``ndc``: forward-facing captures (LLFF's "fern"): the cameras look one way and the content lies in front
  of all of them; rendered in normalized device coordinates (depth from the near plane to infinity).
- ``bounded``: object-centric captures: the content lies in a box (the format's own box, else a box from
  the sparse points, else the region the cameras' frusta share); marched inside the box.
- ``unbounded``: cameras that look outward, or content far beyond the cameras (a 360° capture of a
  scene, not of an object): space outside the cameras' box is contracted (mip-NeRF 360).

:func:`decide` is pure numpy on the source-frame poses: the angles and ratios it uses do not depend on the
normalization. ``CaptureOptions.scene_model`` (``--scene-model``) overrides it; ``--ndc True/False`` is the
older spelling of ``--scene-model ndc`` / "anything but NDC".
"""

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fieldforge.data.camera_paths import average_pose
from fieldforge.data.transforms import Similarity

SceneModel = Literal["ndc", "bounded", "unbounded"]
SCENE_MODELS = ("ndc", "bounded", "unbounded")

FORWARD_MAX_ANGLE = 30.0
"""Forward-facing: every viewing direction within this many degrees of the mean direction."""
OUTWARD_ANGLE = 60.0
"""Outward-looking: the median angle between a camera's axis and the direction to the scene centre is above this."""
FAR_RATIO = 3.0
"""Unbounded: the content (90th percentile of sparse points / far bounds) reaches this many camera radii from the centre."""
BD_FACTOR = 0.75
"""NDC normalization (LLFF): the nearest content lies at depth 1 / BD_FACTOR."""
FRONT_FRACTION = 0.9
"""Forward-facing also needs this fraction of the content (points, near bounds) in front of every camera."""


@dataclass(frozen=True)
class CameraGeometry:
    """What the decision reads from the cameras (source frame; angles in degrees)."""

    max_angle: float
    """Largest angle of a viewing direction from the mean viewing direction."""
    mean_angle: float
    mean_direction: np.ndarray
    centre: np.ndarray
    """Point nearest to all optical axes (camera centroid when the axes are near parallel)."""
    camera_radius: float
    """Median distance of the cameras from ``centre``."""
    inward_angle: float
    """Median angle between a camera's axis and the direction from it to ``centre`` (0: all look at it)."""
    content_radius: float | None
    """90th percentile distance of the content (sparse points, else far-bound points) from ``centre``."""
    content_source: str
    in_front: bool | None
    """Whether the content (points or near bounds) lies in front of every camera (None: nothing to tell)."""


def _focus(c2w: np.ndarray) -> np.ndarray | None:
    centres, axes = c2w[:, :3, 3], -c2w[:, :3, 2]
    axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
    proj = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    a, b = proj.sum(0), (proj @ centres[:, :, None]).sum(0)[:, 0]
    if len(c2w) < 2 or np.linalg.cond(a) > 1e4:
        return None
    return np.linalg.solve(a, b)


def camera_geometry(c2w: np.ndarray, points: np.ndarray | None = None, near_far: np.ndarray | None = None) -> CameraGeometry:
    """Angles and extents of ``c2w`` ``(n, 4, 4)`` (OpenGL), with optional sparse ``points`` ``(m, 3)`` and per-camera
    ``near_far`` ``(n, 2)`` bounds, all in the same frame."""
    c2w = np.asarray(c2w, dtype=np.float64)
    dirs = -c2w[:, :3, 2]
    dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    centres = c2w[:, :3, 3]
    mean = dirs.sum(0)
    mean = mean / max(float(np.linalg.norm(mean)), 1e-12) if np.linalg.norm(mean) > 1e-9 else np.array([0.0, 0.0, -1.0])
    ang = np.degrees(np.arccos(np.clip(dirs @ mean, -1.0, 1.0)))
    focus = _focus(c2w)
    centre = focus if focus is not None else centres.mean(0)
    to_centre = centre[None] - centres
    dist = np.linalg.norm(to_centre, axis=-1)
    cam_radius = float(np.median(dist))
    inward = np.degrees(np.arccos(np.clip((dirs * to_centre).sum(-1) / np.maximum(dist, 1e-12), -1.0, 1.0)))
    front_plane = float((centres @ mean).max())
    content, source, in_front = None, "", None
    if points is not None and len(points) >= 8:
        pts = np.asarray(points, dtype=np.float64)
        content = float(np.percentile(np.linalg.norm(pts - centre[None], axis=-1), 90))
        source = f"{len(pts):,} sparse points"
        in_front = bool(((pts @ mean) > front_plane).mean() >= FRONT_FRACTION)
    elif near_far is not None:
        nf = np.asarray(near_far, dtype=np.float64)
        far_pts = centres + nf[:, 1:2] * dirs
        content = float(np.percentile(np.linalg.norm(far_pts - centre[None], axis=-1), 90))
        source = "far bounds"
        near_pts = centres + nf[:, 0:1] * dirs
        in_front = bool(((near_pts @ mean) > front_plane).mean() >= FRONT_FRACTION)
    return CameraGeometry(
        max_angle=float(ang.max()), mean_angle=float(ang.mean()), mean_direction=mean, centre=centre,
        camera_radius=cam_radius, inward_angle=float(np.median(inward)), content_radius=content,
        content_source=source, in_front=in_front,
    )


def decide(
    geometry: CameraGeometry, requested: str = "auto", has_format_box: bool = False, has_depth: bool = False,
) -> tuple[SceneModel, str]:
    """``(model, reason)``: the forced model when ``requested`` is one, else the one the cameras imply.

    ``requested`` may also be ``"not-ndc"`` (``--ndc False``): automatic among bounded and unbounded.
    ``has_depth``: the capture has near bounds or sparse points (NDC needs a near plane).
    """
    g = geometry
    span = f"cameras span {g.max_angle:.0f}°"
    if requested in SCENE_MODELS:
        return requested, f"{span}; forced by --scene-model {requested}"  # type: ignore[return-value]
    ratio = None if g.content_radius is None or g.camera_radius <= 1e-9 else g.content_radius / g.camera_radius
    forward = g.max_angle < FORWARD_MAX_ANGLE and g.in_front is not False
    if forward and requested != "not-ndc" and not has_format_box:
        if has_depth:
            return "ndc", f"forward-facing: {span} (mean {g.mean_angle:.0f}°), content in front of every camera"
        return "unbounded", f"forward-facing: {span}, but no near bounds or sparse points for NDC: contraction"
    if g.inward_angle > OUTWARD_ANGLE:
        return "unbounded", f"cameras look outward (median {g.inward_angle:.0f}° from the scene centre), {span}"
    if ratio is not None and ratio > FAR_RATIO:
        return "unbounded", f"{g.content_source} reach {ratio:.1f}× the camera radius, {span}"
    if has_format_box:
        return "bounded", f"object-centric: {span}, box given by the format"
    return "bounded", f"object-centric: {span}"


def requested_model(scene_model: str, ndc: bool | None, fmt: str = "llff") -> str:
    """``--scene-model`` wins; otherwise ``--ndc True`` forces NDC on LLFF captures (its old meaning: run configs
    written before the decision existed hold ``ndc: true`` for every format) and ``--ndc False`` excludes it."""
    if scene_model != "auto":
        return scene_model
    if ndc is True and fmt == "llff":
        return "ndc"
    if ndc is False:
        return "not-ndc"
    return "auto"


def near_depth(c2w: np.ndarray, points: np.ndarray | None, near_far: np.ndarray | None) -> float | None:
    """The nearest content depth: the smallest near bound, else the 1st percentile of the points' depths."""
    if near_far is not None:
        return float(np.asarray(near_far)[:, 0].min())
    if points is None or len(points) < 8:
        return None
    c2w = np.asarray(c2w, dtype=np.float64)
    depths = []
    for m in c2w:
        d = (np.asarray(points) - m[:3, 3]) @ (-m[:3, 2])
        d = d[d > 0]
        if len(d):
            depths.append(np.percentile(d, 1))
    return float(min(depths)) if depths else None


def forward_normalization(c2w: np.ndarray, near: float) -> Similarity:
    """LLFF (Mildenhall et al. 2019/2020): scale so the nearest content lies at depth 1/0.75, then recentre on
    the average pose (its axes become the world axes: cameras look down −z), as NDC rays expect."""
    scale = 1.0 / (near * BD_FACTOR)
    scaled = np.asarray(c2w, dtype=np.float64).copy()
    scaled[:, :3, 3] *= scale
    inv = np.linalg.inv(average_pose(scaled))
    # p_norm = inv(avg) @ (scale · p) = scale · (R p + t) with R = inv[:3,:3], t = inv[:3,3] / scale
    return Similarity(inv[:3, :3], inv[:3, 3] / scale, float(scale))


# --- boxes ---------------------------------------------------------------------------------------


def points_box(points: np.ndarray, margin: float = 0.1, reach: float = 0.25) -> np.ndarray:
    """``(2, 3)`` box of the sparse ``points`` ``(m, 3)``, grown by ``margin`` of its size per side.

    Outliers (structure-from-motion's stray tracks) are the points farther than ``reach`` × the size of the
    2nd–98th percentile box from it; every other point is kept inside, so the percentiles never crop the
    content's extremities (a 2–98% box alone cut 2 cm off lego's visual hull)."""
    lo, hi = np.percentile(points, 2, axis=0), np.percentile(points, 98, axis=0)
    grow = (hi - lo).max() * reach
    near = points[inside_box(points, np.stack([lo - grow, hi + grow]))]
    lo, hi = near.min(0), near.max(0)
    pad = (hi - lo).max() * margin
    return np.stack([lo - pad, hi + pad])


def frusta_box(
    c2w: np.ndarray, intrinsics: np.ndarray, sizes: np.ndarray, near_far: np.ndarray, fraction: float = 0.5, resolution: int = 40,
) -> np.ndarray | None:
    """``(2, 3)`` box of the region that at least ``fraction`` of the cameras see between their near and far
    bounds (None when no cell is seen that often). ``intrinsics`` ``(n, 4)``, ``sizes`` ``(n, 2)`` = (w, h)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    n = len(c2w)
    corners = []
    for i in range(n):
        fx, fy, cx, cy = intrinsics[i]
        w, h = sizes[i]
        for depth in near_far[i]:
            for px, py in ((0, 0), (w, 0), (0, h), (w, h)):
                cam = np.array([(px - cx) / fx * depth, -(py - cy) / fy * depth, -depth])
                corners.append(c2w[i, :3, :3] @ cam + c2w[i, :3, 3])
    corners = np.asarray(corners)
    lo, hi = corners.min(0), corners.max(0)
    axes = [np.linspace(lo[k], hi[k], resolution) for k in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    seen = np.zeros(len(grid), dtype=np.int32)
    for i in range(n):
        local = (grid - c2w[i, :3, 3]) @ c2w[i, :3, :3]  # camera frame (x right, y up, −z forward)
        depth = -local[:, 2]
        ok = (depth > near_far[i, 0]) & (depth < near_far[i, 1])
        d = np.where(ok, depth, 1.0)
        u = intrinsics[i, 0] * local[:, 0] / d + intrinsics[i, 2]
        v = -intrinsics[i, 1] * local[:, 1] / d + intrinsics[i, 3]
        ok &= (u >= 0) & (u <= sizes[i, 0]) & (v >= 0) & (v <= sizes[i, 1])
        seen += ok
    keep = seen >= max(1, math.ceil(fraction * n))
    if not keep.any():
        return None
    cell = (hi - lo) / (resolution - 1)
    sel = grid[keep]
    return np.stack([sel.min(0) - cell, sel.max(0) + cell])


def cameras_box(centres: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The cube around ``centre`` that holds every camera (the unit region of a contracted scene)."""
    half = max(float(np.abs(centres - centre[None]).max()), 1e-6)
    return np.stack([centre - half, centre + half])


def inside_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    return ((points >= box[0]) & (points <= box[1])).all(-1)


__all__ = [
    "BD_FACTOR",
    "FAR_RATIO",
    "FORWARD_MAX_ANGLE",
    "OUTWARD_ANGLE",
    "SCENE_MODELS",
    "CameraGeometry",
    "SceneModel",
    "camera_geometry",
    "cameras_box",
    "decide",
    "forward_normalization",
    "frusta_box",
    "inside_box",
    "near_depth",
    "points_box",
    "requested_model",
]
