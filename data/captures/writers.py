"""Write one set of posed images in each capture format FieldForge reads: nerfstudio (``transforms.json``),
Blender (``transforms_train.json``), LLFF (``poses_bounds.npy``) and COLMAP (a text model in ``sparse/0``).

The same views written in every format should train alike (``scripts/bench_nerf.py --formats``); tests use
these writers to turn one capture into another. Images are linked (or copied) into the new capture as
``images/img_NNNN.ext`` in the views' order, so every format lists the frames in the same order and the
``--capture.holdout-every`` split picks the same test views.

Poses are OpenGL camera-to-world 4×4 (x right, y up, looking down −z) in the capture's own world frame.
"""

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class PosedImage:
    """One view: its image file, OpenGL camera-to-world pose and pinhole intrinsics at ``(width, height)``."""

    image: Path
    camera_to_world: np.ndarray
    """``(4, 4)``."""
    intrinsics: tuple[float, float, float, float]
    """``(fx, fy, cx, cy)`` in pixels."""
    width: int
    height: int


def _place_images(root: Path, views: Sequence[PosedImage], link: bool) -> list[str]:
    """``images/img_NNNN.ext`` for each view (symlinks to the sources, or copies); their names under ``root``."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = []
    for i, v in enumerate(views):
        name = f"images/img_{i:04d}{v.image.suffix.lower()}"
        target = root / name
        if link:
            target.symlink_to(v.image.resolve())
        else:
            shutil.copyfile(v.image, target)
        names.append(name)
    return names


def write_nerfstudio(root: Path, views: Sequence[PosedImage], points: np.ndarray | None = None, link: bool = True) -> Path:
    """``transforms.json`` with per-frame PINHOLE intrinsics (nerfstudio's format) and, given sparse points
    ``(m, 3)``, ``points3D.ply`` as its ``ply_file_path`` (as ``ns-process-data`` writes); returns ``root``."""
    names = _place_images(root, views, link)
    frames = [
        {"file_path": n, "transform_matrix": np.asarray(v.camera_to_world, dtype=float).tolist(),
         "fl_x": v.intrinsics[0], "fl_y": v.intrinsics[1], "cx": v.intrinsics[2], "cy": v.intrinsics[3], "w": v.width, "h": v.height}
        for n, v in zip(names, views)
    ]  # fmt: skip
    meta: dict = {"camera_model": "OPENCV", "frames": frames}
    if points is not None:
        from fieldforge.data.formats import encode_ply

        (root / "points3D.ply").write_bytes(encode_ply(np.asarray(points, dtype=np.float32)))
        meta["ply_file_path"] = "points3D.ply"
    (root / "transforms.json").write_text(json.dumps(meta, indent=1))
    return root


def write_blender(root: Path, views: Sequence[PosedImage], link: bool = True) -> Path:
    """``transforms_train.json`` (NeRF-synthetic layout: one ``camera_angle_x``, ``file_path`` without extension)."""
    names = _place_images(root, views, link)
    fx, w = views[0].intrinsics[0], views[0].width
    frames = [{"file_path": "./" + str(Path(n).with_suffix("")), "transform_matrix": np.asarray(v.camera_to_world, dtype=float).tolist()}
              for n, v in zip(names, views)]
    meta = {"camera_angle_x": 2.0 * math.atan(0.5 * w / fx), "frames": frames}
    (root / "transforms_train.json").write_text(json.dumps(meta, indent=1))
    return root


def depth_bounds(views: Sequence[PosedImage], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per view ``(near, far)``: the depth range of the box ``[lo, hi]`` in front of the camera (LLFF's bounds,
    which its ``imgs2poses`` takes from the sparse points)."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    out = []
    for v in views:
        m = np.asarray(v.camera_to_world, dtype=np.float64)
        depth = (corners - m[:3, 3]) @ (-m[:3, 2])
        out.append((max(float(depth.min()), 0.05), float(depth.max())))
    return np.array(out)


def point_bounds(views: Sequence[PosedImage], points: np.ndarray) -> np.ndarray:
    """Per view ``(near, far)`` from the depths of the sparse points in front of it (0.1 and 99.9
    percentiles, as LLFF's ``imgs2poses``)."""
    out = []
    for v in views:
        m = np.asarray(v.camera_to_world, dtype=np.float64)
        depth = (np.asarray(points, dtype=np.float64) - m[:3, 3]) @ (-m[:3, 2])
        depth = depth[depth > 0]
        out.append((float(np.percentile(depth, 0.1)), float(np.percentile(depth, 99.9))))
    return np.array(out)


def visual_hull_points(views: Sequence[PosedImage], lo: np.ndarray, hi: np.ndarray, n: int = 3000, seed: int = 0) -> np.ndarray:
    """``(≤ n, 3)`` points inside every view's alpha silhouette (views with an alpha channel): stand-ins for
    the sparse points structure-from-motion would give, for captures rendered with transparency."""
    import imageio.v3 as iio

    rng = np.random.default_rng(seed)
    cand = rng.uniform(lo, hi, size=(40 * n, 3))
    keep = np.ones(len(cand), dtype=bool)
    for v in views:
        alpha = iio.imread(v.image)
        if alpha.ndim != 3 or alpha.shape[-1] != 4:
            raise ValueError(f"{v.image}: no alpha channel to carve a visual hull from")
        alpha = alpha[..., 3] > 127
        w2c = np.linalg.inv(np.asarray(v.camera_to_world, dtype=np.float64))
        pc = cand @ w2c[:3, :3].T + w2c[:3, 3]
        z = -pc[:, 2]
        fx, fy, cx, cy = v.intrinsics
        u = np.floor(cx + fx * pc[:, 0] / np.maximum(z, 1e-9)).astype(np.int64)
        r = np.floor(cy - fy * pc[:, 1] / np.maximum(z, 1e-9)).astype(np.int64)
        seen = (z > 0) & (u >= 0) & (u < alpha.shape[1]) & (r >= 0) & (r < alpha.shape[0])
        inside = np.zeros(len(cand), dtype=bool)
        inside[seen] = alpha[r[seen], u[seen]]
        keep &= inside | ~seen
    return cand[keep][:n]


def write_llff(root: Path, views: Sequence[PosedImage], near_far: np.ndarray, link: bool = True) -> Path:
    """``poses_bounds.npy``: per view the 3×5 matrix (columns down, right, back, position, (h, w, f)) and
    ``(near, far)``; LLFF has one focal length (the first view's ``fx``)."""
    _place_images(root, views, link)
    rows = []
    for v, bounds in zip(views, near_far):
        m = np.asarray(v.camera_to_world, dtype=np.float64)
        right, up, back = m[:3, 0], m[:3, 1], m[:3, 2]
        cols = np.stack([-up, right, back, m[:3, 3], [v.height, v.width, views[0].intrinsics[0]]], axis=1)
        rows.append(np.concatenate([cols.reshape(-1), bounds]))
    np.save(root / "poses_bounds.npy", np.stack(rows))
    return root


def write_colmap(root: Path, views: Sequence[PosedImage], points: np.ndarray | None = None, binary: bool = False,
                 link: bool = True) -> Path:
    """A COLMAP model in ``sparse/0`` (one PINHOLE camera per view, OpenCV world-to-camera poses, the given
    sparse points ``(m, 3)`` without tracks) written by pycolmap; returns ``root``."""
    import pycolmap

    names = _place_images(root, views, link)
    rec = pycolmap.Reconstruction()
    for i, (name, v) in enumerate(zip(names, views)):
        cam = pycolmap.Camera.create_from_model_name(i + 1, "PINHOLE", v.intrinsics[0], v.width, v.height)
        cam.params = list(v.intrinsics)
        rec.add_camera_with_trivial_rig(cam)
        c2w_cv = np.asarray(v.camera_to_world, dtype=np.float64) @ np.diag([1.0, -1.0, -1.0, 1.0])
        w2c = np.linalg.inv(c2w_cv)
        image = pycolmap.Image(name=Path(name).name, camera_id=i + 1, image_id=i + 1)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(w2c[:3, :]))
    for p in np.zeros((0, 3)) if points is None else np.asarray(points, dtype=np.float64):
        rec.add_point3D(p, pycolmap.Track(), np.array([128, 128, 128], dtype=np.uint8))
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    (rec.write_binary if binary else rec.write_text)(str(model))
    return root


def read_blender_views(root: Path, split: str = "train") -> list[PosedImage]:
    """The views of a Blender (NeRF-synthetic) capture's ``transforms_<split>.json``, as written by its authors."""
    import imageio.v3 as iio

    meta = json.loads((root / f"transforms_{split}.json").read_text())
    views = []
    for f in meta["frames"]:
        path = root / f["file_path"]
        path = path if path.suffix else path.with_suffix(".png")
        h, w = iio.improps(path).shape[:2]
        focal = 0.5 * w / math.tan(0.5 * meta["camera_angle_x"])
        views.append(PosedImage(path, np.asarray(f["transform_matrix"], dtype=np.float64), (focal, focal, w / 2, h / 2), w, h))
    return views


__all__ = ["PosedImage", "depth_bounds", "point_bounds", "read_blender_views", "visual_hull_points", "write_blender", "write_colmap", "write_llff", "write_nerfstudio"]
