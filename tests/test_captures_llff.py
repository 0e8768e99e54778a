"""LLFF poses_bounds.npy: the (down, right, back) convention, bound-based scaling, recentring, NDC."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from fieldforge.data.camera_paths import look_at
from fieldforge.data.captures import CaptureOptions, load_capture
from fieldforge.data.captures.llff import BD_FACTOR
from fieldforge.data.errors import InputError
from fieldforge.fields.rendering.rays import image_rays


def write_llff(root: Path, n: int = 5, width: int = 16, height: int = 12, focal: float = 14.0, image_scale: int = 1):
    """Forward-facing cameras on a small grid looking at the origin from +y (world up +z)."""
    gen = np.random.default_rng(0)
    rows, poses = [], []
    (root / "images").mkdir(parents=True)
    for i in range(n):
        pos = torch.tensor([0.3 * (i - n // 2), 4.0, 0.2 * (i % 2)], dtype=torch.float64)
        c2w = look_at(pos).numpy()
        poses.append(c2w)
        right, up, back = c2w[:3, 0], c2w[:3, 1], c2w[:3, 2]
        m = np.stack([-up, right, back, c2w[:3, 3], [height, width, focal]], axis=1)  # LLFF: (down, right, back)
        rows.append(np.concatenate([m.reshape(-1), [2.0 + 0.1 * i, 9.0]]))
        img = (gen.random((height // image_scale, width // image_scale, 3)) * 255).astype(np.uint8)
        iio.imwrite(root / "images" / f"IMG_{i:03d}.png", img)
    np.save(root / "poses_bounds.npy", np.stack(rows))
    return np.stack(poses)


def test_llff_poses_scale_and_recentring(tmp_path):
    """Forward-facing cameras: NDC with LLFF's normalization (a choice made from the poses, not the format)."""
    src = write_llff(tmp_path)
    cap = load_capture(tmp_path, CaptureOptions(holdout_every=0))
    assert cap.format == "llff" and len(cap) == 5 and cap.ndc and cap.scene_model == "ndc"
    assert cap.scene_reason.startswith("forward-facing")
    norm = cap.normalization
    assert norm.scale == pytest.approx(1.0 / (2.0 * BD_FACTOR))
    c2w = cap.cameras.camera_to_world.double()
    # recentred on the average pose: cameras look down −z on average and are centred at the origin
    assert torch.allclose(c2w[:, :3, 3].mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-6)
    mean_view = -c2w[:, :3, 2].mean(0)
    assert torch.allclose(mean_view / mean_view.norm(), torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-6)
    # the same rays, in the source frame: the parsed cameras are the written ones
    assert torch.allclose(norm.apply_poses(torch.from_numpy(src)), c2w, atol=1e-5)
    o, d = image_rays(c2w[2], cap.cameras.intrinsics[2].double(), 12, 16)
    o2, d2 = image_rays(torch.from_numpy(src[2]), torch.tensor([14.0, 14.0, 8.0, 6.0], dtype=torch.float64), 12, 16)
    assert torch.allclose(norm.invert(o), o2, atol=1e-5) and torch.allclose(norm.unrotate(d), d2, atol=1e-6)
    assert cap.near_far is not None and float(cap.near_far.min()) == pytest.approx(1 / BD_FACTOR, rel=1e-5)


def test_llff_downscaled_images_rescale_the_focal_and_ndc_box(tmp_path):
    write_llff(tmp_path, image_scale=2)
    cap = load_capture(tmp_path)
    assert cap.ndc and torch.allclose(cap.scene_box, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    assert torch.allclose(cap.cameras.intrinsics[0], torch.tensor([7.0, 7.0, 4.0, 3.0]))


def test_llff_without_ndc_uses_the_capture_frame_and_a_box_from_the_bounds(tmp_path):
    src = write_llff(tmp_path)
    cap = load_capture(tmp_path, CaptureOptions(ndc=False, holdout_every=0))
    assert not cap.ndc and cap.scene_model in ("bounded", "unbounded")
    # the same cameras, in the (nerfstudio-style) normalized frame
    assert torch.allclose(cap.normalization.apply_poses(torch.from_numpy(src)).float(), cap.cameras.camera_to_world, atol=1e-5)


def test_llff_mismatched_image_count_is_an_input_error(tmp_path):
    write_llff(tmp_path)
    (tmp_path / "images" / "IMG_004.png").unlink()
    with pytest.raises(InputError, match="4 images but poses_bounds.npy has 5 poses"):
        load_capture(tmp_path)
