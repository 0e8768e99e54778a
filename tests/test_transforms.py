"""The one similarity transform (data.transforms.Similarity): algebra, poses, and both stored layouts."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fieldforge.data.camera_paths import look_at
from fieldforge.data.transforms import Similarity, rotation_between

LEGACY = Path(__file__).parent / "data" / "legacy_runs" / "runs"


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _random_similarity(seed: int) -> Similarity:
    rng = np.random.default_rng(seed)
    return Similarity(_random_rotation(rng), rng.normal(size=3) * 3, float(rng.uniform(0.1, 5.0)))


def test_apply_invert_round_trip_numpy_and_torch():
    s = _random_similarity(0)
    pts = np.random.default_rng(1).normal(size=(50, 3)) * 10
    out = s.apply(pts)
    assert out.dtype == np.float64 and np.allclose(s.invert(out), pts, atol=1e-12)
    assert np.allclose(out, pts @ (s.scale * s.rotation).T + s.offset, atol=1e-12)  # p' = s·R p + s·t
    t32 = torch.from_numpy(pts).float()
    o32 = s.apply(t32)
    assert o32.dtype == torch.float32 and torch.allclose(o32.double(), torch.from_numpy(out), atol=1e-4)
    assert torch.allclose(s.invert(o32).double(), t32.double(), atol=1e-4)
    batched = np.broadcast_to(pts, (2, 50, 3))
    assert s.apply(batched).shape == (2, 50, 3)
    assert np.allclose(s.inverse().apply(out), pts, atol=1e-12)


def test_composition_is_the_matrix_product():
    a, b = _random_similarity(2), _random_similarity(3)
    ab = a.then(b)
    assert np.allclose(ab.matrix(), b.matrix() @ a.matrix(), atol=1e-12)
    pts = np.random.default_rng(4).normal(size=(20, 3))
    assert np.allclose(ab.apply(pts), b.apply(a.apply(pts)), atol=1e-10)
    assert np.allclose(a.then(a.inverse()).matrix(), np.eye(4), atol=1e-12)
    assert np.allclose(a.inverse().matrix(), np.linalg.inv(a.matrix()), atol=1e-12)
    assert Similarity().is_identity() and a.then(Similarity()) == a


def test_directions_and_normals_only_rotate():
    s = _random_similarity(5)
    d = np.random.default_rng(6).normal(size=(30, 3))
    r = s.rotate(d)
    assert np.allclose(np.linalg.norm(r, axis=1), np.linalg.norm(d, axis=1)) and np.allclose(s.unrotate(r), d)
    # the outward normal of a sphere at p is the outward normal of the transformed sphere at p'
    centre, p = np.array([1.0, -2.0, 0.5]), np.array([[1.0, -2.0, 2.5]])
    n = (p - centre) / 2.0
    moved = s.apply(p) - s.apply(centre[None])
    assert np.allclose(s.rotate(n), moved / np.linalg.norm(moved), atol=1e-12)


def test_pose_application_keeps_rotations_orthonormal_and_rays_consistent():
    s = _random_similarity(7)
    rng = np.random.default_rng(8)
    poses = np.stack([look_at(rng.normal(size=3) * 4, rng.normal(size=3)) for _ in range(6)])
    out = s.apply_poses(poses)
    rot = out[:, :3, :3]
    assert np.allclose(rot @ np.swapaxes(rot, 1, 2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(rot), 1.0) and np.allclose(out[:, 3], [0, 0, 0, 1])
    assert np.allclose(out[:, :3, 3], s.apply(poses[:, :3, 3]))
    # a point 2 units along a camera's view axis stays on the transformed view axis (at 2·scale)
    seen = poses[:, :3, 3] - 2.0 * poses[:, :3, 2]
    assert np.allclose(s.apply(seen), out[:, :3, 3] - 2.0 * s.scale * out[:, :3, 2], atol=1e-10)
    assert np.allclose(s.invert_poses(out), poses, atol=1e-12)
    t = s.apply_poses(torch.from_numpy(poses).float())
    assert t.dtype == torch.float32 and torch.allclose(t.double(), torch.from_numpy(out), atol=1e-5)
    assert np.allclose(s.apply_poses(poses[0]), out[0])  # a single 4×4 pose


def test_fit_unit_cube_centres_and_scales_the_bounding_box():
    pts = torch.tensor([[-3.0, 1.0, 2.0], [5.0, 2.0, 2.5], [1.0, 1.5, 6.0]], dtype=torch.float64)
    s = Similarity.fit_unit_cube(pts, padding=0.1)
    u = s.apply(pts)
    lo, hi = u.min(0).values, u.max(0).values
    assert torch.allclose((lo + hi) / 2, torch.full((3,), 0.5, dtype=torch.float64))
    assert float((hi - lo).max()) == pytest.approx(0.8) and np.allclose(s.rotation, np.eye(3))
    with pytest.raises(ValueError, match="coincident"):
        Similarity.fit_unit_cube(np.ones((4, 3)))


def test_dict_round_trip_writes_both_layouts():
    s = _random_similarity(9)
    d = json.loads(json.dumps(s.to_dict()))
    assert Similarity.from_dict(d) == s
    assert np.allclose(np.asarray(d["matrix"]), s.matrix()) and np.allclose(d["offset"], s.scale * np.asarray(d["translation"]))
    assert np.allclose(Similarity.from_dict({"matrix": d["matrix"]}).matrix(), s.matrix(), atol=1e-12)
    bad_dicts = [
        {},
        {"scale": 1.0},
        {"rotation": [[1, 0], [0, 1]], "translation": [0, 0, 0], "scale": 1.0},
        {"scale": -1.0, "offset": [0, 0, 0]},
    ]
    for bad in bad_dicts:
        with pytest.raises(ValueError):
            Similarity.from_dict(bad)
    with pytest.raises(ValueError, match="isotropic"):
        Similarity.from_matrix(np.diag([1.0, 2.0, 3.0, 1.0]))


def test_reads_the_point_cloud_layout_of_old_sdf_runs():
    d = json.loads((LEGACY / "sdf-ff" / "data.json").read_text())["normalization"]
    assert set(d) == {"scale", "offset", "world_to_unit"}  # unit = world·scale + offset
    s = Similarity.from_dict(d)
    assert np.allclose(s.matrix(), np.asarray(d["world_to_unit"]), atol=1e-15)
    world = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])
    assert np.allclose(s.apply(world), world * d["scale"] + np.asarray(d["offset"]), atol=1e-15)
    assert Similarity.from_dict({"scale": d["scale"], "world_to_unit": d["world_to_unit"]}) is not None


def test_reads_the_capture_layout_of_old_nerf_runs():
    d = json.loads((LEGACY / "nerf-ff" / "capture.json").read_text())["normalization"]
    assert set(d) == {"rotation", "translation", "scale"}  # p = scale·(R p + t)
    s = Similarity.from_dict(d)
    assert np.array_equal(s.rotation, np.asarray(d["rotation"])) and s.scale == d["scale"]
    assert np.allclose(s.rotation @ s.rotation.T, np.eye(3), atol=1e-12)
    p = np.array([[0.3, -1.0, 2.0]])
    assert np.allclose(s.apply(p), d["scale"] * (p @ np.asarray(d["rotation"]).T + np.asarray(d["translation"])))


def test_rotation_between_maps_a_onto_b():
    rng = np.random.default_rng(10)
    for a, b in [(rng.normal(size=3), rng.normal(size=3)), (np.array([0, 0, 1.0]), np.array([0, 0, -1.0]))]:
        r = rotation_between(a, b)
        assert np.allclose(r @ (a / np.linalg.norm(a)), b / np.linalg.norm(b)) and np.isclose(np.linalg.det(r), 1.0)
