"""COLMAP models written with pycolmap (binary and text): cameras, OpenCV→OpenGL poses, points, distortion."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from fieldforge.data.captures import CaptureOptions, CaptureWarning, load_capture
from fieldforge.data.camera_paths import look_at
from fieldforge.data.captures.synthetic import camera_positions

pycolmap = pytest.importorskip("pycolmap", reason="pycolmap writes the reference COLMAP models")


def write_colmap(root: Path, binary: bool, n: int = 4):
    """Two cameras (PINHOLE 16×12 and OPENCV 20×14), n images on a sphere, 30 coloured points."""
    rec = pycolmap.Reconstruction()
    pin = pycolmap.Camera.create_from_model_name(1, "PINHOLE", 15.0, 16, 12)
    pin.params = [15.0, 16.0, 8.0, 6.0]
    cv = pycolmap.Camera.create_from_model_name(2, "OPENCV", 18.0, 20, 14)
    cv.params = [18.0, 17.0, 10.5, 6.5, -0.1, 0.02, 0.001, -0.002]
    rec.add_camera_with_trivial_rig(pin)
    rec.add_camera_with_trivial_rig(cv)
    gl = []
    (root / "images").mkdir(parents=True)
    for i, pos in enumerate(camera_positions(n, 3.0)):
        c2w_gl = look_at(pos).numpy()
        gl.append(c2w_gl)
        c2w_cv = c2w_gl @ np.diag([1.0, -1.0, -1.0, 1.0])
        w2c = np.linalg.inv(c2w_cv)
        cam_id = 1 + i % 2
        img = pycolmap.Image(name=f"img{i}.png", camera_id=cam_id, image_id=i + 1)
        rec.add_image_with_trivial_frame(img, pycolmap.Rigid3d(w2c[:3, :]))
        w, h = (16, 12) if cam_id == 1 else (20, 14)
        iio.imwrite(root / "images" / f"img{i}.png", np.full((h, w, 3), 40 * i, dtype=np.uint8))
    gen = np.random.default_rng(0)
    pts = gen.uniform(-0.5, 0.5, (30, 3))
    for p in pts:
        rec.add_point3D(p, pycolmap.Track(), np.array([255, 128, 0], dtype=np.uint8))
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    (rec.write_binary if binary else rec.write_text)(str(model))
    return np.stack(gl), pts


@pytest.mark.parametrize("binary", [True, False])
def test_colmap_binary_and_text(tmp_path, binary):
    gl, pts = write_colmap(tmp_path, binary)
    assert (tmp_path / "sparse" / "0" / ("cameras.bin" if binary else "cameras.txt")).is_file()
    cap = load_capture(tmp_path, CaptureOptions(holdout_every=0))
    assert cap.format == "colmap" and len(cap) == 4
    norm = cap.normalization
    assert torch.allclose(cap.cameras.camera_to_world.double(), norm.apply_poses(torch.from_numpy(gl)), atol=1e-5)
    assert torch.allclose(cap.cameras.intrinsics[0], torch.tensor([15.0, 16.0, 8.0, 6.0]))
    assert torch.allclose(cap.cameras.intrinsics[1], torch.tensor([18.0, 17.0, 10.5, 6.5]))
    assert torch.allclose(cap.cameras.distortion[1], torch.tensor([-0.1, 0.02, 0.0, 0.0, 0.001, -0.002]))
    assert torch.equal(cap.cameras.distortion[0], torch.zeros(6))
    assert cap.images[1].shape == (14, 20, 3) and cap.images[0].shape == (12, 16, 3)
    assert cap.points is not None and cap.points.shape == (30, 3)
    assert torch.allclose(norm.invert(cap.points.double()), torch.from_numpy(pts), atol=1e-5)
    assert torch.allclose(cap.point_colors[0], torch.tensor([1.0, 128 / 255, 0.0]))
    assert float(cap.cameras.camera_to_world[:, :3, 3].abs().max()) == pytest.approx(1.0, abs=1e-5)
    # cameras around the points: object-centric, the box from the sparse points (which it holds, the cameras outside it)
    assert cap.scene_model == "bounded" and "box from 30 sparse points" in cap.scene_reason, cap.scene_reason
    assert bool(((cap.points >= cap.scene_box[0]) & (cap.points <= cap.scene_box[1])).all())


def test_colmap_missing_image_is_skipped(tmp_path):
    write_colmap(tmp_path, True)
    (tmp_path / "images" / "img2.png").unlink()
    with pytest.warns(CaptureWarning, match="img2.png"):
        cap = load_capture(tmp_path / "sparse" / "0", CaptureOptions(holdout_every=0))
    assert len(cap) == 3
