"""Camera poses and paths: ``look_at``, quaternion slerp, the average pose, and fly-through paths.

Poses are camera-to-world 4×4 in the OpenGL/Blender/nerfstudio convention (ARCHITECTURE.md): the camera
looks down its −z axis, +y is up in the image, +x to the right. Paths are float64 NumPy arrays
``(n_frames, 4, 4)``; :func:`look_at` also takes and returns torch tensors.
"""

import math
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.data.errors import InputError

PathKind = Literal["orbit", "spiral", "cameras"]
PATH_KINDS: tuple[str, ...] = ("orbit", "spiral", "cameras")

Vector = Float[Tensor, " 3"] | Float[np.ndarray, " 3"]
Pose = Float[Tensor, "4 4"] | Float[np.ndarray, "4 4"]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _float64(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)


def look_at(position: Vector, target: Vector | None = None, up: Vector | None = None) -> Pose:
    """Camera-to-world pose at ``position`` looking at ``target`` (default: the origin), with ``up``
    (default ``+z``) projected into the image's +y. The camera's −z axis points at the target; the
    rotation is orthonormal with determinant +1. When ``up`` is parallel to the viewing direction another
    axis stands in for it. Returns the type (and torch dtype/device) of ``position``; computed in float64."""
    p = _float64(position)
    t = np.zeros(3) if target is None else _float64(target)
    u = np.array([0.0, 0.0, 1.0]) if up is None else _float64(up)
    back = p - t
    if not np.linalg.norm(back) > 0:
        raise ValueError("look_at: the camera position equals the target")
    z = _unit(back)
    x = np.cross(u, z)
    if np.linalg.norm(x) < 1e-8 * max(np.linalg.norm(u), 1e-300):  # up ∥ viewing direction
        x = np.cross(np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0]), z)
    x = _unit(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, p
    if isinstance(position, Tensor):
        return torch.as_tensor(m, device=position.device).to(position.dtype)
    return m


def quaternion_from_matrix(rotation: Float[np.ndarray, "3 3"]) -> Float[np.ndarray, " 4"]:
    """Unit quaternion ``(w, x, y, z)`` with ``w ≥ 0`` of a rotation matrix (Shepperd's method: stable for
    every angle, including half turns)."""
    r = np.asarray(rotation, dtype=np.float64)
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = np.array([0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s])
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = np.array([(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s])
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = np.array([(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s])
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = np.array([(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s])
    q = _unit(q)
    return -q if q[0] < 0 else q


def matrix_from_quaternion(q: Float[np.ndarray, " 4"]) -> Float[np.ndarray, "3 3"]:
    """Rotation matrix of a quaternion ``(w, x, y, z)`` (normalized first)."""
    w, x, y, z = _unit(np.asarray(q, dtype=np.float64))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def slerp(q0: Float[np.ndarray, " 4"], q1: Float[np.ndarray, " 4"], t: float) -> Float[np.ndarray, " 4"]:
    """Spherical linear interpolation of unit quaternions along the shorter arc (``t`` in ``[0, 1]``)."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:  # nearly parallel: normalized lerp
        return _unit(q0 + t * (q1 - q0))
    th = math.acos(min(d, 1.0))
    return (math.sin((1 - t) * th) * q0 + math.sin(t * th) * q1) / math.sin(th)


def average_pose(camera_to_world: Float[np.ndarray, "n 4 4"]) -> Float[np.ndarray, "4 4"]:
    """LLFF's ``poses_avg``: mean position, mean viewing axis (+z), mean up (+y) made orthogonal to it."""
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    z = _unit(c2w[:, :3, 2].sum(0))
    x = _unit(np.cross(c2w[:, :3, 1].sum(0), z))
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z], 1)
    m[:3, 3] = c2w[:, :3, 3].mean(0)
    return m


def _mean_up(c2w: np.ndarray) -> np.ndarray:
    up = c2w[:, :3, 1].mean(0)
    return up / max(float(np.linalg.norm(up)), 1e-9)


def orbit_path(
    camera_to_world: Float[np.ndarray, "n 4 4"], centre: Float[np.ndarray, " 3"], n_frames: int
) -> Float[np.ndarray, "f 4 4"]:
    """A circle around ``centre`` about the cameras' mean up axis, at their mean distance from that axis
    and mean height along it, starting at the first camera's azimuth; every frame looks at ``centre``
    (so every frame is at the same distance from it)."""
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    centre = np.asarray(centre, dtype=np.float64)
    up = _mean_up(c2w)
    rel = c2w[:, :3, 3] - centre
    heights = rel @ up
    radius = float(np.linalg.norm(rel - heights[:, None] * up, axis=-1).mean())
    height = float(heights.mean())
    a = np.cross(up, [1.0, 0.0, 0.0])
    if np.linalg.norm(a) < 1e-6:
        a = np.cross(up, [0.0, 1.0, 0.0])
    a = _unit(a)
    b = np.cross(up, a)
    start = math.atan2(float(rel[0] @ b), float(rel[0] @ a))
    poses = []
    for k in range(n_frames):
        th = start + 2 * math.pi * k / n_frames
        pos = centre + radius * (math.cos(th) * a + math.sin(th) * b) + height * up
        poses.append(look_at(pos, centre, up))
    return np.stack(poses)


def spiral_path(camera_to_world: Float[np.ndarray, "n 4 4"], n_frames: int) -> Float[np.ndarray, "f 4 4"]:
    """LLFF's spiral (forward-facing captures): two turns around the average pose, radii the 90th
    percentile of the cameras' offsets from it, looking at a point in front of it."""
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    avg = average_pose(c2w)
    x, y, z, avg_pos = avg[:3, 0], avg[:3, 1], avg[:3, 2], avg[:3, 3]
    spread = np.percentile(np.abs((c2w[:, :3, 3] - avg_pos) @ avg[:3, :3]), 90, axis=0)
    focus = avg_pos - z * max(1.0, 4 * float(spread.max()))
    poses = []
    for k in range(n_frames):
        th = 4 * math.pi * k / n_frames
        off = spread[0] * math.cos(th) * x + spread[1] * math.sin(th) * y + 0.5 * spread[2] * math.sin(0.5 * th) * z
        poses.append(look_at(avg_pos + off, focus, y))
    return np.stack(poses)


def interpolate_path(camera_to_world: Float[np.ndarray, "n 4 4"], n_frames: int) -> Float[np.ndarray, "f 4 4"]:
    """Through the given poses in order, evenly in the pose index: slerp of the rotations, lerp of the
    positions. The first and last frames are exactly the first and last poses (``n_frames ≥ 2``), and
    every frame that falls on a pose is that pose."""
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    n = c2w.shape[0]
    if n == 1:
        return np.repeat(c2w[:1], n_frames, axis=0)
    qs = [quaternion_from_matrix(m[:3, :3]) for m in c2w]
    poses = []
    for k in range(n_frames):
        s = k / max(n_frames - 1, 1) * (n - 1)
        i = min(int(s), n - 2)
        t = s - i
        if t == 0.0 or t == 1.0:
            poses.append(c2w[i + int(t)].copy())
            continue
        m = np.eye(4)
        m[:3, :3] = matrix_from_quaternion(slerp(qs[i], qs[i + 1], t))
        m[:3, 3] = (1 - t) * c2w[i, :3, 3] + t * c2w[i + 1, :3, 3]
        poses.append(m)
    return np.stack(poses)


def camera_path(
    kind: str, camera_to_world: Float[np.ndarray, "n 4 4"], scene_box: Float[np.ndarray, "2 3"], n_frames: int
) -> Float[np.ndarray, "f 4 4"]:
    """``(n_frames, 4, 4)`` poses of a fly-through: ``orbit`` (:func:`orbit_path` around the box centre),
    ``spiral`` (:func:`spiral_path`) or ``cameras`` (:func:`interpolate_path` through the given poses)."""
    if n_frames < 1:
        raise InputError(None, f"a camera path needs at least one frame, got {n_frames}")
    c2w = np.asarray(camera_to_world, dtype=np.float64)
    if c2w.ndim != 3 or c2w.shape[1:] != (4, 4) or c2w.shape[0] == 0:
        raise InputError(None, f"a camera path needs (n ≥ 1, 4, 4) poses, got shape {c2w.shape}")
    if kind == "orbit":
        return orbit_path(c2w, np.asarray(scene_box, dtype=np.float64).mean(0), n_frames)
    if kind == "spiral":
        return spiral_path(c2w, n_frames)
    if kind == "cameras":
        return interpolate_path(c2w, n_frames)
    raise InputError(None, f"unknown camera path {kind!r}; choose {', '.join(PATH_KINDS)}")


__all__ = [
    "PATH_KINDS",
    "PathKind",
    "average_pose",
    "camera_path",
    "interpolate_path",
    "look_at",
    "matrix_from_quaternion",
    "orbit_path",
    "quaternion_from_matrix",
    "slerp",
    "spiral_path",
]
