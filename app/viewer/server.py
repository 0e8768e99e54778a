"""The viser server behind ``fieldforge view`` and ``train ... --viewer``.

Each browser client gets a thread that renders the field from that client's camera and sends the frame as the
scene's background image. Progressive: while the camera moves, one frame at a resolution the measured
throughput renders in ≈ 1/25 s; once it is still, frames of doubling resolution up to the max-resolution
control, each interrupted (between bands) by the next camera move. The scene shows the capture's cameras as
frusta (click one to look through it) and the scene box; panels show the training statistics, the render mode,
the checkpoint, the training share and the export buttons.
"""

import contextlib
import ipaddress
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fieldforge.app.loader import LoadedRun, load_run
from fieldforge.app.viewer.cameras import View, c2w_to_viser, fov_of, ladder, moving_side, viser_to_c2w
from fieldforge.app.viewer.extra import require_viewer
from fieldforge.app.viewer.pacing import Pacer
from fieldforge.app.viewer.renderers import FieldRenderer, ImageRenderer, RadianceRenderer, SDFRenderer, make_renderer
from fieldforge.fields.kernels.backends import backends_in_use

STILL_S = 0.15
"""A camera unchanged this long counts as still: refinement starts."""
LIVE_REFRESH_S = 1.0
"""While training, a still view is redrawn this often (the model changes under it)."""


def kernels_line() -> str:
    """The kernel backend each module of the model runs on (as resolved in this process)."""
    chosen = backends_in_use()
    if not chosen:
        return "kernels: torch (reference)"
    return "kernels: " + ", ".join(f"{what} → {impl}" for what, impl in sorted(chosen.items()))


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ClientState:
    client: Any
    wake: threading.Event = field(default_factory=threading.Event)
    alive: bool = True
    moved_at: float = 0.0
    pending: str | None = "move"
    """``move``: render a fast frame now; ``refine``: climb the resolution ladder once still; ``None``: done."""
    last_frame: float = 0.0
    last_model: int = -1
    frames: int = 0
    last_side: int = 0
    last_image: np.ndarray | None = None
    thread: threading.Thread | None = None


class Viewer:
    def __init__(self, loaded: LoadedRun, host: str = "127.0.0.1", port: int = 8080, pacer: Pacer | None = None,
                 live: bool = False, max_resolution: int | None = None) -> None:
        require_viewer("the viewer")
        import viser

        self.loaded = loaded
        self.renderer: FieldRenderer = make_renderer(loaded)
        self.pacer = pacer
        self.live = live
        self.host = host
        self.model_lock = threading.RLock()
        self.model_version = 0
        self.frames_sent = 0
        self.pixels_per_s = 2e5
        self.stopped = False
        self.clients: dict[int, ClientState] = {}
        self.evaluations: list[tuple[int, dict]] = []
        self.stats: dict[str, Any] = {}
        cuda = self.renderer.device.type == "cuda"
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        try:
            self.port = self.server.get_port()
            self._build_gui(max_resolution or (1024 if cuda else 384))
            self._build_scene()
            self.server.on_client_connect(self._connect)
            self.server.on_client_disconnect(self._disconnect)
        except BaseException:  # Ctrl-C or a failure while building: never leave the server's thread running
            self.server.stop()
            raise

    # -- announcements ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        shown = "localhost" if is_loopback(self.host) or self.host in ("0.0.0.0", "::") else self.host
        return f"http://{shown}:{self.port}"

    def announce(self) -> None:
        from fieldforge.app.callbacks import console

        if not is_loopback(self.host):
            console.print(f"[yellow]warning: the viewer listens on {self.host}, not only this machine: anyone who can reach "
                          f"port {self.port} can see (and export) this run[/yellow]", soft_wrap=True)
        console.print(f"viewer: {self.url}", soft_wrap=True)
        console.print(f"  from another machine: ssh -L {self.port}:localhost:{self.port} USER@THIS_HOST, then open "
                      f"http://localhost:{self.port}", soft_wrap=True)

    # -- panels --------------------------------------------------------------------------------------
    def _build_gui(self, max_resolution: int) -> None:
        gui = self.server.gui
        with contextlib.suppress(Exception):  # a run without a readable metrics log still views
            self.evaluations = [(int(r["step"]), r) for r in self.loaded.run.read_metrics() if r.get("kind") == "eval"]
        self.stats_md = gui.add_markdown(self._stats_text())
        key, xs, ys = self._curve()
        self.curve = gui.add_uplot((xs, ys), ({"label": "step"}, {"label": key or "eval", "stroke": "#2f6fd6", "width": 2}),
                                   title="evaluation", aspect=2.0, visible=key is not None,
                                   scales={"x": {"time": False}, "y": {"auto": True}})
        with gui.add_folder("Render"):
            self.mode = gui.add_dropdown("Mode", self.renderer.modes, initial_value=self.renderer.modes[0])
            self.max_res = gui.add_slider("Max resolution", 64, 2048, 32, int(max_resolution))
            if isinstance(self.renderer, RadianceRenderer):
                self.show_cameras = gui.add_checkbox("Show cameras", True)
                self.show_cameras.on_update(lambda _: self._show_cameras(self.show_cameras.value))
            if isinstance(self.renderer, SDFRenderer) or "sparse_points" in self.loaded.info:
                label = "Show sparse points" if isinstance(self.renderer, RadianceRenderer) else "Show input points"
                self.show_points = gui.add_checkbox(label, False)
                self.show_points.on_update(lambda _: self._show_points(self.show_points.value))
        self.frusta: list[Any] = []
        self.keyframes: list[View] = []
        self.preview: Any = None
        self.input_points: Any = None
        self.mode.on_update(lambda _: self.redraw())
        self.max_res.on_update(lambda _: self.redraw())
        if self.pacer is not None:
            with gui.add_folder("Training"):
                self.share = gui.add_slider("Training share", 0.1, 1.0, 0.05, float(self.pacer.share),
                                            hint="Fraction of wall time the training loop keeps while a client renders")
                self.pause = gui.add_checkbox("Pause training", False)
            self.share.on_update(lambda _: self.pacer.set_share(self.share.value))
            self.pause.on_update(lambda _: self._set_paused(self.pause.value))
        else:
            steps = [str(s) for s, _ in self.loaded.run.checkpoints()] or [str(self.loaded.step)]
            self.checkpoint = gui.add_dropdown("Checkpoint", steps, initial_value=str(self.loaded.step))
            self.checkpoint.on_update(lambda _: self._switch_checkpoint(int(self.checkpoint.value)))
        with gui.add_folder("Export"):
            self.export_status = gui.add_markdown("")
            self.export_view = gui.add_button("Image at this camera")
            self.export_view.on_click(lambda event: self._export(event.client, "view"))
            if isinstance(self.renderer, ImageRenderer):
                b = gui.add_button("Image (export image)")
                b.on_click(lambda event: self._export(event.client, "image"))
            if isinstance(self.renderer, (SDFRenderer, RadianceRenderer)):
                b = gui.add_button("Mesh (export mesh)")
                b.on_click(lambda event: self._export(event.client, "mesh"))
            if isinstance(self.renderer, SDFRenderer):
                b = gui.add_button("Mesh preview (in the scene)")
                b.on_click(lambda event: self._export(event.client, "preview"))
                self.show_preview = gui.add_checkbox("Show mesh preview", True)
                self.show_preview.on_update(lambda _: self._show_preview(self.show_preview.value))
            self.keyframes_md = gui.add_markdown("keyframes: 0")
            add = gui.add_button("Add keyframe (this camera)")
            add.on_click(lambda event: self._add_keyframe(event.client))
            clear = gui.add_button("Clear keyframes")
            clear.on_click(lambda _: self._clear_keyframes())
            b = gui.add_button("Video along the keyframes")
            b.on_click(lambda event: self._export(event.client, "keyframes"))
            if isinstance(self.renderer, RadianceRenderer):
                b = gui.add_button("Orbit video (export video)")
                b.on_click(lambda event: self._export(event.client, "video"))

    def _stats_text(self) -> str:
        s = self.stats
        lines = [f"**{self.loaded.kind}** run `{self.loaded.run.path.name}`, method {getattr(self.loaded.config, 'method', '?')}"]
        if s:
            line = f"step {s.get('step', 0)} / {s.get('total', '?')}"
            if "loss" in s:
                line += f" · loss {s['loss']:.4g} · {s.get('rate', 0):.1f} steps/s"
            if s.get("finished"):
                line += " · **finished**"
            lines.append(line)
        else:
            lines.append(f"checkpoint step {self.loaded.step}")
        lines.append(kernels_line())
        if self.evaluations:
            step, m = self.evaluations[-1]
            shown = {k: v for k, v in m.items() if k in ("psnr", "ssim", "chamfer", "chamfer_l1", "iou") and isinstance(v, (int, float))}
            lines.append(f"last evaluation (step {step}): " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
        return "  \n".join(lines)

    def update_stats(self, **stats: Any) -> None:
        self.stats.update(stats)
        if "step" in stats:
            self.loaded.step = int(stats["step"])  # names the viewer's exports while training
        self.stats_md.content = self._stats_text()

    def _curve(self) -> tuple[str | None, np.ndarray, np.ndarray]:
        """The evaluation metric over steps: PSNR where the task has it, else its Chamfer distance."""
        for key in ("psnr", "chamfer_l1", "chamfer"):
            points = [(s, float(m[key])) for s, m in self.evaluations if isinstance(m.get(key), (int, float))]
            if points:
                return key, np.array([p[0] for p in points], dtype=np.float64), np.array([p[1] for p in points], dtype=np.float64)
        return None, np.zeros(0), np.zeros(0)

    def add_evaluation(self, step: int, metrics: dict) -> None:
        self.evaluations.append((step, dict(metrics)))
        self.stats_md.content = self._stats_text()
        key, xs, ys = self._curve()
        if key is not None:
            self.curve.series = ({"label": "step"}, {"label": key, "stroke": "#2f6fd6", "width": 2})
            self.curve.data = (xs, ys)
            self.curve.visible = True

    def _set_paused(self, paused: bool) -> None:
        assert self.pacer is not None
        with self.pacer.cond:
            self.pacer.paused = paused
            self.pacer.cond.notify_all()

    # -- scene ---------------------------------------------------------------------------------------
    def _build_scene(self) -> None:
        scene = self.server.scene
        info, r = self.loaded.info, self.renderer
        if isinstance(r, RadianceRenderer):
            from fieldforge.data.captures.capture import Cameras

            box = np.asarray(info["scene_box"], dtype=np.float64)
            _add_box_edges(scene, "/scene_box", box[0], box[1])
            cams = Cameras.from_dict(info["cameras"])
            diag = float(np.linalg.norm(box[1] - box[0]))
            thumbs = _thumbnails(info, len(cams))
            for i in info["split"].get("train") or range(len(cams)):
                w, h = int(cams.width[i]), int(cams.height[i])
                wxyz, pos = c2w_to_viser(cams.camera_to_world[i])
                frustum = scene.add_camera_frustum(f"/cameras/{i:04d}", fov_of(cams.intrinsics[i], h), w / h, scale=0.04 * diag,
                                                   thickness=0.002 * diag, color=(60, 110, 200), wxyz=wxyz, position=pos,
                                                   image=thumbs.get(i))
                self.frusta.append(frustum)
                self._on_frustum_click(frustum, cams.camera_to_world[i], fov_of(cams.intrinsics[i], h))
            sparse = info.get("sparse_points")
            if sparse:
                pts = np.asarray(sparse["xyz"], dtype=np.float32)
                colours = np.asarray(sparse["rgb"], dtype=np.float32) if "rgb" in sparse else np.full_like(pts, 0.3)
                self.input_points = scene.add_point_cloud("/sparse_points", pts, (colours * 255).astype(np.uint8),
                                                          point_size=0.004 * diag, visible=False)
        elif isinstance(r, SDFRenderer):
            _add_box_edges(scene, "/unit_cube", np.zeros(3), np.ones(3))
            with contextlib.suppress(Exception):  # the training input moved or changed: no points, the view still works
                cloud = self.loaded.task.reference_surface(self.loaded.config, info)
                if cloud is not None:
                    pts = cloud.points.numpy()
                    pts = pts[np.random.default_rng(0).permutation(len(pts))[:20000]]
                    self.input_points = scene.add_point_cloud("/input_points", pts.astype(np.float32), (80, 80, 80), point_size=0.004,
                                                              visible=False)

    def _add_keyframe(self, client: Any) -> None:
        view = self._view(client) if client is not None else None
        if view is not None:
            self.keyframes.append(view)
            self.keyframes_md.content = f"keyframes: {len(self.keyframes)}"

    def _clear_keyframes(self) -> None:
        self.keyframes.clear()
        self.keyframes_md.content = "keyframes: 0"

    def _show_points(self, visible: bool) -> None:
        if self.input_points is not None:
            self.input_points.visible = visible

    def _show_preview(self, visible: bool) -> None:
        if self.preview is not None:
            self.preview.visible = visible

    def _on_frustum_click(self, frustum: Any, c2w: torch.Tensor, fov: float) -> None:
        frustum.on_click(lambda event: self._look_through(event.client, c2w, fov))

    def _show_cameras(self, visible: bool) -> None:
        for frustum in self.frusta:
            frustum.visible = visible

    def _look_through(self, client: Any, c2w: torch.Tensor, fov: float) -> None:
        if client is None:
            return
        wxyz, pos = c2w_to_viser(c2w)
        with client.atomic():
            client.camera.fov = fov
            client.camera.position = pos
            client.camera.wxyz = wxyz

    # -- clients -------------------------------------------------------------------------------------
    def _connect(self, client: Any) -> None:
        from fieldforge.app.callbacks import console

        state = ClientState(client)
        self.clients[client.client_id] = state
        home = self.renderer.home
        try:
            with client.atomic():
                client.camera.up_direction = home.up
                client.camera.position = home.position
                client.camera.look_at = home.look_at
        except AssertionError:  # no camera state from this client yet; the home pose is only a start
            console.print("viewer: the client's camera was not ready for the home pose", style="dim")
        client.camera.on_update(lambda _: self._moved(state))
        state.thread = threading.Thread(target=self._client_loop, args=(state,), name=f"viewer-client-{client.client_id}", daemon=True)
        state.thread.start()

    def _disconnect(self, client: Any) -> None:
        state = self.clients.pop(client.client_id, None)
        if state is not None:
            state.alive = False
            state.wake.set()

    def _moved(self, state: ClientState) -> None:
        state.moved_at = time.perf_counter()
        state.pending = "move"
        state.wake.set()

    def redraw(self) -> None:
        for state in list(self.clients.values()):
            self._moved(state)

    def model_changed(self) -> None:
        """Training changed the weights: still views are redrawn every ``LIVE_REFRESH_S``."""
        self.model_version += 1

    def _view(self, client: Any) -> View | None:
        try:
            cam = client.camera
            c2w = viser_to_c2w(cam.wxyz, cam.position)
            return View(c2w, float(cam.fov), float(cam.aspect))
        except (AssertionError, ZeroDivisionError):
            return None  # no camera message from this client yet

    @contextlib.contextmanager
    def _guard(self):
        with self.model_lock:
            if self.pacer is None:
                yield
                return
            with self.pacer.slot():
                model = self.renderer.model
                was = model.training
                model.eval()
                try:
                    yield
                finally:
                    model.train(was)

    def _render(self, state: ClientState, view: View, side: int, interruptible: bool) -> np.ndarray | None:
        w, h = view.size(side)
        t0 = time.perf_counter()
        stamp = state.moved_at
        cancelled = (lambda: state.moved_at != stamp or not state.alive or self.stopped) if interruptible else (lambda: not state.alive or self.stopped)
        img = self.renderer.render(view, w, h, self.mode.value, cancelled, self._guard)
        dt = time.perf_counter() - t0
        if img is not None and self.pacer is None and dt > 0:
            self.pixels_per_s = 0.7 * self.pixels_per_s + 0.3 * (w * h / dt)
        return img

    def _send(self, state: ClientState, img: np.ndarray) -> None:
        state.client.scene.set_background_image(img, format="jpeg", jpeg_quality=90)
        state.last_image = img
        state.frames += 1
        if self.frames_sent == 0:  # the model's first forward decided its kernel backends
            self.stats_md.content = self._stats_text()
        state.last_frame = time.perf_counter()
        state.last_model = self.model_version
        self.frames_sent += 1

    def _client_loop(self, state: ClientState) -> None:
        from fieldforge.app.callbacks import console

        while state.alive and not self.stopped:
            state.wake.wait(0.05)
            state.wake.clear()
            if not state.alive or self.stopped:
                break
            if state.pending is None and self.live and state.last_model != self.model_version and time.perf_counter() - state.last_frame > LIVE_REFRESH_S:
                state.pending = "refine"
            if state.pending is None:
                continue
            view = self._view(state.client)
            if view is None:
                continue
            try:
                maximum = int(self.max_res.value)
                fast = min(maximum, moving_side(self.pixels_per_s, view.aspect))
                if state.pending == "move":
                    state.pending = "refine"
                    img = self._render(state, view, fast, interruptible=False)
                    if img is not None:
                        self._send(state, img)
                        state.last_side = fast
                    continue
                if time.perf_counter() - state.moved_at < STILL_S:
                    continue
                done = True
                for side in ladder(fast, maximum)[1:] if state.last_side == fast and state.last_model == self.model_version else ladder(fast, maximum):
                    img = self._render(state, view, side, interruptible=True)
                    if img is None:
                        done = False
                        break
                    self._send(state, img)
                    state.last_side = side
                if done and state.pending == "refine":
                    state.pending = None
            except Exception as e:  # a failed frame must not kill the client's thread
                console.print(f"[red]viewer: render failed: {type(e).__name__}: {e}[/red]")
                state.pending = None
                time.sleep(0.5)

    # -- checkpoints and exports ----------------------------------------------------------------------
    def _switch_checkpoint(self, step: int) -> None:
        loaded = load_run(self.loaded.run.path, step, self.renderer.device)
        with self.model_lock:
            self.loaded = loaded
            self.renderer = make_renderer(loaded)
            self.model_version += 1
        self.stats_md.content = self._stats_text()
        self.redraw()

    def _export(self, client: Any, what: str) -> None:
        self.export_status.content = f"exporting {what}…"
        threading.Thread(target=self._export_now, args=(client, what), daemon=True).start()

    def _export_now(self, client: Any, what: str) -> None:
        try:
            path = self.export(what, self._view(client) if client is not None else None)
            message = f"wrote `{path}`"
        except Exception as e:
            path, message = None, f"export failed: {type(e).__name__}: {e}"
        self.export_status.content = message
        self.last_export = path
        if client is not None:
            with contextlib.suppress(Exception):
                client.add_notification("Export", message, auto_close_seconds=8.0)

    def export(self, what: str, view: View | None) -> Path:
        """Run one export with the same code as ``fieldforge export``; returns the written path."""
        from fieldforge.app.atomic import atomic_write_bytes
        from fieldforge.data.formats import encode_png

        run = self.loaded.run
        if what == "view":
            if view is None:
                raise ValueError("no camera from this client yet")
            w, h = view.size(int(self.max_res.value))
            img = self.renderer.render(view, w, h, self.mode.value, guard=self._guard)
            assert img is not None
            n = len(list(run.exports_dir.glob("viewer-*.png"))) if run.exports_dir.is_dir() else 0
            out = run.exports_dir / f"viewer-step{self.loaded.step:06d}-{n:03d}.png"
            atomic_write_bytes(out, encode_png(torch.from_numpy(img).float() / 255))
            return out
        if what == "keyframes":
            return self.keyframe_video()
        if self.pacer is not None and not run.checkpoints():
            raise ValueError("no checkpoint written yet: exports read the newest checkpoint")
        device = "cuda" if self.renderer.device.type == "cuda" else "cpu"
        if what == "image":
            from fieldforge.app.export_image import ExportImageConfig, export_image

            return export_image(ExportImageConfig(run.path))[0]
        if what == "mesh":
            from fieldforge.app.export_mesh import ExportMeshConfig, export_mesh

            return export_mesh(ExportMeshConfig(run.path, resolution=128 if device == "cpu" else 256, score=False))[0]
        if what == "preview":
            return self.mesh_preview(device)
        if what == "video":
            from fieldforge.app.export_views import ExportVideoConfig, export_video

            return export_video(ExportVideoConfig(run.path, frames=60, device=device))[0]
        raise ValueError(f"unknown export {what!r}")

    def keyframe_video(self, frames_per_segment: int = 30, fps: int = 30) -> Path:
        """An MP4 along the keyframes (slerp/lerp between them, ``camera_paths.interpolate_path``), rendered
        like the view (mode, max resolution, the first keyframe's field of view and aspect)."""
        import imageio.v2 as iio2
        from fieldforge.app.atomic import atomic_path
        from fieldforge.data.camera_paths import interpolate_path

        if len(self.keyframes) < 2:
            raise ValueError("add at least two keyframes first")
        first = self.keyframes[0]
        poses = interpolate_path(np.stack([k.c2w.double().numpy() for k in self.keyframes]), frames_per_segment * (len(self.keyframes) - 1) + 1)
        w, h = first.size(int(self.max_res.value))
        w, h = max(16, w // 16 * 16), max(16, h // 16 * 16)  # what H.264 encoders like
        images = []
        for pose in poses:
            img = self.renderer.render(View(torch.from_numpy(pose).float(), first.fov_y, w / h), w, h, self.mode.value, guard=self._guard)
            assert img is not None
            images.append(img)
        run = self.loaded.run
        n = len(list(run.exports_dir.glob("viewer-keyframes-*.mp4"))) if run.exports_dir.is_dir() else 0
        out = run.exports_dir / f"viewer-keyframes-step{self.loaded.step:06d}-{n:03d}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            writer = iio2.get_writer(str(tmp), format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8, macro_block_size=16)
            try:
                for img in images:
                    writer.append_data(img)
            finally:
                writer.close()
        return out

    def mesh_preview(self, device: str) -> Path:
        """Marching cubes of the field at a low resolution (``export mesh``, model frame), shown in the scene."""
        import open3d as o3d
        from fieldforge.app.export_mesh import ExportMeshConfig, export_mesh

        out = self.loaded.run.exports_dir / f"mesh-preview-step{self.loaded.step:06d}.ply"
        export_mesh(ExportMeshConfig(self.loaded.run.path, resolution=96, output=out, frame="unit", slices=False, score=False,
                                     colours="none", device=device))
        mesh = o3d.io.read_triangle_mesh(str(out))
        self.preview = self.server.scene.add_mesh_simple("/mesh_preview", np.asarray(mesh.vertices, dtype=np.float32),
                                                         np.asarray(mesh.triangles, dtype=np.int32), color=(200, 200, 200), opacity=0.6)
        return out

    def stop(self) -> None:
        self.stopped = True
        for state in list(self.clients.values()):
            state.alive = False
            state.wake.set()
        if self.pacer is not None:
            self.pacer.finish()
        self.server.stop()


def _add_box_edges(scene: Any, name: str, lo: np.ndarray, hi: np.ndarray) -> None:
    """The 12 edges of an axis-aligned box as thin grey lines."""
    corners = np.array([[hi[i] if (c >> i) & 1 else lo[i] for i in range(3)] for c in range(8)])
    edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if (a ^ b).bit_count() == 1]
    points = np.stack([corners[[a, b]] for a, b in edges])
    scene.add_line_segments(name, points, (110, 110, 110), thickness=2.0, thickness_units="screen")


def _thumbnails(info: dict, n: int, side: int = 48) -> dict[int, np.ndarray]:
    """Small versions of the capture's training images (when they are still where the capture was read)."""
    paths = info.get("image_paths") or []
    if len(paths) != n or n > 400:
        return {}
    import imageio.v3 as iio

    out = {}
    for i in info["split"].get("train") or range(n):
        try:
            img = np.asarray(iio.imread(paths[i]))
        except (OSError, ValueError):  # the capture moved or changed: no thumbnails
            return out
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        if img.dtype != np.uint8:
            img = (img.astype(np.float64) / np.iinfo(img.dtype).max * 255).astype(np.uint8) if img.dtype.kind == "u" else np.clip(img * 255, 0, 255).astype(np.uint8)
        step = max(1, max(img.shape[:2]) // side)
        small = img[::step, ::step]
        if small.shape[-1] == 4:  # composite on the capture's background, as the field was trained
            a = small[..., 3:].astype(np.float64) / 255
            bg = np.asarray(info.get("background", [1.0, 1.0, 1.0]), dtype=np.float64) * 255
            small = (small[..., :3] * a + bg * (1 - a)).astype(np.uint8)
        out[i] = np.ascontiguousarray(small[..., :3])
    return out


def serve_forever(viewer: Viewer) -> None:
    """Announce the URL, block until Ctrl-C, then stop the server."""
    try:
        viewer.announce()
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
