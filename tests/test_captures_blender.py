"""Blender synthetic captures: camera_angle_x, RGBA over a chosen background, splits, non-square images."""

import json
import math
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from fieldforge.data.captures import CaptureOptions, load_capture, parse_blender
from fieldforge.data.camera_paths import look_at
from fieldforge.data.captures.synthetic import camera_positions, render_view


def write_blender(root: Path, splits=("train", "test"), n=(5, 2), width=18, height=12, fov_x=0.8) -> Path:
    pos = camera_positions(sum(n), 2.6)
    k = 0
    fx = 0.5 * width / math.tan(0.5 * fov_x)
    for split, count in zip(splits, n):
        frames = []
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            c2w = look_at(pos[k])
            rgba = render_view(c2w, fx, fx, width / 2, height / 2, width, height, supersample=1)
            iio.imwrite(root / split / f"r_{i}.png", (rgba.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
            frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.0, "transform_matrix": c2w.tolist()})
            k += 1
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": fov_x, "frames": frames}))
    return root


def test_blender_capture_with_splits_and_background(tmp_path):
    root = write_blender(tmp_path)
    cap = load_capture(root, CaptureOptions(background=(0.0, 0.0, 1.0)))
    assert cap.format == "blender" and len(cap) == 7
    assert cap.split == {"train": [0, 1, 2, 3, 4], "val": [5, 6], "test": [5, 6]}
    fx = 0.5 * 18 / math.tan(0.4)
    assert torch.allclose(cap.cameras.intrinsics[0], torch.tensor([fx, fx, 9.0, 6.0]))
    assert cap.normalization.scale == 1.0 and torch.allclose(cap.scene_box, torch.tensor([[-1.5] * 3, [1.5] * 3]))
    # RGBA composited over the chosen background: transparent pixels become pure blue
    im, comp = cap.image_float(5), cap.composited(5)
    clear = im[..., 3] == 0
    assert bool(clear.any()) and torch.allclose(comp[clear], torch.tensor([0.0, 0.0, 1.0]))
    opaque = im[..., 3] == 1
    assert torch.allclose(comp[opaque], im[..., :3][opaque])


def test_train_only_capture_holds_out_every_nth_view(tmp_path):
    root = write_blender(tmp_path, splits=("train",), n=(10,))
    cap = parse_blender(root / "transforms_train.json", CaptureOptions(holdout_every=4))
    assert cap.split["test"] == [0, 4, 8] and len(cap.split["train"]) == 7
    assert torch.allclose(cap.background, torch.ones(3))  # white by default for RGBA


def test_lego_half_loads_with_the_benchmark_protocol(shared_data):
    cap = load_capture(shared_data / "lego_half")
    assert len(cap) == 100 and cap.images[0].shape == (400, 400, 4)
    assert len(cap.split["test"]) == 13 and cap.split["test"][:3] == [0, 8, 16]
    meta = json.loads((shared_data / "lego_half" / "transforms_train.json").read_text())
    f = 0.5 * 400 / math.tan(0.5 * meta["camera_angle_x"])
    assert float(cap.cameras.intrinsics[0, 0]) == pytest.approx(f, rel=1e-6)
    assert np.allclose(cap.cameras.camera_to_world[3].numpy(), np.asarray(meta["frames"][3]["transform_matrix"]), atol=1e-6)
