"""The bad-input corpus: every case goes through the real CLI (``fieldforge.app.cli.main`` in-process) and must
exit 2 with one ``fieldforge: error:`` line naming the file or option and the problem, print no traceback
(``--debug`` does), and leave the folder it works in byte-for-byte as it was (no run directory, no export,
no rewritten config). Inputs are generated here and tiny; every case fails before training starts."""

import hashlib
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from fieldforge.app.cli import main

Make = Callable[[Path, Path], list[str]]
"""``(tmp, run) → argv``: writes the case's input under ``tmp``; ``run`` is a copy of a trained tiny image run."""


@dataclass(frozen=True)
class Case:
    make: Make
    expect: str
    """A fragment of the error line (the problem); the file or option name is checked by ``names``."""
    names: str | None = None
    """What the line must name (default: derived by the case: the option or file)."""


# -- inputs --------------------------------------------------------------------------------------------------


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def png(path: Path, h: int = 12, w: int = 12, channels: int = 3, dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(0)
    if dtype == np.uint16:
        from fieldforge.data.formats import encode_png

        return write(path, encode_png(torch.from_numpy(gen.random((h, w)).astype(np.float32)), bits=16))  # 16-bit grey
    iio.imwrite(path, (gen.random((h, w, channels)) * 255).astype(dtype))
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width × height`` (no pixel data worth decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return write(path, b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def train_image(data: Path | str, tmp: Path, *options: str) -> list[str]:
    return ["train", "image", "--data", str(data), "--output-dir", str(tmp / "runs"), "--steps", "2", "--progress", "False", *options]


def image_option(*options: str) -> Make:
    return lambda t, r: train_image(png(t / "a.png"), t, *options)


# captures ---------------------------------------------------------------------------------------------------


def nerfstudio(t: Path, edit: Callable[[dict], None], n_views: int = 3) -> Path:
    from tests.test_captures_nerfstudio import write_capture

    root = write_capture(t / "cap", n_views=n_views, width=12, height=10)
    meta = json.loads((root / "transforms.json").read_text())
    edit(meta)
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def train_nerf(data: Path, t: Path) -> list[str]:
    return ["train", "nerf", "--data", str(data), "--output-dir", str(t / "runs"), "--steps", "1", "--progress", "False"]


def ns_case(edit: Callable[[dict], None]) -> Make:
    return lambda t, r: train_nerf(nerfstudio(t, edit), t)


def blender(t: Path, fov: float) -> Path:
    from tests.test_captures_blender import write_blender

    root = write_blender(t / "bl", splits=("train",), n=(3,), width=10, height=8)
    meta = json.loads((root / "transforms_train.json").read_text())
    meta["camera_angle_x"] = fov
    (root / "transforms_train.json").write_text(json.dumps(meta))
    return root


def llff(t: Path, edit: Callable[[np.ndarray], np.ndarray]) -> Path:
    from tests.test_captures_llff import write_llff

    write_llff(t / "ll", n=3, width=12, height=8)
    pb = t / "ll" / "poses_bounds.npy"
    np.save(pb, edit(np.load(pb)))
    return t / "ll"


def colmap(t: Path, binary: bool, edit: Callable[[Path], None]) -> Path:
    pytest.importorskip("pycolmap", reason="pycolmap writes the COLMAP models")
    from tests.test_captures_colmap import write_colmap

    write_colmap(t / "cm", binary, n=3)
    edit(t / "cm" / "sparse" / "0")
    return t / "cm"


def truncate(name: str, keep: int) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        p = model / name
        p.write_bytes(p.read_bytes()[:keep])

    return edit


def append_line(name: str, line: str) -> Callable[[Path], None]:
    def edit(model: Path) -> None:
        p = model / name
        p.write_text(p.read_text() + line + "\n")

    return edit


def zero_focal_cameras_bin(model: Path) -> None:
    """Rewrite cameras.bin with every camera's parameters zero (as a truncated-then-padded file reads)."""
    import pycolmap

    rec = pycolmap.Reconstruction(str(model))
    for cam in rec.cameras.values():
        cam.params = [0.0] * len(cam.params)
    rec.write_binary(str(model))


# point clouds and meshes ---------------------------------------------------------------------------------------


def train_sdf(data: Path, t: Path) -> list[str]:
    return ["train", "sdf", "--data", str(data), "--output-dir", str(t / "runs"), "--steps", "1", "--progress", "False"]


def points(rows: np.ndarray) -> str:
    return "\n".join(" ".join(repr(float(v)) for v in r) for r in rows) + "\n"


def sdf_case(name: str, content: bytes | str) -> Make:
    return lambda t, r: train_sdf(write(t / name, content), t)


def sphere_points(n: int = 60) -> np.ndarray:
    v = np.random.default_rng(0).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# run directories --------------------------------------------------------------------------------------------------


def edit_config(run: Path, old: str, new: str) -> Path:
    c = run / "config.yaml"
    text = c.read_text()
    assert old in text, old
    c.write_text(text.replace(old, new, 1))
    return run


def latest(run: Path, suffix: str = ".safetensors") -> Path:
    return sorted((run / "checkpoints").glob(f"step-*{suffix}"))[-1]


def nan_weights(run: Path) -> Path:
    from safetensors.torch import load_file, save_file

    path = latest(run)
    w = load_file(str(path))
    key = next(iter(w))
    w[key] = w[key].clone()
    w[key].view(-1)[0] = float("nan")
    save_file(w, str(path), metadata={"step": path.stem.split("-")[1].lstrip("0") or "0"})
    return run


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def pickled_state(run: Path, marker: Path) -> Path:
    import io

    buf = io.BytesIO()
    torch.save({"step": 2, "evil": _Payload(str(marker))}, buf)
    latest(run, ".state.pt").write_bytes(buf.getvalue())
    return run


def symlinked_checkpoints(run: Path, t: Path) -> Path:
    outside = t / "elsewhere"
    shutil.move(str(run / "checkpoints"), outside)
    (run / "checkpoints").symlink_to(outside, target_is_directory=True)
    return run


def missing_input(run: Path, t: Path) -> Path:
    return edit_config(run, "_path: ", f"_path: {t}/gone")


def resume(run: Path, *options: str) -> list[str]:
    return ["train", "image", "--resume", str(run), "--progress", "False", *options]


def rm(path: Path) -> Path:
    path.unlink()
    return path


CMYK = lambda t, r: train_image(cmyk(t / "c.jpg"), t)  # noqa: E731


def cmyk(path: Path) -> Path:
    from PIL import Image

    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(path)
    return path


def nan_exr(path: Path) -> Path:
    from fieldforge.data.formats import encode_exr

    values = np.full((6, 6, 3), 0.5, dtype=np.float32)
    values[2, 3, 1] = np.nan
    return write(path, encode_exr(values))


IDENTITY = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]


def no_focal(m: dict) -> None:
    for k in ("fl_x", "fl_y", "cx", "cy"):
        m.pop(k, None)
    m["camera_angle_x"] = 0.0


def set_column(i: int, value: float) -> Callable[[np.ndarray], np.ndarray]:
    def edit(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[:, i] = value
        return a

    return edit


CASES: dict[str, Case] = {
    # images
    "image missing": Case(lambda t, r: train_image(t / "nope.png", t), "does not exist"),
    "image 0 bytes": Case(lambda t, r: train_image(write(t / "z.png", b""), t), "empty (0 bytes)"),
    "image is a folder": Case(lambda t, r: train_image((t / "d").mkdir() or t / "d", t), "directory"),
    "image wrong extension": Case(lambda t, r: train_image(write(t / "a.txt", "hello"), t), "unsupported image format .txt"),
    "image no extension": Case(lambda t, r: train_image(write(t / "img", "x"), t), "unsupported image format (no extension)"),
    "image truncated png": Case(lambda t, r: train_image(write(t / "t.png", png(t / "full.png").read_bytes()[:70]), t), "t.png"),
    "image garbage png": Case(lambda t, r: train_image(write(t / "g.png", b"\x00garbage" * 20), t), "not a readable image"),
    "image text as jpeg": Case(lambda t, r: train_image(write(t / "g.jpg", "not a jpeg\n" * 5), t), "not a readable image"),
    "image garbage exr": Case(lambda t, r: train_image(write(t / "g.exr", "not an exr\n" * 5), t), "not a readable OpenEXR"),
    "image garbage tiff": Case(lambda t, r: train_image(write(t / "g.tif", "not a tiff\n" * 5), t), "not a readable TIFF"),
    "image cmyk jpeg": Case(CMYK, "CMYK colour is not supported"),
    "image nan exr": Case(lambda t, r: train_image(nan_exr(t / "n.exr"), t), "NaN or infinite"),
    "image huge header": Case(lambda t, r: train_image(png_header(t / "huge.png", 200_000, 100_000), t), "exceeds the budget"),
    "image zero width header": Case(lambda t, r: train_image(png_header(t / "zero.png", 0, 10), t), "zero.png"),
    "image 16-bit over --max-pixels": Case(lambda t, r: train_image(png(t / "s.png", dtype=np.uint16), t, "--max-pixels", "100"), "exceeds the budget"),
    "image --downscale larger than it": Case(image_option("--downscale", "50"), "--downscale 50 is larger"),
    # options
    "--steps 0": Case(image_option("--steps", "0"), "--steps must be ≥ 1"),
    "--steps negative": Case(image_option("--steps", "-3"), "--steps must be ≥ 1"),
    "--batch-size 0": Case(image_option("--batch-size", "0"), "--batch-size must be ≥ 1"),
    "--optim.lr 0": Case(image_option("--optim.lr", "0"), "--optim.lr must be in (0, 10]"),
    "kilonerf tiles of the wrong rank": Case(image_option("--method", "kilonerf", "--field.network.resolution", "3", "3", "3"),
                                             "must have 2 positive entries"),
    "--optim.lr 1e39": Case(image_option("--optim.lr", "1e39"), "--optim.lr must be in (0, 10]"),
    "--optim.lr nan": Case(image_option("--optim.lr", "nan"), "--optim.lr must be a finite number"),
    "--optim.lr inf": Case(image_option("--optim.lr", "inf"), "--optim.lr must be a finite number"),
    "--optim.lr -1": Case(image_option("--optim.lr", "-1"), "--optim.lr must be in (0, 10]"),
    "--optim.betas 1": Case(image_option("--optim.betas", "0.9", "1.0"), "--optim.betas must be in [0, 1)"),
    "--optim.final-lr-ratio 2": Case(image_option("--optim.final-lr-ratio", "2"), "--optim.final-lr-ratio must be in [0, 1]"),
    "--optim.weight-decay -1": Case(image_option("--optim.weight-decay", "-1"), "--optim.weight-decay must be ≥ 0"),
    "--optim.eps nan": Case(image_option("--optim.eps", "nan"), "--optim.eps must be a finite number"),
    "--downscale 0": Case(image_option("--downscale", "0"), "--downscale must be ≥ 1"),
    "--max-pixels 0": Case(image_option("--max-pixels", "0"), "--max-pixels must be ≥ 1"),
    "--log2-table-size 40": Case(image_option("--field.encoding.log2-table-size", "40"), "--field.encoding.log2-table-size must be in [1, 30]"),
    "--network width 0": Case(image_option("--field.network.width", "0"), "--field.network.width must be ≥ 1"),
    "--eval-every -1": Case(image_option("--eval-every", "-1"), "--eval-every must be ≥ 0"),
    "--seed -1": Case(image_option("--seed", "-1"), "--seed must be ≥ 0"),
    "--device tpu": Case(image_option("--device", "tpu"), "--device must be auto, cpu or cuda"),
    "--method unknown": Case(image_option("--method", "nope"), "unknown --method 'nope'"),
    "--encoding unknown": Case(image_option("--encoding", "nope"), "unknown --encoding 'nope'"),
    "--viewer-share 2": Case(image_option("--viewer", "--viewer-share", "2"), "--viewer-share must be in (0, 1]"),
    "--output-dir is a file": Case(lambda t, r: train_image(png(t / "a.png"), t)[:-4] + ["--output-dir", str(write(t / "f", "x"))], "--output-dir must be a folder"),
    "--output-dir under a file": Case(lambda t, r: train_image(png(t / "a.png"), t) + ["--output-dir", str(write(t / "f", "x") / "sub")], "--output-dir must be a folder"),
    "--data missing": Case(lambda t, r: ["train", "image", "--steps", "3"], "--data is required"),
    "--resume with other options": Case(lambda t, r: resume(r, "--optim.lr", "0.1"), "cannot change --optim.lr"),
    "--resume --steps 0": Case(lambda t, r: resume(r, "--steps", "0"), "--steps must be positive"),
    "--resume not a run": Case(lambda t, r: resume(t), "not a FieldForge run directory"),
    # exports
    "export --scale 0": Case(lambda t, r: ["export", "image", "--run", str(r), "--scale", "0"], "--scale must be > 0"),
    "export --scale inf": Case(lambda t, r: ["export", "image", "--run", str(r), "--scale", "inf"], "--scale must be a finite number"),
    "export --scale nan": Case(lambda t, r: ["export", "image", "--run", str(r), "--scale", "nan"], "--scale must be a finite number"),
    "export --scale 100000": Case(lambda t, r: ["export", "image", "--run", str(r), "--scale", "100000"], "use a smaller --scale", "needs about"),
    "export --output a folder": Case(lambda t, r: ["export", "image", "--run", str(r), "--output", str(t)], "--output names a folder"),
    "export --chunk 0": Case(lambda t, r: ["export", "image", "--run", str(r), "--chunk", "0"], "--chunk must be ≥ 1"),
    "export --level on a field without": Case(lambda t, r: ["export", "image", "--run", str(r), "--level", "1"], "--level needs a field with levels"),
    "export --step missing": Case(lambda t, r: ["export", "image", "--run", str(r), "--step", "999"], "no checkpoint at step 999"),
    "export mesh --resolution 1": Case(lambda t, r: ["export", "mesh", "--run", str(r), "--resolution", "1"], "--resolution must be in [8, 4096]"),
    "export video of an image run": Case(lambda t, r: ["export", "video", "--run", str(r), "--frames", "2"], "this is a image run"),
    "export video --fps 0": Case(lambda t, r: ["export", "video", "--run", str(r), "--fps", "0"], "--fps must be ≥ 1"),
    "export pointcloud --min-opacity 2": Case(lambda t, r: ["export", "pointcloud", "--run", str(r), "--min-opacity", "2"], "--min-opacity must be in [0, 1]"),
    # run directories and checkpoints
    "run: not a run": Case(lambda t, r: ["info", str(t)], "not a FieldForge run directory"),
    "run: missing data.json": Case(lambda t, r: ["export", "image", "--run", str(rm(r / "data.json").parent)], "run has no data.json"),
    "run: unreadable data.json": Case(lambda t, r: ["export", "image", "--run", str(write(r / "data.json", "{oops").parent)], "data.json: unreadable"),
    "run: no checkpoint": Case(lambda t, r: ["export", "image", "--run", str(shutil.rmtree(r / "checkpoints") or r)], "run has no checkpoint yet"),
    "run: widths disagree": Case(lambda t, r: ["export", "image", "--run", str(edit_config(r, "width: 64", "width: 32"))], "checkpoint does not match config.yaml"),
    "run: corrupt safetensors": Case(lambda t, r: ["export", "image", "--run", str(write(latest(r), b"\x10\x00\x00\x00\x00\x00\x00\x00{}").parent.parent)], "corrupt checkpoint"),
    "run: truncated safetensors": Case(lambda t, r: ["export", "image", "--run", str(write(latest(r), latest(r).read_bytes()[:200]).parent.parent)], "corrupt checkpoint"),
    "run: NaN weights export": Case(lambda t, r: ["export", "image", "--run", str(nan_weights(r))], "NaN or infinite weights"),
    "run: NaN weights resume": Case(lambda t, r: resume(nan_weights(r), "--steps", "6"), "NaN or infinite weights"),
    "run: pickled state payload": Case(lambda t, r: resume(pickled_state(r, t / "pwned"), "--steps", "6"), "corrupt checkpoint state"),
    "run: corrupt state": Case(lambda t, r: resume(write(latest(r, ".state.pt"), b"PK\x03\x04junk").parent.parent, "--steps", "6"), "corrupt checkpoint state"),
    "run: hostile type tag": Case(lambda t, r: ["info", str(edit_config(r, "_type: fieldforge.app.tasks.image:ImageTrainConfig", "_type: os:system"))], "does not name a FieldForge config"),
    "run: non-config class tag": Case(lambda t, r: ["info", str(edit_config(r, "_type: fieldforge.app.tasks.image:ImageTrainConfig", "_type: fieldforge.app.trainer:Stage"))], "does not name a FieldForge config class"),
    "run: python object in yaml": Case(lambda t, r: ["info", str(edit_config(r, "method: ngp", "method: !!python/object/apply:os.system ['touch pwned']"))], "unreadable run config"),
    "run: invalid yaml": Case(lambda t, r: ["info", str(write(r / "config.yaml", "a: [b\n").parent)], "unreadable run config"),
    "run: untagged config": Case(lambda t, r: ["info", str(write(r / "config.yaml", "steps: 3\n").parent)], "not a FieldForge run config"),
    "run: negative width in config": Case(lambda t, r: ["info", str(edit_config(r, "width: 64", "width: -64"))], "--field.network.width must be ≥ 1"),
    "run: symlinked checkpoints": Case(lambda t, r: resume(symlinked_checkpoints(r, t), "--steps", "6"), "symbolic link"),
    "run: resume with its input gone": Case(lambda t, r: resume(missing_input(r, t), "--steps", "6"), "does not exist"),
    # captures
    "nerfstudio: matrix is a string": Case(ns_case(lambda m: m["frames"][0].update(transform_matrix="abc")), "transform_matrix must be a 4×4 list"),
    "nerfstudio: ragged matrix": Case(ns_case(lambda m: m["frames"][0].update(transform_matrix=[[1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])), "transform_matrix must be a 4×4 list"),
    "nerfstudio: 3x3 matrix": Case(ns_case(lambda m: m["frames"][0].update(transform_matrix=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])), "expected 4×4"),
    "nerfstudio: NaN matrix": Case(ns_case(lambda m: m["frames"][0].update(transform_matrix=[[float("nan")] * 4] * 4)), "NaN"),
    "nerfstudio: singular matrix": Case(ns_case(lambda m: m["frames"][1].update(transform_matrix=[[0, 0, 0, 1]] * 3 + [[0, 0, 0, 1]])), "singular"),
    "nerfstudio: scaled matrix": Case(ns_case(lambda m: m["frames"][1].update(transform_matrix=[[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])), "not a rotation"),
    "nerfstudio: absolute file path": Case(ns_case(lambda m: m["frames"][0].update(file_path="/etc/hostname")), "is absolute"),
    "nerfstudio: ../ file path": Case(ns_case(lambda m: m["frames"][0].update(file_path="../../x/" + m["frames"][0]["file_path"])), "outside the capture folder"),
    "nerfstudio: duplicate files": Case(ns_case(lambda m: m["frames"][1].update(file_path=m["frames"][0]["file_path"])), "name the same image file"),
    "nerfstudio: fl_x 0": Case(ns_case(lambda m: m.update(fl_x=0)), "focal length must be positive"),
    "nerfstudio: fl_x string": Case(ns_case(lambda m: m.update(fl_x="wide")), "fl_x must be a number"),
    "nerfstudio: camera_angle_x 0": Case(ns_case(no_focal), "camera_angle_x/camera_angle_y must be in (0, π)"),
    "nerfstudio: frames not a list": Case(ns_case(lambda m: m.update(frames={"a": 1})), "no 'frames' list"),
    "nerfstudio: zero frames": Case(ns_case(lambda m: m.update(frames=[])), "zero frames"),
    "nerfstudio: frame without pose": Case(ns_case(lambda m: m["frames"][0].pop("transform_matrix")), "needs 'file_path' and 'transform_matrix'"),
    "nerfstudio: fisheye": Case(ns_case(lambda m: m.update(camera_model="OPENCV_FISHEYE")), "not supported"),
    "nerfstudio: aabb_scale 0": Case(ns_case(lambda m: m.update(aabb_scale=0)), "aabb_scale must be positive"),
    "nerfstudio: bad scene_box": Case(ns_case(lambda m: m.update(scene_box=[[1, 1, 1], [0, 0, 0]])), "scene_box must be"),
    "nerfstudio: wrong w": Case(ns_case(lambda m: m.update(w=99)), "says 99×10"),
    "nerfstudio: images missing": Case(ns_case(lambda m: [f.update(file_path=f"gone/{i}.png") for i, f in enumerate(m["frames"])]), "no usable frames"),
    "nerfstudio: invalid JSON": Case(lambda t, r: train_nerf(write(t / "cap" / "transforms.json", "{frames: ["), t), "not valid JSON"),
    "nerfstudio: JSON list": Case(lambda t, r: train_nerf(write(t / "cap" / "transforms.json", "[1, 2]"), t), "expected a JSON object"),
    "blender: camera_angle_x 0": Case(lambda t, r: train_nerf(blender(t, 0.0), t), "camera_angle_x (and camera_angle_y) must be given in (0, π)"),
    "blender: camera_angle_x 4": Case(lambda t, r: train_nerf(blender(t, 4.0), t), "camera_angle_x (and camera_angle_y) must be given in (0, π)"),
    "llff: zero focal": Case(lambda t, r: train_nerf(llff(t, set_column(14, 0.0)), t), "focal lengths (the 5th column of each pose) must be positive"),
    "llff: zero width": Case(lambda t, r: train_nerf(llff(t, set_column(9, 0.0)), t), "widths and focal lengths (the 5th column of each pose) must be positive"),
    "llff: NaN": Case(lambda t, r: train_nerf(llff(t, set_column(3, np.nan)), t), "NaN or infinite"),
    "llff: wrong shape": Case(lambda t, r: train_nerf(llff(t, lambda a: a[:, :15]), t), "expected an (n, 17) array"),
    "llff: negative bounds": Case(lambda t, r: train_nerf(llff(t, set_column(15, -1.0)), t), "depth bounds must be positive"),
    "llff: not npy": Case(lambda t, r: train_nerf(write(t / "ll" / "poses_bounds.npy", "nope"), t), "not a readable .npy"),
    "colmap: truncated cameras.bin": Case(lambda t, r: train_nerf(colmap(t, True, truncate("cameras.bin", 30)), t), "unreadable COLMAP model"),
    "colmap: cameras.bin cut in the params": Case(lambda t, r: train_nerf(colmap(t, True, truncate("cameras.bin", 60)), t), "unreadable COLMAP model"),
    "colmap: zero intrinsics": Case(lambda t, r: train_nerf(colmap(t, True, zero_focal_cameras_bin), t), "positive focal lengths"),
    "colmap: truncated images.bin": Case(lambda t, r: train_nerf(colmap(t, True, truncate("images.bin", 50)), t), "unreadable COLMAP model"),
    "colmap: bad cameras.txt line": Case(lambda t, r: train_nerf(colmap(t, False, append_line("cameras.txt", "3 PINHOLE abc 12 1 2 3 4")), t), "unreadable COLMAP model"),
    "colmap: bad images.txt line": Case(lambda t, r: train_nerf(colmap(t, False, append_line("images.txt", "9 x y z\n")), t), "unreadable COLMAP model"),
    "capture: nothing there": Case(lambda t, r: train_nerf((t / "empty").mkdir() or t / "empty", t), "no capture found"),
    # point clouds and meshes
    "points: empty file": Case(sdf_case("e.xyz", ""), "empty (0 bytes)"),
    "points: collinear": Case(sdf_case("line.xyz", points(np.linspace(0, 1, 100)[:, None] * [[1.0, 2.0, 3.0]])), "all points lie on one line"),
    "points: NaN": Case(sdf_case("n.xyz", points(np.vstack([sphere_points(), [[np.nan, 0, 0]]]))), "NaN or infinite"),
    "points: 1e308": Case(sdf_case("big.xyz", points(sphere_points() * 1.5e308)), "too large"),
    "points: coincident": Case(sdf_case("same.xyz", "1 2 3\n" * 20), "coincide"),
    "points: too few": Case(sdf_case("few.xyz", "0 0 0\n1 1 1\n"), "only 2 points"),
    "points: words": Case(sdf_case("w.xyz", "x y z\n" * 10), "not a numeric point table"),
    "ply: bad header": Case(sdf_case("a.ply", "ply\nformat nonsense 9.9\nelement vertex 3\nend_header\n"), "a.ply"),
    "ply: not ply": Case(sdf_case("b.ply", "hello world\n"), "not a PLY"),
    "ply: truncated": Case(sdf_case("c.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\nproperty float y\nproperty float z\nend_header\n\0\0"), "unreadable PLY"),
    "mesh: zero-area triangles": Case(sdf_case("flat.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nv 3 0 0\nf 1 2 3\nf 2 3 4\n"), "every triangle has zero area"),
    "mesh: unsupported format": Case(sdf_case("m.vtk", "x"), "unsupported format .vtk"),
}


# -- the harness -----------------------------------------------------------------------------------------------


def tree_digest(root: Path) -> str:
    """Names, link targets and contents of everything under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_symlink():
            h.update(str(p.readlink()).encode())
        elif p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained image run (ngp, 2^10-row tables, 2 steps, checkpoints at 1 and 2)."""
    root = tmp_path_factory.mktemp("trained")
    png(root / "input.png", 16, 16)
    argv = train_image(root / "input.png", root, "--name", "run", "--batch-size", "64", "--checkpoint-every", "1",
                       "--field.encoding.log2-table-size", "10", "--field.encoding.n-levels", "4")
    assert main(argv) == 0
    return root / "runs" / "run"


def run_case(case: Case, tmp: Path, trained: Path, capsys: pytest.CaptureFixture, debug: bool = False) -> str:
    run = tmp / "run"
    shutil.copytree(trained, run)
    argv = case.make(tmp, run)
    capsys.readouterr()
    before = tree_digest(tmp)
    with _quiet():
        code = main(argv + (["--debug"] if debug else []))
    err = capsys.readouterr().err
    after = tree_digest(tmp)
    assert code == 2, err
    assert before == after, "the failed command changed files"
    assert not (tmp / "pwned").exists() and not Path("pwned").exists(), "a payload ran"
    return err


class _quiet:
    """Python warnings (skipped frames, non-watertight meshes) are not errors here."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(name: str, tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture) -> None:
    case = CASES[name]
    err = run_case(case, tmp_path, trained_run, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("fieldforge: error: ")]
    assert len(errors) == 1, err
    assert all(line.startswith("fieldforge: error: ") or "warning" in line.lower() for line in lines), err
    assert "Traceback" not in err
    line = errors[0]
    assert case.expect in line, line
    if case.names is not None:
        assert case.names in line, line
    else:  # the line names an option (--x) or a path
        assert "--" in line or "/" in line, line


@pytest.mark.parametrize("name", ["--optim.lr 1e39", "image cmyk jpeg", "run: widths disagree", "nerfstudio: ragged matrix"])
def test_debug_shows_the_traceback(name: str, tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture) -> None:
    err = run_case(CASES[name], tmp_path, trained_run, capsys, debug=True)
    assert "Traceback (most recent call last)" in err and CASES[name].expect in err


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize(
    "make, hint",
    [
        (lambda t, r: train_image(png(t / "a.png"), t), "shrink the file first"),
        (lambda t, r: train_nerf(nerfstudio(t, lambda m: None), t), "pass --downscale 2"),
        (lambda t, r: ["export", "image", "--run", str(r), "--scale", "2"], "use a smaller --scale"),
    ],
    ids=["image", "capture", "export"],
)
def test_what_would_not_fit_in_memory_is_one_line(make: Make, hint: str, tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Estimated before allocating, against the free memory (here pretended to be 4 KB)."""
    import fieldforge.data.memory

    monkeypatch.setattr(fieldforge.data.memory, "available_bytes", lambda device="cpu": 4096)
    err = run_case(Case(make, hint), tmp_path, trained_run, capsys)
    assert err.strip().startswith("fieldforge: error: ") and "needs about" in err and "of RAM is free" in err and hint in err
