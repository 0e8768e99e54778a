"""`fieldforge capture process` end to end on rendered views with exact poses: photos and a video → poses
(checked against the exact ones after a similarity alignment), points on the true surface, a capture that
`train nerf` reads; bad inputs → one error line, exit 2, nothing written."""

import json
import math
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from fieldforge.app.capture_process import check_registration, image_pairs
from fieldforge.app.capture_video import laplacian_variance
from fieldforge.app.cli import main
from fieldforge.data.alignment import pose_errors, umeyama
from fieldforge.data.camera_paths import look_at
from fieldforge.data.captures import CaptureWarning, load_capture
from fieldforge.data.captures.synthetic import LIGHT, _normals, trace
from fieldforge.data.errors import InputError
from fieldforge.data.formats import encode_png
from fieldforge.data.transforms import Similarity
from fieldforge.fields.rendering.rays import generate_rays

N_VIEWS, SIZE, FOV_X, BACKDROP = 16, 160, 50.0, 3.5
FOCAL = 0.5 * SIZE / math.tan(math.radians(FOV_X / 2))

# a smooth but non-repeating texture (random 3-D sinusoids): SIFT needs distinctive blobs, which the
# procedural scene's checkers and stripes, repeated at one scale, do not give
_gen = torch.Generator().manual_seed(0)
_K = torch.randn(48, 3, generator=_gen, dtype=torch.float64) * torch.logspace(0.5, 1.6, 48, dtype=torch.float64)[:, None]
_PHASE = torch.rand(48, generator=_gen, dtype=torch.float64) * 2 * math.pi
_MIX = torch.rand(48, 3, generator=_gen, dtype=torch.float64) - 0.5


def _texture(p: torch.Tensor) -> torch.Tensor:
    return (0.5 + 0.35 * torch.tanh(torch.sin(p @ _K.T + _PHASE) @ _MIX)).clamp(0, 1)


def render_textured(c2w: torch.Tensor) -> np.ndarray:
    """The procedural objects (textured) inside a textured backdrop sphere: ``(SIZE, SIZE, 3)`` in [0, 1]."""
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float64) + 0.5, torch.arange(SIZE, dtype=torch.float64) + 0.5, indexing="ij")
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
    n = pix.shape[0]
    intr = torch.tensor([[FOCAL, FOCAL, SIZE / 2, SIZE / 2]], dtype=torch.float64).expand(n, 4)
    o, d = generate_rays(c2w[None].expand(n, 4, 4), intr, pix, None)
    hit, t = trace(o, d)
    rgb = torch.zeros(n, 3, dtype=torch.float64)
    p = o[hit] + t[hit, None] * d[hit]
    light = torch.tensor(LIGHT, dtype=torch.float64)
    rgb[hit] = _texture(1.5 * p) * (0.6 + 0.4 * (_normals(p) @ (light / light.norm())).clamp(min=0))[:, None]
    miss = ~hit
    b = (o[miss] * d[miss]).sum(-1)
    c = (o[miss] ** 2).sum(-1) - BACKDROP**2
    rgb[miss] = 0.8 * _texture(o[miss] + (-b + (b * b - c).clamp(min=0).sqrt())[:, None] * d[miss])
    return rgb.reshape(SIZE, SIZE, 3).numpy()


def exact_poses() -> np.ndarray:
    """Cameras on a 150° arc around the objects, elevation 20° ± 10° (overlapping neighbours, as a walk-around)."""
    poses = []
    for i in range(N_VIEWS):
        az, el = math.radians(150) * i / (N_VIEWS - 1), math.radians(20 + 10 * math.sin(i))
        pos = torch.tensor([math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el)], dtype=torch.float64) * 2.0
        poses.append(look_at(pos).numpy())
    return np.stack(poses)


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> tuple[Path, np.ndarray, list[np.ndarray]]:
    root = tmp_path_factory.mktemp("capture")
    photos = root / "photos"
    photos.mkdir()
    poses = exact_poses()
    images = [render_textured(torch.from_numpy(c2w)) for c2w in poses]
    for i, img in enumerate(images):
        (photos / f"view_{i:02d}.png").write_bytes(encode_png(img))
    return photos, poses, images


@pytest.fixture(scope="module")
def processed(views):
    photos, _, _ = views
    out = photos.parent / "posed"
    assert main(["capture", "process", "--input", str(photos), "--output", str(out), "--progress", "False"]) == 0
    return out


def recovered(out: Path) -> tuple[list[str], np.ndarray, dict]:
    meta = json.loads((out / "transforms.json").read_text())
    names = [Path(f["file_path"]).name for f in meta["frames"]]
    return names, np.stack([np.asarray(f["transform_matrix"]) for f in meta["frames"]]), meta


def test_photos_give_the_exact_poses(views, processed):
    photos, poses, _ = views
    names, c2w, meta = recovered(processed)
    assert names == [f"view_{i:02d}.png" for i in range(N_VIEWS)]  # every view registered, in name order
    err = pose_errors(c2w, poses)
    assert err["rotation_deg"].max() < 0.5, err["rotation_deg"]
    assert err["translation_rel"].max() < 0.005, err["translation_rel"]
    # the focal length is weakly determined here: most features lie on the backdrop sphere around the orbit,
    # where focal length and depth trade off (seen over runs: 161–183 px for the true 171.6; threads change
    # the mapper's order); the poses above are what the capture is for
    assert meta["fl_x"] == pytest.approx(FOCAL, rel=0.12) and meta["cx"] == SIZE / 2 and meta["w"] == SIZE
    assert abs(meta["k1"]) < 0.2  # the renders have no distortion: SIMPLE_RADIAL finds little
    assert sorted(p.name for p in (processed / "images").iterdir()) == sorted(p.name for p in photos.iterdir())
    assert {"cameras.bin", "images.bin", "points3D.bin"} <= {p.name for p in (processed / "sparse" / "0").iterdir()}
    assert not list(processed.parent.glob(".posed.*"))  # the temporary build folder is gone


def test_points_ply_holds_the_model_points(processed):
    """points.ply, read by the nerfstudio parser and mapped back out of its normalized frame, is sparse/0's points."""
    import pycolmap

    rec = pycolmap.Reconstruction(str(processed / "sparse" / "0"))
    ids = sorted(rec.points3D)
    model = np.stack([rec.points3D[i].xyz for i in ids])
    colours = np.stack([rec.points3D[i].color for i in ids]) / 255.0
    capture = load_capture(processed)
    pts = capture.normalization.invert(capture.points.double()).numpy()
    assert len(model) > 300 and pts.shape == model.shape
    assert np.abs(pts - model).max() < 1e-5 * np.abs(model).max()  # float32 in the PLY
    assert np.abs(capture.point_colors.numpy() - colours).max() < 1e-6
    # the poses the parser normalized are the model's (COLMAP world-to-camera, OpenCV → OpenGL camera-to-world)
    image = rec.images[rec.reg_image_ids()[0]]
    k = [p.name for p in capture.image_paths].index(image.name)
    c2w = capture.normalization.invert_poses(capture.cameras.camera_to_world[k].double()).numpy()
    assert np.allclose(c2w[:3, 3], image.projection_center(), atol=1e-4)
    assert np.allclose(-c2w[:3, 2], image.viewing_direction(), atol=1e-5)


def test_train_nerf_reads_the_capture(views, processed, tmp_path, capsys):
    photos, _, _ = views
    capture = load_capture(processed)
    assert len(capture) == N_VIEWS and capture.cameras.has_distortion() and capture.points is not None
    # --process True on the photos folder uses the capture beside it (computed once) and trains on it
    shutil.copytree(processed, photos.parent / "photos-capture", dirs_exist_ok=True)
    argv = ["train", "nerf", "--data", str(photos), "--process", "True", "--downscale", "4", "--steps", "2", "--eval-views", "1",
            "--output-dir", str(tmp_path), "--name", "r", "--progress", "False", "--render.steps-per-ray", "32", "--render.grid-resolution", "16",
            "--render.target-samples", "4096", "--batch-size", "256", "--field.encoding.n-levels", "4", "--field.encoding.log2-table-size", "10"]
    assert main(argv) == 0
    assert "using the capture already computed" in capsys.readouterr().err
    info = json.loads((tmp_path / "r" / "capture.json").read_text())
    assert "photos-capture" in json.dumps(info)


def test_video_frames_sharpest_of_each_stretch(views, tmp_path):
    """Each view appears blurred, sharp, blurred: --max-frames N_VIEWS keeps the sharp one of each triple."""
    _, poses, images = views
    frames = []
    for img in images:
        u8 = (img * 255 + 0.5).astype(np.uint8)
        blurred = (sum(np.roll(np.roll(u8.astype(np.float32), dy, 0), dx, 1) for dy in (-2, 0, 2) for dx in (-2, 0, 2)) / 9).astype(np.uint8)
        frames += [blurred, u8, blurred]
    video = tmp_path / "walk.mp4"
    iio.imwrite(video, np.stack(frames), fps=10, codec="libx264", quality=9, macro_block_size=16)
    out = tmp_path / "walk-capture"
    assert main(["capture", "process", "--input", str(video), "--output", str(out), "--max-frames", str(N_VIEWS), "--progress", "False"]) == 0
    names, c2w, _ = recovered(out)
    assert names == [f"frame_{i:05d}.jpg" for i in range(N_VIEWS)]
    for i in (0, 7, 15):  # the kept frame is the sharp one (closer to the sharp view than to its blurred copy)
        kept = iio.imread(out / "images" / names[i]).astype(np.float32)
        assert np.abs(kept - frames[3 * i + 1]).mean() < np.abs(kept - frames[3 * i]).mean()  # (mp4 is lossy)
    err = pose_errors(c2w, poses)
    assert err["rotation_deg"].max() < 1.0 and err["translation_rel"].max() < 0.01, (err["rotation_deg"], err["translation_rel"])


# --- bad input: one line, exit 2, nothing written ----------------------------------------------------------


def _fails(argv: list[str], capsys, *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fieldforge: error:") and "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_too_few_images(views, tmp_path, capsys):
    photos, _, _ = views
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(photos.iterdir())[:2]:
        shutil.copy(p, few / p.name)
    _fails(["capture", "process", "--input", str(few), "--output", str(tmp_path / "out")], capsys, "too few images", "found 2")
    assert not (tmp_path / "out").exists()


def test_mixed_image_sizes(views, tmp_path, capsys):
    photos, _, images = views
    mixed = tmp_path / "mixed"
    shutil.copytree(photos, mixed)
    (mixed / "view_05.png").write_bytes(encode_png(images[5][:120]))
    _fails(["capture", "process", "--input", str(mixed), "--output", str(tmp_path / "out")], capsys, "mixed image sizes", "view_05.png is 160×120")
    assert not (tmp_path / "out").exists()


def test_undecodable_video(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(0).bytes(4000))
    _fails(["capture", "process", "--input", str(bad), "--output", str(tmp_path / "out")], capsys, "broken.mp4", "cannot decode the video")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_images_that_do_not_register_are_named(tmp_path, capsys):
    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):  # independent noise: nothing matches between them
        (noise / f"n{i}.png").write_bytes(encode_png(rng.random((96, 96, 3))))
    _fails(["capture", "process", "--input", str(noise), "--output", str(tmp_path / "out"), "--progress", "False"], capsys,
           "do not register", "n0.png", "n3.png")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_train_on_unposed_photos_says_what_to_run(views, capsys):
    photos, _, _ = views
    _fails(["train", "nerf", "--data", str(photos)], capsys, f"fieldforge capture process --input {photos} --output {photos}-capture",
           "--process True")


# --- the pieces ----------------------------------------------------------------------------------------------


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.linalg.det(q))
    truth = Similarity(rot, rng.normal(size=3), 2.7)
    src = rng.normal(size=(20, 3))
    fit = umeyama(src, truth.apply(src))
    assert np.allclose(fit.matrix(), truth.matrix(), atol=1e-10)
    poses = np.stack([look_at(torch.from_numpy(rng.normal(size=3) * 3)).numpy() for _ in range(6)])
    err = pose_errors(truth.apply_poses(poses), poses)  # the same cameras in another frame: zero error
    assert err["rotation_deg"].max() < 1e-5 and err["translation_rel"].max() < 1e-10


def test_sharpness_and_pairs():
    img = np.random.default_rng(0).random((64, 64, 3))
    blurred = (img + np.roll(img, 1, 0) + np.roll(img, 1, 1) + np.roll(img, (1, 1), (0, 1))) / 4
    assert laplacian_variance(img) > 4 * laplacian_variance(blurred)
    names = [str(i) for i in range(40)]
    assert len(image_pairs(names, "exhaustive")) == 40 * 39 // 2
    seq = image_pairs(names, "sequential")
    assert ("0", "10") in seq and ("0", "11") not in seq and ("0", "16") in seq and ("0", "32") in seq
    assert all(int(b) - int(a) <= 10 or (int(b) - int(a)) in (16, 32) for a, b in seq)


def test_registration_below_half_warns_with_the_names():
    names = [f"img{i}.jpg" for i in range(8)]
    assert check_registration(Path("photos"), names, set(names[:6])) == ["img6.jpg", "img7.jpg"]  # most registered: no warning
    with pytest.warns(CaptureWarning, match=r"only 3 of 8 images registered; not registered: img3.jpg, img4.jpg, img5.jpg, img6.jpg, img7.jpg"):
        check_registration(Path("photos"), names, set(names[:3]))
    with pytest.raises(InputError, match=r"do not register: 2 of 8 posed \(not registered: img2.jpg, .*img7.jpg\)"):
        check_registration(Path("photos"), names, set(names[:2]))
