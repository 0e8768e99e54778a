"""COLMAP sparse reconstructions (binary or text, read with pycolmap) + their images.

Layouts found: ``DIR/sparse/0/``, ``DIR/sparse/``, or the model folder itself (``cameras.bin`` or
``cameras.txt``); images in ``DIR/images/`` (or next to the model folder). Camera models PINHOLE,
SIMPLE_PINHOLE, SIMPLE_RADIAL, RADIAL and OPENCV; poses are converted from COLMAP's world-to-camera
OpenCV convention to camera-to-world OpenGL; the 3-D points become the sparse point cloud (8-bit
colours as stored values). Normalization as nerfstudio's COLMAP parser: mean up → +z, recentre,
scale cameras into ``[-1, 1]^3``.
"""

import os
from pathlib import Path

import numpy as np

from fieldforge.data.captures.capture import Capture, CaptureOptions, FrameSpec, finalize
from fieldforge.data.errors import InputError

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


def find_model(path: Path) -> tuple[Path, Path]:
    """``(model_dir, images_dir)`` for a COLMAP project or model folder."""
    def is_model(p: Path) -> bool:
        return (p / "cameras.bin").is_file() or (p / "cameras.txt").is_file()

    for cand in (path, path / "sparse" / "0", path / "sparse", path / "colmap" / "sparse" / "0"):
        if cand.is_dir() and is_model(cand):
            model = cand
            break
    else:
        raise InputError(path, "no COLMAP model found (expected cameras.bin/.txt in DIR, DIR/sparse/0 or DIR/sparse)")
    for images in (path / "images", model.parent / "images", model.parent.parent / "images", model.parent.parent.parent / "images"):
        if images.is_dir():
            return model, images
    raise InputError(path, "no images/ folder found next to the COLMAP model")


def camera_intrinsics(cam, where: Path) -> tuple[tuple[float, float, float, float], tuple[float, ...]]:
    """``(fx, fy, cx, cy)`` and ``(k1, k2, k3, k4, p1, p2)`` of a pycolmap camera."""
    name = cam.model.name
    p = [float(v) for v in cam.params]
    if name == "SIMPLE_PINHOLE":
        return (p[0], p[0], p[1], p[2]), (0.0,) * 6
    if name == "PINHOLE":
        return (p[0], p[1], p[2], p[3]), (0.0,) * 6
    if name == "SIMPLE_RADIAL":
        return (p[0], p[0], p[1], p[2]), (p[3], 0.0, 0.0, 0.0, 0.0, 0.0)
    if name == "RADIAL":
        return (p[0], p[0], p[1], p[2]), (p[3], p[4], 0.0, 0.0, 0.0, 0.0)
    if name == "OPENCV":
        return (p[0], p[1], p[2], p[3]), (p[4], p[5], 0.0, 0.0, p[6], p[7])
    raise InputError(where, f"camera {cam.camera_id}: COLMAP model {name} is not supported (use PINHOLE, SIMPLE_RADIAL, RADIAL or OPENCV; undistort other captures first)")


def parse_colmap(path: str | Path, options: CaptureOptions = CaptureOptions()) -> Capture:
    import pycolmap

    path = Path(path)
    model_dir, images_dir = find_model(path)
    try:
        rec = pycolmap.Reconstruction(str(model_dir))
    except Exception as e:
        raise InputError(model_dir, f"unreadable COLMAP model ({type(e).__name__}: {e})") from None
    frames: list[FrameSpec] = []
    for image_id in sorted(rec.images):
        img = rec.images[image_id]
        if not img.has_pose:
            continue
        cam = rec.cameras[img.camera_id]
        intr, dist = camera_intrinsics(cam, model_dir)
        cam_from_world = img.cam_from_world()
        w2c = np.eye(4)
        w2c[:3, :] = np.asarray(cam_from_world.matrix(), dtype=np.float64)
        if not np.isfinite(w2c).all():
            raise InputError(model_dir, f"image {img.name}: pose contains NaN or infinite values")
        c2w = np.linalg.inv(w2c) @ OPENCV_TO_OPENGL
        inside = Path(os.path.normpath(images_dir.absolute() / img.name)).is_relative_to(os.path.normpath(images_dir.absolute()))
        if Path(img.name).is_absolute() or not inside:  # lexically: symlinks the user placed are followed
            raise InputError(model_dir, f"image {img.name!r}: names must be relative to the images folder")
        frames.append(FrameSpec(images_dir / img.name, c2w, intr, int(cam.width), int(cam.height), dist, name=img.name))
    if not frames:
        raise InputError(model_dir, "capture has zero frames (no registered images)")
    points = colors = None
    if rec.num_points3D():
        pts = rec.points3D
        ids = sorted(pts.keys())
        points = np.stack([np.asarray(pts[i].xyz, dtype=np.float64) for i in ids])
        colors = np.stack([np.asarray(pts[i].color, dtype=np.float32) / 255.0 for i in ids])
    return finalize("colmap", model_dir, frames, options, "auto", None, None, True, points, colors)
