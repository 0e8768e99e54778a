"""nerfstudio transforms.json: generated captures (pinhole, OPENCV distortion, non-square, masks, points),
the awkward cases, and a geometric check that parsed cameras see the scene where the images show it."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fieldforge.data.captures import CaptureOptions, CaptureWarning, load_capture, parse_nerfstudio
from fieldforge.data.captures.synthetic import SyntheticCaptureConfig, synthetic_capture_files, trace
from fieldforge.data.errors import InputError
from fieldforge.fields.rendering.rays import generate_rays, pixel_grid


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def write_capture(root: Path, **kw) -> Path:
    """A small procedural capture in nerfstudio format (non-square 20×14 by default)."""
    cfg = dict(n_views=9, width=20, height=14, supersample=1)
    cfg.update(kw)
    return write_files(root, synthetic_capture_files(SyntheticCaptureConfig(**cfg)))


def _expected_box(norm, half: float) -> torch.Tensor:
    """The source box ±half, mapped by the normalization (a slight rotation) and made axis-aligned."""
    corners = torch.tensor([[x, y, z] for x in (-half, half) for y in (-half, half) for z in (-half, half)], dtype=torch.float64)
    c = norm.apply(corners).float()
    return torch.stack([c.amin(0), c.amax(0)])


def _alpha_agrees_with_rays(capture, index: int) -> float:
    """Fraction of pixels where 'the parsed camera's ray hits the analytic scene' equals 'alpha > 0.5'."""
    cams = capture.cameras
    w, h = int(cams.width[index]), int(cams.height[index])
    pix = pixel_grid(h, w).double()
    n = pix.shape[0]
    dist = cams.distortion[index].double()[None].expand(n, 6) if cams.has_distortion() else None
    o, d = generate_rays(cams.camera_to_world[index].double()[None].expand(n, 4, 4), cams.intrinsics[index].double()[None].expand(n, 4), pix, dist)
    # back to the capture's own frame, where the analytic scene lives
    norm = capture.normalization
    o_src = norm.invert(o)
    d_src = norm.unrotate(d)  # inverse rotation (scale does not change directions)
    hit, _ = trace(o_src, d_src / d_src.norm(dim=-1, keepdim=True))
    alpha = capture.image_float(index)[..., 3].reshape(-1) > 0.5
    return float((hit == alpha).double().mean())


def test_parse_pinhole_capture_exactly(tmp_path):
    root = write_capture(tmp_path, n_points=50)
    meta = json.loads((root / "transforms.json").read_text())
    cap = load_capture(root)
    assert cap.format == "nerfstudio" and len(cap) == 9
    assert cap.split["test"] == [0, 8] and cap.split["train"] == [1, 2, 3, 4, 5, 6, 7]
    assert cap.images[0].dtype == torch.uint8 and cap.images[0].shape == (14, 20, 4)  # RGBA, non-square
    assert torch.allclose(cap.background, torch.ones(3))  # RGBA composites over white by default
    fx = meta["fl_x"]
    assert torch.allclose(cap.cameras.intrinsics[3], torch.tensor([fx, fx, 10.0, 7.0]))
    src = torch.tensor([f["transform_matrix"] for f in meta["frames"]], dtype=torch.float64)
    assert torch.allclose(cap.cameras.camera_to_world.double(), cap.normalization.apply_poses(src), atol=1e-6)
    # normalization: cameras in [-1, 1]^3, explicit scene_box mapped into the normalized frame
    assert float(cap.cameras.camera_to_world[:, :3, 3].abs().max()) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(cap.scene_box, _expected_box(cap.normalization, 0.85), atol=1e-5)
    # sparse points (ply_file_path) are in the same normalized frame, inside the scene box
    assert cap.points is not None and cap.points.shape == (50, 3) and cap.point_colors is not None
    assert bool((cap.points.abs() < cap.scene_box[1]).all())
    assert _alpha_agrees_with_rays(cap, 4) > 0.93  # edge pixels are partially covered


def test_opencv_distortion_is_parsed_and_undistorted(tmp_path):
    dist = (-0.25, 0.06, 0.0, 0.0, 0.004, -0.003)
    root = write_capture(tmp_path, distortion=dist, n_views=3)
    cap = parse_nerfstudio(root / "transforms.json", CaptureOptions(holdout_every=0))
    assert cap.cameras.has_distortion()
    assert torch.allclose(cap.cameras.distortion[0], torch.tensor(dist))
    assert _alpha_agrees_with_rays(cap, 1) > 0.93
    # ignoring the distortion misplaces the object noticeably
    cap.cameras.distortion.zero_()
    assert _alpha_agrees_with_rays(cap, 1) < _alpha_agrees_with_rays(parse_nerfstudio(root, CaptureOptions(holdout_every=0)), 1)


def test_missing_image_files_are_skipped_with_a_warning(tmp_path):
    root = write_capture(tmp_path, n_views=4)
    (root / "images" / "frame_0002.png").unlink()
    with pytest.warns(CaptureWarning, match="frame_0002.png: image file not found"):
        cap = load_capture(root, CaptureOptions(holdout_every=0))
    assert len(cap) == 3 and len(cap.skipped) == 1
    assert [p.name for p in cap.image_paths] == ["frame_0000.png", "frame_0001.png", "frame_0003.png"]


def test_per_frame_intrinsics_masks_split_and_aabb_scale(tmp_path):
    root = write_capture(tmp_path, n_views=4)
    meta = json.loads((root / "transforms.json").read_text())
    # frame 1 becomes a 10×7 image with its own intrinsics; frame 0 gets a mask
    import imageio.v3 as iio

    small = iio.imread(root / "images" / "frame_0001.png")[::2, ::2]
    iio.imwrite(root / "images" / "frame_0001.png", small)
    for k in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        v = meta.pop(k)
        for i, f in enumerate(meta["frames"]):
            f[k] = v / 2 if (i == 1) else v
    mask = np.zeros((14, 20), dtype=np.uint8)
    mask[:, :10] = 255
    iio.imwrite(root / "mask0.png", mask)
    meta["frames"][0]["mask_path"] = "mask0.png"
    meta["train_filenames"] = ["images/frame_0000.png", "images/frame_0001.png"]
    meta["test_filenames"] = ["./images/frame_0003.png"]
    meta["aabb_scale"] = 2
    (root / "transforms.json").write_text(json.dumps(meta))
    cap = load_capture(root)
    assert cap.images[1].shape[:2] == (7, 10) and float(cap.cameras.intrinsics[1, 0]) == pytest.approx(meta["frames"][0]["fl_x"] / 2)
    assert cap.split == {"train": [0, 1], "val": [3], "test": [3]}
    assert cap.masks is not None and cap.masks[0] is not None and int(cap.masks[0].sum()) == 14 * 10 and cap.masks[1] is None
    assert torch.allclose(cap.scene_box, _expected_box(cap.normalization, 0.85 * 2), atol=1e-5)


def test_downscale_and_memory_budget(tmp_path):
    root = write_capture(tmp_path, n_views=2, width=32, height=24)
    cap = load_capture(root, CaptureOptions(downscale=2, holdout_every=0))
    assert cap.images[0].shape[:2] == (12, 16) and cap.downscale == 2
    full = load_capture(root, CaptureOptions(holdout_every=0))
    assert torch.allclose(cap.cameras.intrinsics, full.cameras.intrinsics / 2)
    with pytest.warns(CaptureWarning, match="downscaled by 3"):
        tight = load_capture(root, CaptureOptions(max_total_pixels=2 * 32 * 24 // 9, holdout_every=0))
    assert tight.images[0].shape[:2] == (8, 10)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["frames"][1].update(transform_matrix=[[float("nan")] * 4] * 4), "NaN"),
        (lambda m: m["frames"][0].update(transform_matrix=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]), "singular"),
        (lambda m: m.update(frames=[]), "zero frames"),
        (lambda m: m.update(camera_model="OPENCV_FISHEYE"), "not supported"),
        (lambda m: m.update(w=99), "says 99×14"),
    ],
)
def test_bad_transforms_raise_input_errors(tmp_path, edit, message):
    root = write_capture(tmp_path, n_views=2)
    meta = json.loads((root / "transforms.json").read_text())
    edit(meta)
    (root / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_capture(root)


def test_mixed_sizes_without_per_frame_intrinsics_is_an_input_error(tmp_path):
    root = write_capture(tmp_path, n_views=3)
    meta = json.loads((root / "transforms.json").read_text())
    for k in ("w", "h"):
        meta.pop(k)
    (root / "transforms.json").write_text(json.dumps(meta))
    import imageio.v3 as iio

    iio.imwrite(root / "images" / "frame_0001.png", iio.imread(root / "images" / "frame_0001.png")[:10])
    with pytest.raises(InputError, match="mixed sizes"):
        load_capture(root)
