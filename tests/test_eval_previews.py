"""Periodic evaluations write a render to ``renders/`` (progress visible without a browser): image, SDF slices,
NeRF test view beside its ground truth."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from fieldforge.app.cli import main
from fieldforge.data.images import encode_image
from fieldforge.data.synthetic import test_image as synthetic_image

LEGACY_INPUTS = Path(__file__).parent / "data" / "legacy_runs" / "inputs"
COMMON = ["--progress", "False", "--checkpoint-every", "0"]


def test_image_run_writes_a_render_per_periodic_evaluation(tmp_path: Path) -> None:
    image = tmp_path / "img.png"
    image.write_bytes(encode_image(synthetic_image(24, 16), "png"))
    argv = ["train", "image", "--data", str(image), "--method", "ff", "--steps", "20", "--eval-every", "5", "--batch-size", "64",
            "--field.network.width", "16", "--output-dir", str(tmp_path), "--name", "r", *COMMON]
    assert main(argv) == 0
    renders = tmp_path / "r" / "renders"
    names = sorted(p.name for p in renders.glob("eval-step*.png"))
    assert names == ["eval-step000005.png", "eval-step000010.png", "eval-step000015.png"]  # the final one is reconstruction.png
    early, final = iio.imread(renders / "eval-step000005.png"), iio.imread(renders / "reconstruction.png")
    assert early.shape == final.shape and early.shape[2] == 3 and early.shape[:2] in ((16, 24), (24, 16))
    assert not np.array_equal(early, final)  # taken during training, not a copy of the end


def test_sdf_run_writes_slices(tmp_path: Path) -> None:
    argv = ["train", "sdf", "--data", str(LEGACY_INPUTS / "sphere.obj"), "--steps", "4", "--eval-every", "2", "--batch-size", "256",
            "--sampling.pool-size", "2000", "--eval-resolution", "16", "--eval-points", "500", "--output-dir", str(tmp_path), "--name", "s", *COMMON]
    assert main(argv) == 0
    preview = iio.imread(tmp_path / "s" / "renders" / "eval-step000002.png")
    assert preview.shape[0] == 128 and preview.shape[1] == 3 * 128 + 2 * 4  # three mid-plane panels


def test_nerf_run_writes_a_test_view_beside_its_ground_truth(tmp_path: Path) -> None:
    pytest.importorskip("pycolmap")  # the capture package imports it
    from tests.test_nerf_train import TINY

    argv = ["train", "nerf", "--data", str(LEGACY_INPUTS / "capture"), "--steps", "4", "--eval-every", "2", "--output-dir", str(tmp_path),
            "--name", "n", *TINY, "--checkpoint-every", "0"]
    assert main(argv) == 0
    preview = iio.imread(tmp_path / "n" / "renders" / "eval-step000002.png")
    assert preview.shape[:2] == (16, 32)  # the 16×16 view and its ground truth side by side
    truth = iio.imread(tmp_path / "n" / "renders" / "test_0000_gt.png")  # the composited ground truth of the final evaluation
    assert np.array_equal(preview[:, 16:], truth)
    assert not np.array_equal(preview[:, :16], truth)  # the untrained render is not the ground truth
