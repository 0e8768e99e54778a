"""nerfstudio ``transforms.json`` (also instant-ngp's): global or per-frame intrinsics, PINHOLE/OPENCV.

Keys read: ``fl_x, fl_y, cx, cy, w, h`` (or ``camera_angle_x``/``camera_angle_y``), ``camera_model``,
``k1 k2 k3 k4 p1 p2``, each either at the top level or per frame (per frame wins); ``frames[].file_path``,
``frames[].transform_matrix`` (camera-to-world, OpenGL), ``frames[].mask_path``; ``ply_file_path``
(sparse points, same frame as the poses); ``aabb_scale`` (scene box size multiplier);
``train_filenames``/``val_filenames``/``test_filenames`` (the split, else every N-th frame is held out);
and, as a FieldForge extension, ``scene_box`` ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` in the poses' frame.
Frames whose image file is missing are skipped with a warning.
"""

import json
import os
from pathlib import Path

import numpy as np

from fieldforge.data.captures.capture import Capture, CaptureOptions, FrameSpec, finalize
from fieldforge.data.errors import InputError

INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
SUPPORTED_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL")


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(path, "transforms file does not exist")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise InputError(path, "expected a JSON object at the top level")
    return meta


def _num(meta: dict, key: str, path: Path, where: str) -> float | None:
    if key not in meta or meta[key] is None:
        return None
    try:
        v = float(meta[key])
    except (TypeError, ValueError):
        raise InputError(path, f"{where}: {key} must be a number, got {meta[key]!r}") from None
    if not np.isfinite(v):
        raise InputError(path, f"{where}: {key} is not finite")
    return v


def pose_matrix(value: object, where: Path, name: str) -> np.ndarray:
    """``transform_matrix`` as a float array (shape and values are checked by ``check_pose``)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(where, f"frame {name}: transform_matrix must be a 4×4 list of numbers, got {str(value)[:40]!r}") from None


def resolve_image(base: Path, file_path: str, suffixes: tuple[str, ...] = (), where: Path | None = None) -> Path:
    """An image path of a capture file: relative to ``base`` and inside it (absolute or ``../`` paths are
    refused: a capture must not read files outside its folder)."""
    if Path(file_path).is_absolute():
        raise InputError(where or base, f"file path {file_path!r} is absolute; paths must be relative to the capture folder")
    # lexically (``..`` removed, symlinks kept): a link the user placed in the folder is theirs to follow
    p = Path(os.path.normpath(base.absolute() / file_path))
    if not p.is_relative_to(Path(os.path.normpath(base.absolute()))):
        raise InputError(where or base, f"file path {file_path!r} points outside the capture folder")
    if not p.is_file() and suffixes and p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff"):
        for s in suffixes:
            if p.with_name(p.name + s).is_file():
                return p.with_name(p.name + s)
        return p.with_name(p.name + suffixes[0])
    return p


def parse_nerfstudio(path: str | Path, options: CaptureOptions = CaptureOptions()) -> Capture:
    """Parse ``transforms.json`` (or a directory containing it)."""
    path = Path(path)
    tf = path / "transforms.json" if path.is_dir() else path
    meta = read_json(tf)
    base = tf.parent
    frames_meta = meta.get("frames")
    if not isinstance(frames_meta, list):
        raise InputError(tf, "no 'frames' list")
    if not frames_meta:
        raise InputError(tf, "capture has zero frames")
    per_frame = any(any(k in fm for k in ("fl_x", "fl_y", "w", "h", "cx", "cy")) for fm in frames_meta if isinstance(fm, dict))
    frames: list[FrameSpec] = []
    for i, fm in enumerate(frames_meta):
        if not isinstance(fm, dict) or "file_path" not in fm or "transform_matrix" not in fm:
            raise InputError(tf, f"frame {i}: needs 'file_path' and 'transform_matrix'")
        name = str(fm["file_path"])
        where = f"frame {i} ({name})"
        merged = {**meta, **fm}
        model = str(merged.get("camera_model", "OPENCV")).upper()
        if model not in SUPPORTED_MODELS:
            raise InputError(tf, f"{where}: camera model {model} is not supported (use one of {', '.join(SUPPORTED_MODELS)}; undistort fisheye captures first)")
        vals = {k: _num(merged, k, tf, where) for k in INTRINSIC_KEYS}
        dist = tuple(_num(merged, k, tf, where) or 0.0 for k in DISTORTION_KEYS)
        if model in ("PINHOLE", "SIMPLE_PINHOLE"):
            dist = (0.0,) * 6
        w, h = vals["w"], vals["h"]
        fx, fy = vals["fl_x"], vals["fl_y"]
        if fx is None and fy is not None:
            fx = fy
        if fy is None and fx is not None:
            fy = fx
        intr = None
        if fx is not None:
            if fx <= 0 or (fy is not None and fy <= 0):
                raise InputError(tf, f"{where}: focal length must be positive")
            if w is None or h is None:
                if vals["cx"] is None or vals["cy"] is None:
                    raise InputError(tf, f"{where}: needs w and h (or cx and cy) with fl_x")
            cx = vals["cx"] if vals["cx"] is not None else w / 2.0  # type: ignore[operator]
            cy = vals["cy"] if vals["cy"] is not None else h / 2.0  # type: ignore[operator]
            intr = (fx, fy, cx, cy)
        elif vals["camera_angle_x"] is None:
            raise InputError(tf, f"{where}: no focal length (fl_x/fl_y or camera_angle_x)")
        elif not 0 < vals["camera_angle_x"] < np.pi or not 0 < (vals["camera_angle_y"] or 1.0) < np.pi:
            raise InputError(tf, f"{where}: camera_angle_x/camera_angle_y must be in (0, π)")
        mask = fm.get("mask_path")
        frames.append(
            FrameSpec(
                image_path=resolve_image(base, name, (".png", ".jpg"), tf),
                camera_to_world=pose_matrix(fm["transform_matrix"], tf, f"{i} ({name})"),
                intrinsics=intr,
                width=None if w is None else int(round(w)),
                height=None if h is None else int(round(h)),
                distortion=dist,
                fov_x=vals["camera_angle_x"],
                fov_y=vals["camera_angle_y"],
                mask_path=None if mask is None else resolve_image(base, str(mask), where=tf),
                name=name,
            )
        )
    split = None
    if any(k in meta for k in ("train_filenames", "val_filenames", "test_filenames")):
        split = {k: [str(n) for n in meta.get(f"{k}_filenames", [])] for k in ("train", "val", "test")}
        # file names in the split lists may be written with or without the leading "./"
        by_norm = {str(Path(f.name)): f.name for f in frames}
        split = {k: [by_norm.get(str(Path(n)), n) for n in v] for k, v in split.items()}
    points = colors = None
    if meta.get("ply_file_path"):
        points, colors = read_ply_points(base / str(meta["ply_file_path"]))
    aabb_scale = _num(meta, "aabb_scale", tf, "top level")
    aabb_scale = 1.0 if aabb_scale is None else aabb_scale
    if aabb_scale <= 0:
        raise InputError(tf, f"aabb_scale must be positive, got {aabb_scale}")
    box: np.ndarray | None = None  # none given: the box (or contraction) comes from the cameras and points
    if "scene_box" in meta:  # FieldForge extension: an explicit region of interest in the poses' frame
        try:
            sb = np.asarray(meta["scene_box"], dtype=np.float64)
        except (TypeError, ValueError):
            sb = np.zeros(0)
        if sb.shape != (2, 3) or not np.isfinite(sb).all() or not (sb[1] > sb[0]).all():
            raise InputError(tf, "scene_box must be [[xmin, ymin, zmin], [xmax, ymax, zmax]] with max > min")
        box = sb * aabb_scale
    return finalize("nerfstudio", tf, frames, options, "auto", box, split, per_frame, points, colors, box_multiplier=aabb_scale)


def read_ply_points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Points (and 8-bit colours as stored values in [0,1]) of a PLY point cloud."""
    if not path.is_file():
        raise InputError(path, "ply_file_path points to a missing file")
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(path))
    pts = np.asarray(pcd.points, dtype=np.float64)
    if pts.size == 0:
        raise InputError(path, "point cloud has no points")
    if not np.isfinite(pts).all():
        raise InputError(path, "point cloud contains NaN or infinite coordinates")
    cols = np.asarray(pcd.colors, dtype=np.float32) if pcd.has_colors() else None
    return pts, cols
