"""Camera poses and fly-through paths (data.camera_paths), checked against their geometric properties."""

import math

import numpy as np
import pytest
import torch

from fieldforge.data.camera_paths import (
    average_pose,
    camera_path,
    interpolate_path,
    look_at,
    matrix_from_quaternion,
    orbit_path,
    quaternion_from_matrix,
    slerp,
    spiral_path,
)
from fieldforge.data.errors import InputError


def _assert_rigid(poses: np.ndarray) -> None:
    rot = poses[..., :3, :3]
    assert np.allclose(rot @ np.swapaxes(rot, -1, -2), np.eye(3), atol=1e-10)
    assert np.allclose(np.linalg.det(rot), 1.0, atol=1e-10)
    assert np.allclose(poses[..., 3, :], [0, 0, 0, 1])


def _ring(n: int = 8, radius: float = 3.0, height: float = 1.0) -> np.ndarray:
    angles = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([look_at(np.array([radius * math.cos(a), radius * math.sin(a), height])) for a in angles])


def test_look_at_points_minus_z_at_the_target():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pos, target, up = rng.normal(size=3) * 5, rng.normal(size=3), rng.normal(size=3)
        m = look_at(pos, target, up)
        _assert_rigid(m)
        view = (target - pos) / np.linalg.norm(target - pos)
        assert np.allclose(-m[:3, 2], view) and np.allclose(m[:3, 3], pos)
        assert abs(m[:3, 0] @ up) < 1e-9 and m[:3, 1] @ up >= -1e-12  # x level with the horizon, y up
    t = look_at(torch.tensor([0.0, -3.0, 1.0], dtype=torch.float64))  # default: target origin, +z up
    assert t.dtype == torch.float64 and torch.allclose(-t[:3, 2], -t[:3, 3] / t[:3, 3].norm())
    assert float(t[2, 1]) > 0
    straight_down = look_at(np.array([0.0, 0.0, 5.0]))  # up ∥ viewing direction: still a valid pose
    _assert_rigid(straight_down)
    assert np.allclose(-straight_down[:3, 2], [0, 0, -1])
    with pytest.raises(ValueError):
        look_at(np.zeros(3))


def test_quaternions_round_trip_every_rotation_including_half_turns():
    rng = np.random.default_rng(1)
    rots = [look_at(rng.normal(size=3), rng.normal(size=3) * 0.1)[:3, :3] for _ in range(20)]
    rots += [np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
    axis = np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
    rots.append(2 * np.outer(axis, axis) - np.eye(3))  # half turn about a diagonal axis
    for r in rots:
        q = quaternion_from_matrix(r)
        assert q[0] >= 0 and np.isclose(np.linalg.norm(q), 1.0)
        assert np.allclose(matrix_from_quaternion(q), r, atol=1e-12)


def test_slerp_moves_at_constant_angular_speed():
    a = quaternion_from_matrix(np.eye(3))
    b = quaternion_from_matrix(look_at(np.array([1.0, 0, 0]), np.zeros(3))[:3, :3])
    assert np.allclose(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b)

    def angle(p: np.ndarray, q: np.ndarray) -> float:
        return 2 * math.acos(min(1.0, abs(float(p @ q))))

    full = angle(a, b)
    for t in (0.25, 0.5, 0.8):
        assert angle(a, slerp(a, b, t)) == pytest.approx(t * full)


def test_orbit_frames_circle_the_centre_looking_at_it():
    c2w = _ring()
    centre = np.array([0.2, -0.1, 0.3])
    poses = orbit_path(c2w, centre, 12)
    assert poses.shape == (12, 4, 4)
    _assert_rigid(poses)
    dist = np.linalg.norm(poses[:, :3, 3] - centre, axis=1)
    assert np.allclose(dist, dist[0])
    view = (centre - poses[:, :3, 3]) / dist[:, None]
    assert np.allclose(-poses[:, :3, 2], view)
    assert np.allclose(poses[:, 2, 3], c2w[:, 2, 3].mean())  # the cameras' mean height (their up is +z)


def test_path_through_the_cameras_passes_through_them():
    c2w = _ring(4)
    poses = interpolate_path(c2w, 7)
    _assert_rigid(poses)
    assert np.array_equal(poses[0], c2w[0]) and np.array_equal(poses[-1], c2w[-1])
    assert np.array_equal(poses[2], c2w[1]) and np.array_equal(poses[4], c2w[2])  # every other frame is a camera
    mid = poses[1, :3, 3]
    assert np.allclose(mid, (c2w[0, :3, 3] + c2w[1, :3, 3]) / 2)
    assert np.array_equal(interpolate_path(c2w[:1], 3), np.repeat(c2w[:1], 3, axis=0))


def test_spiral_looks_at_one_point_in_front_of_the_average_pose():
    rng = np.random.default_rng(2)
    c2w = np.stack([look_at(np.array([x, 4.0, z]), np.array([x, 0.0, z])) for x, z in rng.normal(size=(6, 2)) * 0.3])
    avg = average_pose(c2w)
    _assert_rigid(avg)
    assert np.allclose(-avg[:3, 2], [0, -1, 0], atol=1e-9)
    poses = spiral_path(c2w, 10)
    _assert_rigid(poses)
    # every camera's optical axis passes through the same focus point
    p, d = poses[:, :3, 3], -poses[:, :3, 2]
    proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]
    focus = np.linalg.solve(proj.sum(0), (proj @ p[:, :, None]).sum(0)[:, 0])
    assert np.allclose(np.cross(focus - p, d), 0, atol=1e-9)


def test_camera_path_dispatches_and_rejects_unknown_kinds():
    c2w, box = _ring(), np.array([[-1.0, -1, -1], [1, 1, 1]])
    for kind in ("orbit", "spiral", "cameras"):
        assert camera_path(kind, c2w, box, 5).shape == (5, 4, 4)
    with pytest.raises(InputError, match="unknown camera path"):
        camera_path("zigzag", c2w, box, 5)
    with pytest.raises(InputError, match="at least one frame"):
        camera_path("orbit", c2w, box, 0)
