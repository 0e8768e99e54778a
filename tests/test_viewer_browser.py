"""The viewer in a real browser: headless Chromium (Debian's ``chromium``) driven by playwright.

Starts ``Viewer`` on a tiny NeRF run on 127.0.0.1, opens the page, waits for the canvas and a rendered frame,
drags the camera and waits for a new frame, clicks an export button and checks the file. A screenshot is kept
under ``tests/artifacts/`` (ignored by git). Skips, saying why, only when Chromium or playwright is missing.
"""

import shutil
import socket
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tests.test_viewer import nerf_run  # noqa: F401  (fixture: a tiny trained NeRF run)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _shot(page) -> np.ndarray:
    return iio.imread(page.screenshot(), extension=".png")[..., :3].astype(np.float64)


REGION = (slice(170, 520), slice(0, 700))
"""Part of the 1200×600 page that only the 3-D canvas covers (not the panel, the notification or the axes)."""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"])
        yield b
        b.close()


def test_viewer_in_headless_chromium(browser, nerf_run):  # noqa: F811
    from fieldforge.app.loader import load_run
    from fieldforge.app.viewer.server import Viewer

    viewer = Viewer(load_run(nerf_run), "127.0.0.1", _free_port(), max_resolution=160)
    try:
        page = browser.new_page(viewport={"width": 1200, "height": 600})
        page.goto(viewer.url)
        page.wait_for_selector("canvas", timeout=60_000)
        # the server refuses a client whose viser version differs: a connected client means they match
        _wait(lambda: len(viewer.server.get_clients()) == 1, 30, "the page's websocket client")
        _wait(lambda: viewer.frames_sent >= 1, 60, "a first rendered frame")
        page.get_by_text("Show cameras").click()  # the real UI: hide the frusta so the canvas is the frame alone
        _wait(lambda: not viewer.show_cameras.value, 10, "the 'Show cameras' checkbox to reach the server")
        state = next(iter(viewer.clients.values()))
        _wait(lambda: state.pending is None, 60, "the refinement to finish")
        time.sleep(1.0)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer-nerf.png"))
        before = _shot(page)
        canvas = before[REGION]
        assert canvas.std() > 3 and (np.abs(canvas - 255).max(axis=-1) > 30).mean() > 0.02, "the canvas shows no rendered frame"
        # the canvas shows the frame the server sent (stretched to the canvas)
        frame = state.last_image.astype(np.float64)
        h, w = before.shape[:2]
        ys = (np.arange(h) * frame.shape[0] / h).astype(int)
        xs = (np.arange(w) * frame.shape[1] / w).astype(int)
        sent = frame[ys][:, xs][REGION]
        assert np.abs(sent - canvas).mean() < 12, np.abs(sent - canvas).mean()

        # move the camera with the mouse (orbit drag): a new frame arrives and the picture changes
        sent_before = viewer.frames_sent
        page.mouse.move(300, 350)
        page.mouse.down()
        page.mouse.move(480, 330, steps=12)
        page.mouse.up()
        _wait(lambda: viewer.frames_sent > sent_before, 30, "a frame after moving the camera")
        _wait(lambda: state.pending is None, 60, "the refinement after the move")
        time.sleep(1.0)
        after = _shot(page)
        assert np.abs(after[REGION] - canvas).mean() > 2, "the view did not change after the camera moved"
        page.screenshot(path=str(ARTIFACTS / "viewer-nerf-moved.png"))

        # export the current view through the panel's button
        page.get_by_role("button", name="Image at this camera").click()
        _wait(lambda: getattr(viewer, "last_export", None) is not None, 60, "the export")
        out = Path(viewer.last_export)
        assert out.is_file() and out.parent == nerf_run / "exports" and out.suffix == ".png"
        img = iio.imread(out)
        assert max(img.shape[:2]) == 160 and img.std() > 0
        page.close()
    finally:
        viewer.stop()


def test_live_training_view_in_headless_chromium(browser, tmp_path):
    import threading

    from fieldforge.app.cli_train import parse_train
    from fieldforge.app.tasks import get_task
    from fieldforge.app.train import train
    from fieldforge.app.viewer.live import LiveViewer

    yy, xx = np.mgrid[0:32, 0:32]
    iio.imwrite(tmp_path / "im.png", np.stack([xx * 8, yy * 8, 128 + 100 * np.sin(xx / 2.0)], -1).astype(np.uint8))
    config = parse_train(get_task("image"), ["--data", str(tmp_path / "im.png"), "--method", "ff", "--steps", "600", "--eval-every", "100",
                                             "--output-dir", str(tmp_path), "--name", "live", "--progress", "False"], "test")
    live = LiveViewer("127.0.0.1", _free_port(), share=0.5)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(metrics=train(config, callbacks=[live])[1]), daemon=True)
    thread.start()
    _wait(lambda: live.viewer is not None, 60, "the live viewer to start")
    viewer = live.viewer
    page = browser.new_page(viewport={"width": 1200, "height": 600})
    page.goto(viewer.url)
    page.wait_for_selector("canvas", timeout=60_000)
    _wait(lambda: viewer.frames_sent >= 1, 60, "a first frame while training")
    first_step = viewer.stats.get("step", 0)
    n = viewer.frames_sent
    _wait(lambda: viewer.frames_sent > n and viewer.stats.get("step", 0) > first_step or not thread.is_alive(), 60,
          "a redraw as the weights change")
    assert viewer.stats.get("step", 0) > 0 and "loss" in viewer.stats and viewer.stats_md.content.count("steps/s") == 1
    _wait(lambda: viewer.curve.visible or not thread.is_alive(), 60, "an evaluation on the PSNR plot")
    assert viewer.curve.visible and len(viewer.curve.data[0]) >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-live-image.png"))
    page.close()
    thread.join(120)
    assert not thread.is_alive() and result["metrics"]["steps"] == 600
