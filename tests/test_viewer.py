"""The viewer without a browser: camera conventions, what each renderer draws (against the exporters), the
training share, the pinned viser version, ``info`` and ``runs``."""

import json
import re
import threading
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from fieldforge.app.cli import main
from fieldforge.app.loader import load_run
from fieldforge.app.viewer.cameras import View, c2w_to_viser, fov_of, intrinsics_for, ladder, moving_side, viser_to_c2w
from fieldforge.app.viewer.pacing import Pacer
from fieldforge.app.viewer.renderers import ImageRenderer, RadianceRenderer, SDFRenderer, make_renderer

from tests.test_captures_nerfstudio import write_capture
from tests.test_nerf_train import TINY as NERF_TINY
from tests.test_sdf_export import TINY as SDF_TINY
from tests.test_sdf_export import sphere_file  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def nerf_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viewer-nerf")
    cap = write_capture(root / "cap", n_views=12, width=24, height=20)
    argv = ["train", "nerf", "--data", str(cap), "--output-dir", str(root / "runs"), "--name", "r", "--steps", "16",
            "--eval-every", "0", "--checkpoint-every", "0", *NERF_TINY]
    assert main(argv) == 0
    return root / "runs" / "r"


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("viewer-image")
    yy, xx = np.mgrid[0:24, 0:36]
    img = np.stack([xx / 35, yy / 23, 0.5 + 0.5 * np.sin(xx / 3.0)], -1)
    iio.imwrite(root / "im.png", (img * 255).astype(np.uint8))
    argv = ["train", "image", "--data", str(root / "im.png"), "--method", "ff", "--steps", "20", "--eval-every", "0",
            "--output-dir", str(root / "runs"), "--name", "i", "--progress", "False"]
    assert main(argv) == 0
    return root / "runs" / "i"


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_viser_camera_is_our_camera_with_y_and_z_flipped():
    rng = np.random.default_rng(0)
    for _ in range(20):
        c2w = np.eye(4)
        c2w[:3, :3], c2w[:3, 3] = _random_rotation(rng), rng.normal(size=3)
        wxyz, pos = c2w_to_viser(c2w)
        back = viser_to_c2w(wxyz, pos).double().numpy()
        assert np.allclose(back, c2w, atol=1e-6)
        # viser / OpenCV: the camera's +z is where it looks; ours looks down -z; y flips likewise
        import viser.transforms as vtf

        r_cv = vtf.SO3(wxyz).as_matrix()
        assert np.allclose(r_cv[:, 2], -c2w[:3, 2], atol=1e-6) and np.allclose(r_cv[:, 1], -c2w[:3, 1], atol=1e-6)
        assert np.allclose(r_cv[:, 0], c2w[:3, 0], atol=1e-6)
    k = intrinsics_for(fov_of(torch.tensor([30.0, 30.0, 12.0, 10.0]), 20), 24, 20)
    assert torch.allclose(k, torch.tensor([30.0, 30.0, 12.0, 10.0]))


def test_progressive_resolutions():
    assert ladder(48, 400) == [48, 96, 192, 384, 400]
    assert ladder(600, 256) == [256]
    # the moving frame is sized to render in 1/25 s at the measured throughput
    side = moving_side(25 * 100 * 75, 4 / 3)
    assert 95 <= side <= 105
    assert View(torch.eye(4), 1.0, 2.0).size(100) == (100, 50) and View(torch.eye(4), 1.0, 0.5).size(100) == (50, 100)


def test_rendering_a_training_camera_through_the_viewer_reproduces_export_render(nerf_run, capsys):
    from fieldforge.data.captures import load_capture
    from fieldforge.data.captures.capture import Cameras
    from fieldforge.fields.metrics import psnr

    assert main(["export", "render", "--run", str(nerf_run), "--device", "cpu"]) == 0
    metrics = json.loads((nerf_run / "exports" / "render-test-step000016" / "metrics.json").read_text())
    loaded = load_run(nerf_run)
    renderer = make_renderer(loaded)
    assert isinstance(renderer, RadianceRenderer) and renderer.modes == ("rgb", "depth", "accumulation")
    cams = Cameras.from_dict(loaded.info["cameras"])
    capture = load_capture(loaded.config.data)
    for i in loaded.info["split"]["test"]:
        w, h = int(cams.width[i]), int(cams.height[i])
        k = cams.intrinsics[i]
        assert float(k[0]) == pytest.approx(float(k[1])) and (float(k[2]), float(k[3])) == (w / 2, h / 2)  # what the viewer assumes
        wxyz, position = c2w_to_viser(cams.camera_to_world[i])  # what a client at that camera reports
        view = View(viser_to_c2w(wxyz, position), fov_of(k, h), w / h)
        frame = renderer.render(view, w, h, "rgb")
        assert frame is not None and frame.shape == (h, w, 3) and frame.dtype == np.uint8
        ours = psnr(torch.from_numpy(frame).float() / 255, capture.composited(i))
        assert abs(ours - metrics["per_view_psnr"][str(i)]) < 0.1, (i, ours, metrics["per_view_psnr"][str(i)])
    # a cancelled render returns nothing (a moving camera interrupts a refinement)
    assert renderer.render(view, w, h, "rgb", cancelled=lambda: True) is None
    depth = renderer.render(view, w, h, "depth")
    assert depth is not None and depth.std() > 0


def test_sdf_view_sphere_traces_the_surface_with_normals(sphere_file, tmp_path):  # noqa: F811
    argv = ["train", "sdf", "--data", str(sphere_file), "--output-dir", str(tmp_path), "--name", "s", *SDF_TINY]
    assert main(argv) == 0
    loaded = load_run(tmp_path / "s")
    renderer = make_renderer(loaded)
    assert isinstance(renderer, SDFRenderer)
    # look at the sphere (normalized into the unit cube around (0.5, 0.5, 0.5)) from +z
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.5, 0.5, 2.2])
    view = View(c2w, np.radians(40), 1.0)
    normals = renderer.render(view, 40, 40, "normals").astype(np.float64) / 255 * 2 - 1
    centre = normals[20, 20]
    assert centre[2] > 0.8, centre  # the visible pole faces the camera
    assert normals[20, 30, 0] > 0.3 and normals[20, 10, 0] < -0.3  # right side faces +x, left side -x
    assert normals[10, 20, 1] > 0.3  # image up is +y
    corner = renderer.render(view, 40, 40, "shaded")[0, 0]
    assert (corner == 255).all()  # missed rays show the white background

    import socket

    from fieldforge.app.viewer.server import Viewer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the SDF slice z = 1/2: the sphere's centre is inside (blue), the slice's corners outside (red), beyond it white
    sl = renderer.render(view, 40, 40, "SDF slice").astype(np.int16)
    assert sl[20, 20, 2] > sl[20, 20, 0] + 30 and sl[5, 5, 0] > sl[5, 5, 2] + 30 and (sl[0, 0] == 255).all()
    viewer = Viewer(loaded, "127.0.0.1", port)
    try:
        assert viewer.input_points is not None and not viewer.input_points.visible  # the training surface, on demand
        out = viewer.mesh_preview("cpu")  # marching cubes on demand, shown in the scene (model frame)
        assert out.is_file() and viewer.preview is not None
        import open3d as o3d

        v = np.asarray(o3d.io.read_triangle_mesh(str(out)).vertices)
        assert np.abs(np.linalg.norm(v - 0.5, axis=1) - np.linalg.norm(v - 0.5, axis=1).mean()).max() < 0.05  # a sphere in the unit cube
    finally:
        viewer.stop()


def test_image_view_is_the_field_on_a_plane_at_the_views_resolution(image_run, capsys):
    assert main(["export", "image", "--run", str(image_run)]) == 0
    exported = iio.imread(image_run / "exports" / "image-x1.png").astype(np.int16)
    loaded = load_run(image_run)
    renderer = make_renderer(loaded)
    assert isinstance(renderer, ImageRenderer)
    h, w = exported.shape[:2]
    fov = np.radians(50)
    c2w = torch.eye(4)
    c2w[2, 3] = 0.5 / np.tan(fov / 2)  # the plane (height 1) exactly fills the view
    frame = renderer.render(View(c2w, fov, w / h), w, h, "rgb").astype(np.int16)
    assert np.abs(frame - exported[..., :3]).max() <= 2
    # zoomed in 4x on the centre: the field is evaluated at 4x the density (no upsampled pixels)
    c2w[2, 3] /= 4
    zoom = renderer.render(View(c2w, fov, w / h), w, h, "rgb").astype(np.int16)
    assert np.abs(zoom[::4, ::4] - zoom[1::4, 1::4]).sum() > 0


def test_training_share_is_obeyed():
    lock = threading.RLock()
    pacer = Pacer(lock, share=0.75)
    stop = threading.Event()
    busy = {"train": 0.0, "render": 0.0}

    def renderer():
        while not stop.is_set():
            with pacer.slot():
                t = time.perf_counter()
                time.sleep(0.004)
                busy["render"] += time.perf_counter() - t

    thread = threading.Thread(target=renderer, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.5:
        ts = time.perf_counter()
        with lock:
            time.sleep(0.01)  # one optimizer step
        busy["train"] += time.perf_counter() - ts
        pacer.between_steps(time.perf_counter() - ts)
    stop.set()
    pacer.finish()
    thread.join(2)
    total = time.perf_counter() - t0
    assert 0.6 < busy["train"] / total < 0.9, busy
    assert busy["render"] / total > 0.1, busy  # and the viewer did get its share


def test_viser_is_the_pinned_version_and_its_client_matches():
    import tomllib
    import viser
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    deps = project["optional-dependencies"]["viewer"]
    spec = next(d for d in deps if re.match(r"viser\b", d))
    assert spec.startswith("viser>=") and "<" in spec, "viser stays pinned to a tested range"
    assert viser.__version__ in SpecifierSet(spec[len("viser"):])
    # the bundled web client announces this version (websocket subprotocol viser-v<version>); the server refuses others
    version_ts = Path(viser.__file__).parent / "client" / "src" / "VersionInfo.ts"
    assert f'VISER_VERSION = "{viser.__version__}"' in version_ts.read_text()


def test_info_is_a_summary_and_runs_lists_them(nerf_run, image_run, capsys):
    assert main(["info", str(nerf_run)]) == 0
    out = capsys.readouterr().out
    assert "task: nerf, method ngp" in out and "encoding: HashGridEncodingConfig(" in out and "_type:" not in out
    assert "16 of 16 steps" in out and "checkpoints: step 16" in out
    assert main(["info", str(nerf_run), "--yaml"]) == 0
    assert capsys.readouterr().out.startswith("_type: fieldforge.app.tasks.nerf:NerfTrainConfig")
    for run in (nerf_run, image_run):
        assert main(["runs", str(run.parent.parent)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["run", "task", "method", "steps", "last", "eval", "size", "date"]
    assert main(["runs", str(nerf_run.parent.parent)]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[:4] == ["runs/r", "nerf", "ngp", "16/16"] and row[4] == "PSNR"


def test_train_with_viewer_serves_while_training_and_closes(tmp_path, capsys):
    import socket

    from fieldforge.app.cli_train import pop_viewer
    from fieldforge.app.viewer.live import LiveViewer

    assert pop_viewer(["--steps", "3"]) == (["--steps", "3"], None)
    argv, cb = pop_viewer(["--viewer", "--viewer-port", "9999", "--steps", "3", "--viewer-share", "0.5"])
    assert argv == ["--steps", "3"] and isinstance(cb, LiveViewer) and (cb.host, cb.port, cb.share) == ("127.0.0.1", 9999, 0.5)
    assert pop_viewer(["--viewer", "False", "--steps", "3"])[1] is None
    assert main(["train", "image", "--data", "x.png", "--viewer-port", "1"]) == 2  # needs --viewer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yy, xx = np.mgrid[0:16, 0:16]
    iio.imwrite(tmp_path / "im.png", np.stack([xx * 16, yy * 16, xx * 0 + 128], -1).astype(np.uint8))
    argv = ["train", "image", "--data", str(tmp_path / "im.png"), "--method", "ff", "--steps", "10", "--output-dir", str(tmp_path),
            "--name", "live", "--progress", "False", "--viewer", "--viewer-port", str(port)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"viewer: http://localhost:{port}" in err and f"ssh -L {port}:localhost:{port}" in err
    with socket.socket() as s:  # the server was stopped at the end of training (stdin is not a terminal)
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_tensorboard_curves_when_tensorboard_is_installed(tmp_path, monkeypatch):
    """``TensorBoardLog`` with a stand-in ``SummaryWriter`` (tensorboard is an optional install)."""
    import sys
    import types

    from fieldforge.app import callbacks
    from fieldforge.app.cli_train import parse_train
    from fieldforge.app.tasks import get_task
    from fieldforge.app.train import train

    written: list[tuple[str, float, int]] = []

    class Writer:
        def __init__(self, log_dir: str) -> None:
            written.append(("dir", 0.0, 0)) if Path(log_dir).name == "tensorboard" else None

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self): ...

        def close(self): ...

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    monkeypatch.setattr(callbacks.TensorBoardLog, "available", staticmethod(lambda: True))
    assert any(isinstance(c, callbacks.TensorBoardLog) for c in callbacks.standard_callbacks(parse_train(
        get_task("image"), ["--data", "x.png"], "t").trainer))
    yy, xx = np.mgrid[0:8, 0:8]
    iio.imwrite(tmp_path / "im.png", np.stack([xx * 30, yy * 30, xx * 0], -1).astype(np.uint8))
    config = parse_train(get_task("image"), ["--data", str(tmp_path / "im.png"), "--method", "ff", "--steps", "4", "--log-every", "2",
                                             "--output-dir", str(tmp_path), "--name", "tb", "--progress", "False"], "t")
    train(config)
    tags = {t for t, _, _ in written}
    assert ("dir", 0.0, 0) in written and {"train/loss", "train/lr", "train/steps_per_s", "eval/psnr"} <= tags
    assert sorted({s for t, _, s in written if t == "train/loss"}) == [2, 4]


def test_viewer_panels_checkpoints_and_exports_without_a_browser(nerf_run, image_run, capsys):
    import socket

    from fieldforge.app.viewer.server import Viewer, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    viewer = Viewer(load_run(nerf_run), "0.0.0.0", port(), max_resolution=64)
    try:
        viewer.announce()
        err = capsys.readouterr().err
        assert "warning: the viewer listens on 0.0.0.0" in err and f"viewer: http://localhost:{viewer.port}" in err
        assert len(viewer.frusta) == 10  # the training cameras
        assert viewer.checkpoint.options == ("16",)
        viewer._switch_checkpoint(16)
        assert viewer.loaded.step == 16 and isinstance(viewer.renderer, RadianceRenderer)
        c2w = torch.eye(4)
        c2w[2, 3] = 1.5
        out = viewer.export("view", View(c2w, 0.8, 1.5))
        assert out.name == "viewer-step000016-000.png" and iio.imread(out).shape == (43, 64, 3)
        viewer.keyframes = [View(c2w, 0.8, 1.5), View(c2w.clone(), 0.8, 1.5)]
        viewer.keyframes[1].c2w[0, 3] = 0.4
        video = viewer.keyframe_video(frames_per_segment=4)
        frames = iio.imread(video)
        assert video.name == "viewer-keyframes-step000016-000.mp4" and frames.shape == (5, 32, 64, 3)
        viewer._export_now(None, "mesh")  # what the button runs (in a thread); this undertrained field has no surface yet
        assert viewer.export_status.content.startswith("export failed: InputError") and "no surface" in viewer.export_status.content
    finally:
        viewer.stop()
    viewer = Viewer(load_run(image_run), "127.0.0.1", port())
    try:
        assert viewer.renderer.modes[0] == "rgb" and not viewer.frusta
        out = viewer.export("image", None)
        assert out == image_run / "exports" / "image-x1.png" and out.is_file()
    finally:
        viewer.stop()


def test_view_command_serves_the_page_and_stops_on_ctrl_c(image_run):
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # as a terminal would run it: Ctrl-C raises KeyboardInterrupt (a background job could have inherited SIGINT ignored)
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from fieldforge.app.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "view", str(image_run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        page = None
        deadline = time.monotonic() + 180  # generous: starting Python + torch + viser on a loaded 2-core CI box
        while time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        assert page is not None and b"<html" in page.lower()
        time.sleep(1.0)  # a person presses Ctrl-C after reading the URL
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
        out = proc.stdout.read().decode()
        assert rc == 0, out
        assert f"viewer: http://localhost:{port}" in out and f"ssh -L {port}:localhost:{port}" in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sdf_view_shows_pins_levels(sphere_file, tmp_path):  # noqa: F811
    """3-D runs get the PINs levels their field provides, truncated for that frame only."""
    argv = ["train", "sdf", "--data", str(sphere_file), "--output-dir", str(tmp_path), "--name", "s", "--method", "pins",
            "--steps", "30", "--field.network.width", "32", "--field.encoding.n-features", "32", "--batch-size", "1024", "--sampling.pool-size", "5000", "--eval-resolution", "16",
            "--eval-points", "2000", "--progress", "False"]
    assert main(argv) == 0
    renderer = make_renderer(load_run(tmp_path / "s"))
    view = View(_look_from_z(2.2), np.radians(40), 1.0)
    full = renderer.render(view, 32, 32, "shaded")
    levels = [m for m in renderer.modes if m.startswith("level ")]
    assert len(levels) >= 2, renderer.modes
    coarse = renderer.render(view, 32, 32, levels[0])
    assert np.abs(coarse.astype(int) - full.astype(int)).sum() > 0  # the truncation took effect
    assert (renderer.render(view, 32, 32, "shaded") == full).all()  # and was undone after the frame


def _look_from_z(z: float) -> torch.Tensor:
    c2w = torch.eye(4)
    c2w[:3, 3] = torch.tensor([0.5, 0.5, z])
    return c2w


def test_occupancy_runs_are_marched_and_show_the_sape_map(sphere_file, tmp_path):  # noqa: F811
    """An occupancy field (SAPE's SDF preset) is drawn by marching to the first crossing + bisection, and its
    SAPE map colours each hit pixel by the progress of the cell the ray hits. The field's surface is replaced
    by an analytic sphere so the expected depth and colour are exact."""
    from fieldforge.app.viewer.renderers import progress_map

    argv = ["train", "sdf", "--data", str(sphere_file), "--output-dir", str(tmp_path), "--name", "s", "--method", "sape",
            "--steps", "2", "--field.network.width", "32", "--field.encoding.n-features", "32", "--field.encoding.grid-resolution", "16",
            "--sampling.pool-size", "2000", "--eval-resolution", "16", "--eval-points", "1000", "--progress", "False"]
    assert main(argv) == 0
    renderer = make_renderer(load_run(tmp_path / "s"))
    assert isinstance(renderer, SDFRenderer) and renderer.occupancy
    assert {"SAPE map", "occupancy slice"} <= set(renderer.modes)
    radius = 0.3
    renderer.signed = lambda p: (p - 0.5).norm(dim=-1) - radius  # type: ignore[method-assign]
    enc = renderer.model.encoding
    grid = torch.rand(enc.progress_map().shape, generator=torch.Generator().manual_seed(0))
    enc.progress_map = lambda: grid  # type: ignore[method-assign]
    view = View(_look_from_z(2.0), np.radians(40), 1.0)
    depth_mode = renderer.render(view, 24, 24, "normals")
    hit = (depth_mode != 255).any(-1)
    # the analytic silhouette: rays within asin(r / 1.5) of the axis hit
    from fieldforge.app.viewer.cameras import intrinsics_for
    from fieldforge.app.viewer.renderers import camera_rays

    o, d = camera_rays(view.c2w, intrinsics_for(view.fov_y, 24, 24), 24, 24, torch.device("cpu"))
    angle = torch.acos((-d[:, 2]).clamp(-1, 1)).reshape(24, 24).numpy()
    expected_hit = angle < np.arcsin(radius / 1.5)
    assert (hit != expected_hit).sum() <= 4  # boundary pixels only
    sape = renderer.render(view, 24, 24, "SAPE map").astype(np.float64) / 255
    b = -(o * 0 + (o - 0.5) * d).sum(-1)  # ray-sphere intersection distance
    disc = b**2 - ((o - 0.5).norm(dim=-1) ** 2 - radius**2)
    t = (b - disc.clamp(min=0).sqrt()).reshape(24, 24)
    p = (o + t.reshape(-1, 1) * d).reshape(24, 24, 3)
    res = grid.shape[0]
    ijk = (p * res).long().clamp(0, res - 1)
    m = grid[ijk[..., 0], ijk[..., 1], ijk[..., 2]].numpy()
    inner = hit & expected_hit & (angle < 0.9 * np.arcsin(radius / 1.5))
    assert np.abs(sape[inner][:, 0] - m[inner]).max() < 0.02  # red = the hit cell's progress


def test_kilonerf_image_run_has_a_tile_id_mode(tmp_path):
    """A KiloNeRF field shows its tiles: the plane filled by the image shows one colour per tile (16 × 16)."""
    yy, xx = np.mgrid[0:32, 0:32]
    iio.imwrite(tmp_path / "im.png", (np.stack([xx / 31, yy / 31, 0 * xx + 0.5], -1) * 255).astype(np.uint8))
    argv = ["train", "image", "--data", str(tmp_path / "im.png"), "--method", "kilonerf", "--steps", "2", "--eval-every", "0",
            "--output-dir", str(tmp_path / "runs"), "--name", "k", "--progress", "False"]
    assert main(argv) == 0
    renderer = make_renderer(load_run(tmp_path / "runs" / "k"))
    assert "tile id" in renderer.modes
    fov = np.radians(50)
    c2w = torch.eye(4)
    c2w[2, 3] = 0.5 / np.tan(fov / 2) * 0.98  # the image plane fills the view
    frame = renderer.render(View(c2w, fov, 1.0), 96, 96, "tile id")
    colours = {tuple(c) for c in frame.reshape(-1, 3)}
    assert 200 <= len(colours) <= 256, len(colours)  # 16 × 16 tiles, each a block of about 6 × 6 pixels
    assert (frame[0, 0] == frame[2, 2]).all() and not (frame[0, 0] == frame[0, 95]).all()
