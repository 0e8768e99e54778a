"""End to end through the CLI on a generated capture: train nerf, test PSNR, every export, bit-exact resume."""

import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fieldforge.app.cli import main
from tests.test_captures_nerfstudio import write_capture

TINY = [
    "--field.encoding.n-levels", "6", "--field.encoding.log2-table-size", "12", "--field.encoding.max-resolution", "64",
    "--render.grid-resolution", "16", "--render.steps-per-ray", "96", "--render.grid-warmup-steps", "32",
    "--render.target-samples", "8192", "--batch-size", "512", "--optim.warmup-steps", "5", "--eval-views", "1", "--seed", "3", "--progress", "False",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nerf")
    cap = write_capture(root / "cap", n_views=24, width=24, height=20)
    argv = ["train", "nerf", "--data", str(cap), "--output-dir", str(root / "runs"), "--name", "r", "--steps", "80",
            "--eval-every", "40", "--checkpoint-every", "40", "--keep-checkpoints", "5", *TINY]
    assert main(argv) == 0
    return root, cap, root / "runs" / "r"


def test_training_learns_the_scene(trained, capsys):
    root, cap, run = trained
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    final = evals[-1]
    assert final["step"] == 80 and final["eval_views"] == 3  # the final evaluation renders every test view
    # better than the best constant image (the background) by a margin
    from fieldforge.data.captures import load_capture

    c = load_capture(cap)
    white = np.mean([10 * np.log10(1 / float(((c.composited(i) - 1) ** 2).mean())) for i in c.split["test"]])
    assert final["psnr"] > white + 3, (final["psnr"], white)
    assert (run / "capture.json").is_file() and (run / "renders" / "test_0000.png").is_file()
    assert 0 < final["grid_occupancy"] < 0.9  # empty space is being skipped already


def test_export_render_matches_training_evaluation(trained, capsys):
    _, _, run = trained
    assert main(["export", "render", "--run", str(run), "--depth", "True", "--device", "cpu"]) == 0
    line = capsys.readouterr().out.strip()
    out = run / "exports" / "render-test-step000080"
    m = json.loads((out / "metrics.json").read_text())
    assert line.startswith("rendered 3 test views from step 80") and f", PSNR {m['psnr']:.2f} dB" in line
    final = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x][-1]
    assert m["psnr"] == pytest.approx(final["psnr"], abs=0.05)  # 8-bit PNG vs float render
    assert iio.imread(out / "0000.png").shape == (20, 24, 3) and (out / "0008_depth.png").is_file()
    # the exported views are the very images the final evaluation rendered (renders/test_NNNN.png)
    for i in (0, 8, 16):
        exported = iio.imread(out / f"{i:04d}.png").astype(np.int16)
        trained_view = iio.imread(run / "renders" / f"test_{i:04d}.png").astype(np.int16)
        diff = np.abs(exported - trained_view)
        assert exported.shape == trained_view.shape and diff.mean() <= 0.5 and np.quantile(diff, 0.99) <= 2, (i, diff.max())
        assert not np.array_equal(exported, iio.imread(out / f"{(i + 8) % 24:04d}.png")), "every view rendered the same image"


def test_export_video_pointcloud_and_mesh(trained, capsys):
    _, cap, run = trained
    assert main(["export", "video", "--run", str(run), "--frames", "6", "--fps", "6", "--device", "cpu"]) == 0
    video = iio.imread(run / "exports" / "video-orbit-step000080.mp4")
    assert video.shape == (6, 16, 32, 3)  # 24×20 views scaled to multiples of 16
    _assert_frames_are_the_orbit_renders(run, video)
    for path in ("spiral", "cameras"):
        assert main(["export", "video", "--run", str(run), "--frames", "3", "--path", path, "--device", "cpu"]) == 0
        assert iio.imread(run / "exports" / f"video-{path}-step000080.mp4").shape == (3, 16, 32, 3), path
    through_cameras = iio.imread(run / "exports" / "video-cameras-step000080.mp4").astype(np.int16)
    assert np.abs(through_cameras[0] - through_cameras[-1]).mean() > 2  # first and last training camera see different views
    capsys.readouterr()
    assert main(["export", "pointcloud", "--run", str(run), "--points", "500", "--device", "cpu"]) == 0
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(run / "exports" / "pointcloud-step000080.ply"))
    pts = np.asarray(pcd.points)
    assert 10 < len(pts) <= 500 and np.abs(pts).max() < 1.2  # capture frame: the scene lies within radius ~1
    # --frame unit: the same points in FieldForge's normalized frame; the old spelling --frame normalized is an alias
    from fieldforge.data.transforms import Similarity

    to_unit = Similarity.from_dict(json.loads((run / "capture.json").read_text())["normalization"])
    for spelling in ("unit", "normalized"):
        out = run / "exports" / f"points-{spelling}.ply"
        assert main(["export", "pointcloud", "--run", str(run), "--points", "500", "--frame", spelling, "--output", str(out),
                     "--device", "cpu"]) == 0
        unit = np.asarray(o3d.io.read_point_cloud(str(out)).points)
        assert unit.shape == pts.shape and np.allclose(unit, to_unit.apply(pts), atol=1e-4), spelling
    assert main(["export", "mesh", "--run", str(run), "--resolution", "48", "--level", "1", "--device", "cpu"]) == 0
    assert "density mesh" in capsys.readouterr().out
    mesh = o3d.io.read_triangle_mesh(str(run / "exports" / "mesh-48-step000080.ply"))
    v = np.asarray(mesh.vertices)
    assert len(mesh.triangles) > 0 and mesh.has_vertex_colors() and np.abs(v).max() < 1.0  # capture frame


def _assert_frames_are_the_orbit_renders(run: Path, video: np.ndarray) -> None:
    """Each decoded frame is the model's render from its own pose on the orbit (H.264 keeps it within a few
    levels), not from any other pose: the frames differ from one another as the camera moves around."""
    from fieldforge.app.export_views import load_scene
    from fieldforge.data.camera_paths import camera_path
    from fieldforge.fields.metrics import psnr

    scene = load_scene(run, None, "cpu")
    cams = scene.cameras
    n, h, w = video.shape[:3]
    poses = camera_path("orbit", cams.camera_to_world.double().numpy(), np.asarray(scene.loaded.info["scene_box"]), n)
    ref = scene.views("train")[0]
    fx, fy = cams.intrinsics[ref, :2].tolist()
    intr = torch.tensor([fx * w / float(cams.width[ref]), fy * h / float(cams.height[ref]), w / 2, h / 2])
    with torch.no_grad():
        renders = [scene.render(torch.from_numpy(p).float(), intr, w, h)[0] for p in poses]
    frames = [torch.from_numpy(f).float() / 255 for f in video]
    for i, frame in enumerate(frames):
        own = psnr(frame, renders[i])
        others = [psnr(frame, r) for j, r in enumerate(renders) if j != i]
        assert own > 30.0 and own > max(others) + 6.0, (i, own, others)
        for j in range(i + 1, n):
            assert float((frame - frames[j]).abs().mean()) > 0.01, (i, j)  # the view changes along the orbit


def test_resume_is_bit_exact(trained):
    root, cap, run = trained
    copy = root / "runs" / "copy"
    shutil.copytree(run, copy)
    final = copy / "checkpoints" / "step-000080.safetensors"
    reference = load_file(str(final))
    final.unlink()
    final.with_suffix(".state.pt").unlink()
    assert main(["train", "nerf", "--resume", str(copy)]) == 0
    resumed = load_file(str(final))
    assert reference.keys() == resumed.keys()
    for k in reference:
        assert torch.equal(reference[k], resumed[k]), k
