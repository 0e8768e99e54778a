"""Camera conventions between viser and FieldForge, and the progressive resolution ladder.

viser reports a client's camera as a rotation ``wxyz`` and a ``position`` in the scene's world frame, in the
OpenCV convention (the camera looks down +z, y points down the image). FieldForge's cameras are OpenGL
camera-to-world matrices (looks down −z, y up), so the two rotations differ by ``diag(1, −1, −1)`` on the
camera side. The scene's world frame *is* the model's frame (the capture's normalized frame for radiance
fields), so no other transform is needed.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

CV_TO_GL = np.diag([1.0, -1.0, -1.0])
"""Flips y and z of the camera axes: OpenCV camera ↔ OpenGL camera (its own inverse)."""


def quat_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = (float(v) for v in np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """``wxyz`` of a rotation matrix (Shepperd's method, numerically safe for every rotation)."""
    r = np.asarray(r, dtype=np.float64)
    t = np.trace(r)
    if t > 0:
        s = math.sqrt(t + 1.0) * 2
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    return q / np.linalg.norm(q)


def viser_to_c2w(wxyz: np.ndarray, position: np.ndarray) -> Tensor:
    """A viser camera (OpenCV rotation + position) as our OpenGL 4×4 camera-to-world matrix."""
    c2w = np.eye(4)
    c2w[:3, :3] = quat_to_matrix(wxyz) @ CV_TO_GL
    c2w[:3, 3] = np.asarray(position, dtype=np.float64)
    return torch.tensor(c2w, dtype=torch.float32)


def c2w_to_viser(c2w: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our OpenGL camera-to-world → viser's ``(wxyz, position)`` (OpenCV camera)."""
    m = np.asarray(c2w.detach().cpu().double() if isinstance(c2w, Tensor) else c2w, dtype=np.float64)
    return matrix_to_quat(m[:3, :3] @ CV_TO_GL), m[:3, 3].copy()


def intrinsics_for(fov_y: float, width: int, height: int) -> Tensor:
    """Pinhole ``(fx, fy, cx, cy)`` of a ``width × height`` image with vertical field of view ``fov_y`` (radians)."""
    fy = 0.5 * height / math.tan(0.5 * fov_y)
    return torch.tensor([fy, fy, 0.5 * width, 0.5 * height], dtype=torch.float32)


def fov_of(intrinsics: Tensor, height: int) -> float:
    """Vertical field of view (radians) of pinhole intrinsics ``(fx, fy, cx, cy)``."""
    return 2.0 * math.atan(0.5 * height / float(intrinsics[1]))


@dataclass(frozen=True)
class View:
    """One client camera, in our convention."""

    c2w: Tensor
    fov_y: float
    aspect: float
    """Width / height of the client's canvas."""

    def size(self, long_side: int) -> tuple[int, int]:
        """``(width, height)`` with the canvas' aspect and the longer side ``long_side``."""
        if self.aspect >= 1:
            return long_side, max(1, round(long_side / self.aspect))
        return max(1, round(long_side * self.aspect)), long_side


def ladder(first: int, maximum: int) -> list[int]:
    """Long sides of a progressive refinement: ``first``, doubling, ending exactly at ``maximum``."""
    first = max(8, min(first, maximum))
    sides = [first]
    while sides[-1] < maximum:
        sides.append(min(maximum, sides[-1] * 2))
    return sides


def moving_side(pixels_per_s: float, aspect: float, target_fps: float = 25.0, lo: int = 32, hi: int = 512) -> int:
    """The long side whose frame renders in ``1 / target_fps`` s at the measured throughput (≈ 20–30 frames/s)."""
    pixels = max(1.0, pixels_per_s / target_fps)
    short_over_long = 1 / aspect if aspect >= 1 else aspect
    side = int(math.sqrt(pixels / max(short_over_long, 1e-3)))
    return max(lo, min(hi, side))
