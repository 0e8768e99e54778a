"""One set of posed views written in every capture format reads back as the same cameras, intrinsics and
held-out split (``data/captures/writers.py``, used by ``scripts/bench_nerf.py --formats``)."""

import json

import numpy as np
import pytest
import torch
from fieldforge.data.captures import CaptureOptions, load_capture, writers

from tests.test_captures_nerfstudio import write_capture


@pytest.fixture(scope="module")
def views_and_points(tmp_path_factory):
    src = write_capture(tmp_path_factory.mktemp("src"), n_views=10, width=16, height=12, n_points=200)
    meta = json.loads((src / "transforms.json").read_text())
    views = [writers.PosedImage(src / f["file_path"], np.asarray(f["transform_matrix"], dtype=np.float64),
                                (meta["fl_x"], meta["fl_y"], meta["cx"], meta["cy"]), meta["w"], meta["h"]) for f in meta["frames"]]
    cap = load_capture(src)
    return views, cap.normalization.invert(cap.points.double()).numpy()


@pytest.mark.parametrize("fmt", ["blender", "nerfstudio", "llff", "colmap"])
def test_every_format_reads_back_the_same_cameras(fmt, views_and_points, tmp_path):
    views, points = views_and_points
    root = tmp_path / fmt
    if fmt == "blender":
        writers.write_blender(root, views)
    elif fmt == "nerfstudio":
        writers.write_nerfstudio(root, views, points)
    elif fmt == "llff":
        writers.write_llff(root, views, writers.point_bounds(views, points))
    else:
        writers.write_colmap(root, views, points)
    cap = load_capture(root, CaptureOptions(holdout_every=4))
    assert cap.format == fmt
    assert cap.split["test"] == [0, 4, 8]
    # positions in the source frame (each format's normalization undone) and viewing directions
    pos = cap.normalization.invert(cap.cameras.camera_to_world[:, :3, 3].double())
    expected = torch.tensor(np.stack([v.camera_to_world[:3, 3] for v in views]))
    assert torch.allclose(pos, expected, atol=1e-4), (pos - expected).abs().max()
    fwd_src = -cap.cameras.camera_to_world[:, :3, 2].double() @ torch.tensor(cap.normalization.rotation)  # d = R d_src
    fwd_exp = -torch.tensor(np.stack([v.camera_to_world[:3, 2] for v in views]))
    assert torch.allclose(fwd_src / fwd_src.norm(dim=-1, keepdim=True), fwd_exp, atol=1e-4)
    assert torch.allclose(cap.cameras.intrinsics[:, 0].double(), torch.full((10,), views[0].intrinsics[0], dtype=torch.float64), rtol=1e-5)
    if fmt in ("nerfstudio", "colmap"):
        assert cap.points is not None and len(cap.points) == len(points)
