"""``Capture``: a multi-view capture after parsing, validation and normalization (any source format).

Conventions (every parser produces exactly these):
- Poses are camera-to-world 4×4 in the OpenGL/Blender/nerfstudio convention (camera looks down −z,
  y up), expressed in the *normalized* frame; intrinsics ``(fx, fy, cx, cy)`` are in pixels of the
  loaded (possibly downscaled) images, pixel centres at ``+0.5``; distortion is ``(k1, k2, k3, k4,
  p1, p2)`` (see ``fields.rendering.rays``).
- The normalization is the similarity ``p_norm = scale · (R p + t)`` from the capture's own world frame;
  it is recorded (a :class:`~fieldforge.data.transforms.Similarity`) so exports map back exactly.
- Images stay on the CPU as the values the files store (8-bit sRGB-encoded for PNG/JPEG, as ``uint8``
  where that is exact; ``float32`` otherwise), because that is what NeRF methods fit and score
  (``transfer`` says how to decode to linear light). RGBA images keep alpha; ``background`` is the colour
  alpha composites over.
"""

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from fieldforge.data.captures import scene_model as sm
from fieldforge.data.errors import InputError
from fieldforge.data.memory import require_memory
from fieldforge.data.images import _image_size, load_image
from fieldforge.data.transforms import Similarity, rotation_between

Split = Literal["train", "val", "test"]


class CaptureWarning(UserWarning):
    """A recoverable problem in a capture (a missing image file, a downscale to fit the memory budget)."""


@dataclass(frozen=True)
class CaptureOptions:
    """How to read and normalize a capture (all formats)."""

    downscale: int = 1
    """Integer box-filter downscale factor for every image (intrinsics follow)."""
    max_total_pixels: int = 150_000_000
    """Memory budget: if all images together have more pixels, warn and downscale further until they fit."""
    background: tuple[float, float, float] | None = None
    """Colour that transparent pixels composite over (stored values); default: white for RGBA captures."""
    holdout_every: int = 8
    """When the capture has no test split, every N-th frame (0, N, 2N, …) is held out for test/val."""
    scene_scale: float = 1.0
    """Multiplies the scene box (a larger box for scenes that extend past the default)."""
    center: Literal["focus", "poses", "none"] = "focus"
    """Recentring (nerfstudio/COLMAP/LLFF): 'focus' = point nearest to all optical axes, 'poses' = mean camera position."""
    orient: Literal["up", "none"] = "up"
    """Rotate so the mean camera up vector is +z (nerfstudio/COLMAP)."""
    auto_scale: bool = True
    """Scale so the cameras lie in [-1, 1]^3 (nerfstudio/COLMAP)."""
    scene_model: Literal["auto", "ndc", "bounded", "unbounded"] = "auto"
    """Scene model: 'auto' decides from the cameras (forward-facing → ndc, object-centric → bounded box,
    outward-looking or far-reaching content → unbounded with contraction); the others force one."""
    ndc: bool | None = None
    """Older spelling: True = --scene-model ndc for LLFF captures (its old meaning); False = never NDC (bounded or
    unbounded, decided from the cameras)."""


@dataclass
class Cameras:
    """Per-camera parameters, one row per frame."""

    camera_to_world: Tensor
    """``(n, 4, 4)`` float32, OpenGL convention, normalized frame."""
    intrinsics: Tensor
    """``(n, 4)`` ``(fx, fy, cx, cy)`` in pixels."""
    width: Tensor
    """``(n,)`` int64."""
    height: Tensor
    """``(n,)`` int64."""
    distortion: Tensor
    """``(n, 6)`` ``(k1, k2, k3, k4, p1, p2)``; zeros for pinhole cameras."""

    def __len__(self) -> int:
        return int(self.camera_to_world.shape[0])

    def subset(self, indices: list[int] | Tensor) -> "Cameras":
        idx = torch.as_tensor(indices, dtype=torch.long)
        return Cameras(self.camera_to_world[idx], self.intrinsics[idx], self.width[idx], self.height[idx], self.distortion[idx])

    def has_distortion(self) -> bool:
        return bool((self.distortion.abs() > 0).any())

    def ndc_projection(self) -> tuple[float, float, float]:
        """``(focal, width, height)`` of a forward-facing capture's NDC projection (its first camera's)."""
        return float(self.intrinsics[0, 0]), float(self.width[0]), float(self.height[0])

    def to_dict(self) -> dict:
        return {
            "camera_to_world": self.camera_to_world.tolist(),
            "intrinsics": self.intrinsics.tolist(),
            "width": self.width.tolist(),
            "height": self.height.tolist(),
            "distortion": self.distortion.tolist(),
        }

    @staticmethod
    def from_dict(d: dict) -> "Cameras":
        return Cameras(
            torch.tensor(d["camera_to_world"], dtype=torch.float32),
            torch.tensor(d["intrinsics"], dtype=torch.float32),
            torch.tensor(d["width"], dtype=torch.long),
            torch.tensor(d["height"], dtype=torch.long),
            torch.tensor(d["distortion"], dtype=torch.float32),
        )


@dataclass
class Capture:
    images: list[Tensor]
    """Per frame ``(h, w, c)`` stored values, c ∈ {3, 4}; ``uint8`` or ``float32`` in [0, 1]."""
    image_paths: list[Path]
    cameras: Cameras
    scene_box: Tensor
    """``(2, 3)`` axis-aligned region of interest in the normalized frame."""
    normalization: Similarity
    """The capture's own world frame → the normalized frame of ``cameras``, ``scene_box`` and ``points``."""
    split: dict[str, list[int]]
    """Frame indices of 'train', 'val' and 'test'."""
    background: Tensor
    """``(3,)`` colour (stored values) behind transparent pixels and empty space."""
    transfer: Literal["srgb", "linear"] = "srgb"
    masks: list[Tensor | None] | None = None
    """Per frame ``(h, w)`` bool (True = use the pixel) or None."""
    points: Tensor | None = None
    """Sparse points ``(m, 3)`` in the normalized frame (COLMAP tracks, nerfstudio ``ply_file_path``)."""
    point_colors: Tensor | None = None
    """``(m, 3)`` stored colour values in [0, 1]."""
    source: Path | None = None
    format: str = ""
    downscale: int = 1
    ndc: bool = False
    """Forward-facing capture to be rendered in NDC (``scene_model == 'ndc'``)."""
    scene_model: str = "bounded"
    """'ndc', 'bounded' (march inside ``scene_box``) or 'unbounded' (contract space outside ``scene_box``)."""
    scene_reason: str = ""
    """Why: one line for the user (e.g. "object-centric: cameras span 84°, box from 4,414 sparse points")."""
    near_far: Tensor | None = None
    """``(n, 2)`` per-frame depth bounds in the normalized frame, where the format gives them (LLFF)."""
    skipped: list[str] = field(default_factory=list)
    """Frames that were listed but not loaded (missing files), with the reason."""

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_alpha(self) -> bool:
        return any(im.shape[-1] == 4 for im in self.images)

    def image_float(self, index: int) -> Float[Tensor, "h w c"]:
        im = self.images[index]
        return im.float() / 255.0 if im.dtype == torch.uint8 else im.float()

    def composited(self, index: int, background: Tensor | None = None) -> Float[Tensor, "h w 3"]:
        """RGB target of a frame: alpha composited over ``background`` (default: the capture's)."""
        im = self.image_float(index)
        if im.shape[-1] == 3:
            return im
        bg = (self.background if background is None else background).to(im)
        a = im[..., 3:4]
        return im[..., :3] * a + bg * (1.0 - a)

    def describe(self) -> str:
        sizes = sorted({(int(w), int(h)) for w, h in zip(self.cameras.width, self.cameras.height)})
        size = f"{sizes[0][0]}×{sizes[0][1]}" if len(sizes) == 1 else f"{len(sizes)} sizes"
        parts = [f"{self.format} capture: {len(self)} frames ({size}{', RGBA' if self.has_alpha else ''})"]
        parts.append("split " + "/".join(str(len(self.split[k])) for k in ("train", "val", "test")) + " train/val/test")
        if self.cameras.has_distortion():
            parts.append("distorted")
        if self.points is not None:
            parts.append(f"{self.points.shape[0]:,} sparse points")
        if self.skipped:
            parts.append(f"{len(self.skipped)} frames skipped")
        return ", ".join(parts)


# --- helpers shared by the parsers -------------------------------------------------------------


@dataclass
class FrameSpec:
    """One frame as a parser found it, before images are read (poses in the source's world frame)."""

    image_path: Path
    camera_to_world: np.ndarray
    """4×4 OpenGL camera-to-world in the source frame."""
    intrinsics: tuple[float, float, float, float] | None
    """``(fx, fy, cx, cy)`` at the size ``(width, height)``; None = derive from ``fov_x`` and the image size."""
    width: int | None = None
    height: int | None = None
    distortion: tuple[float, ...] = (0.0,) * 6
    fov_x: float | None = None
    """Horizontal field of view (Blender ``camera_angle_x``) when no focal length is given."""
    fov_y: float | None = None
    mask_path: Path | None = None
    name: str = ""
    near_far: tuple[float, float] | None = None


def check_pose(pose: np.ndarray, where: Path, name: str) -> np.ndarray:
    """A finite 4×4 pose with an orthonormal rotation (InputError otherwise)."""
    m = np.asarray(pose, dtype=np.float64)
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0, 0, 0, 1]]], axis=0)
    if m.shape != (4, 4):
        raise InputError(where, f"frame {name}: transform has shape {m.shape}, expected 4×4")
    if not np.isfinite(m).all():
        raise InputError(where, f"frame {name}: transform contains NaN or infinite values")
    rot = m[:3, :3]
    det = float(np.linalg.det(rot))
    if abs(det) < 1e-6:
        raise InputError(where, f"frame {name}: transform is singular (rotation determinant {det:.3g})")
    if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-3) or det < 0:
        raise InputError(where, f"frame {name}: transform's 3×3 part is not a rotation (det {det:.4g}); poses must be rigid camera-to-world matrices")
    return m


def focus_point(c2w: np.ndarray) -> np.ndarray | None:
    """Least-squares point nearest to every camera's optical axis (None when the axes are ~parallel)."""
    centres, axes = c2w[:, :3, 3], -c2w[:, :3, 2]
    axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
    proj = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    a, b = proj.sum(0), (proj @ centres[:, :, None]).sum(0)[:, 0]
    if np.linalg.cond(a) > 1e4:
        return None
    return np.linalg.solve(a, b)


def auto_normalization(c2w: np.ndarray, options: CaptureOptions) -> Similarity:
    """nerfstudio-style orientation (mean up → +z), recentring and scaling into ``[-1, 1]^3``."""
    rot = np.eye(3)
    if options.orient == "up":
        up = c2w[:, :3, 1].mean(0)
        if np.linalg.norm(up) > 1e-6:
            rot = rotation_between(up, np.array([0.0, 0.0, 1.0]))
    rotated = c2w.copy()
    rotated[:, :3, :3] = rot @ c2w[:, :3, :3]
    rotated[:, :3, 3] = c2w[:, :3, 3] @ rot.T
    centre = np.zeros(3)
    if options.center == "poses":
        centre = rotated[:, :3, 3].mean(0)
    elif options.center == "focus":
        f = focus_point(rotated) if len(c2w) > 1 else None
        centre = f if f is not None else rotated[:, :3, 3].mean(0)
    trans = -centre
    scale = 1.0
    if options.auto_scale:
        extent = float(np.abs(rotated[:, :3, 3] + trans).max())
        scale = 1.0 / extent if extent > 1e-9 else 1.0
    return Similarity(rot, trans, scale)


def split_indices(n: int, holdout_every: int) -> dict[str, list[int]]:
    """Every ``holdout_every``-th frame is test (and val); the rest train. ``0`` holds out nothing."""
    if holdout_every < 0 or holdout_every == 1:
        raise InputError(None, f"--capture.holdout-every must be 0 (no held-out frames) or ≥ 2, got {holdout_every}")
    if holdout_every == 0 or n < 2:
        return {"train": list(range(n)), "val": [], "test": []}
    test = list(range(0, n, holdout_every))
    held = set(test)
    return {"train": [i for i in range(n) if i not in held], "val": list(test), "test": test}


def _to_stored(pixels: Tensor) -> Tensor:
    """uint8 when the values are exactly 8-bit, else float32."""
    q = torch.round(pixels * 255.0)
    if float((q / 255.0 - pixels).abs().max()) < 1e-4:
        return q.clamp(0, 255).to(torch.uint8)
    return pixels.float().contiguous()


def read_stored(path: Path, pixels: int, factor: int) -> tuple[Tensor, str]:
    """An image's stored values ``(h, w, c)``: ``uint8`` for 8-bit PNG/JPEG (no float round trip), else float in [0, 1]."""
    if path.suffix.lower() in (".png", ".jpg", ".jpeg") and factor == 1:
        import imageio.v3 as iio

        try:
            arr = np.asarray(iio.imread(path))
        except Exception as e:
            raise InputError(path, f"could not decode image ({type(e).__name__}: {e})") from None
        if arr.dtype == np.uint8 and arr.ndim in (2, 3):
            t = torch.from_numpy(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None]))
            return t, "srgb"
    img = load_image(path, max_pixels=max(pixels, 1), downscale=factor)
    return img.encoded(), img.transfer


def _read_mask(path: Path, width: int, height: int, factor: int, where: Path) -> Tensor:
    img = load_image(path)
    if (img.width, img.height) != (width * factor, height * factor) and (img.width // factor, img.height // factor) != (width, height):
        raise InputError(path, f"mask is {img.width}×{img.height} but its image is {width * factor}×{height * factor}")
    m = img.pixels[..., 0] > 0.5
    if factor > 1:  # a downscaled pixel is used only if all of its source pixels are
        h, w = (m.shape[0] // factor) * factor, (m.shape[1] // factor) * factor
        m = m[:h, :w].reshape(h // factor, factor, w // factor, factor).all(dim=3).all(dim=1)
    return m


def load_frames(
    frames: list[FrameSpec],
    where: Path,
    options: CaptureOptions,
    fmt: str,
) -> tuple[list[Tensor], list[Path], list[FrameSpec], list[Tensor | None], int, list[str], str]:
    """Read the images of ``frames`` (skipping missing files with a warning), choosing the downscale factor.

    Returns images, paths, the kept frames (intrinsics resolved at full size), masks, the factor,
    the skipped-frame messages and the transfer function.
    """
    skipped: list[str] = []
    kept: list[FrameSpec] = []
    sizes: list[tuple[int, int]] = []
    for f in frames:
        if not f.image_path.is_file():
            msg = f"{f.image_path}: image file not found, frame skipped"
            warnings.warn(msg, CaptureWarning, stacklevel=3)
            skipped.append(msg)
            continue
        w, h = _image_size(f.image_path)
        if f.width is not None and f.height is not None and (w, h) != (f.width, f.height):
            raise InputError(f.image_path, f"image is {w}×{h} but {where.name} says {f.width}×{f.height}")
        kept.append(f)
        sizes.append((w, h))
    if not kept:
        raise InputError(where, "capture has no usable frames" + (f" ({len(skipped)} listed image files are missing)" if skipped else " (zero frames)"))
    if options.downscale < 1:
        raise InputError(None, f"--capture.downscale must be ≥ 1, got {options.downscale}")
    factor = options.downscale
    total = lambda fac: sum((w // fac) * (h // fac) for w, h in sizes)  # noqa: E731
    while total(factor) > options.max_total_pixels and min(min(w, h) for w, h in sizes) // (factor + 1) >= 8:
        factor += 1
    if factor != options.downscale:
        warnings.warn(
            f"{where}: {total(options.downscale):,} pixels exceed the budget of {options.max_total_pixels:,} "
            f"(--capture.max-total-pixels); images downscaled by {factor}",
            CaptureWarning,
            stacklevel=3,
        )
    # stored 8-bit RGBA plus one float RGBA copy of an image at a time while decoding
    require_memory(total(factor) * 4 + max(w * h for w, h in sizes) * 4 * 4 * 2, f"loading {len(kept)} images ({total(factor):,} pixels)",
                   f"pass --downscale {factor * 2} (or a lower --max-total-pixels)", path=where)
    images, paths, masks = [], [], []
    transfer = "srgb"
    for f, (w, h) in zip(kept, sizes):
        stored, transfer = read_stored(f.image_path, w * h, factor)
        if stored.shape[-1] == 1:
            stored = stored.expand(-1, -1, 3)
        elif stored.shape[-1] == 2:  # grey + alpha
            stored = torch.cat([stored[..., :1].expand(-1, -1, 3), stored[..., 1:]], dim=-1)
        images.append(stored.contiguous() if stored.dtype == torch.uint8 else _to_stored(stored.contiguous()))
        paths.append(f.image_path)
        if f.width is None:
            f.width, f.height = w, h
        if f.intrinsics is None:
            if f.fov_x is None:
                raise InputError(where, f"frame {f.name}: no focal length (fl_x or camera_angle_x)")
            fx = 0.5 * w / math.tan(0.5 * f.fov_x)
            fy = 0.5 * h / math.tan(0.5 * f.fov_y) if f.fov_y is not None else fx
            f.intrinsics = (fx, fy, w / 2.0, h / 2.0)
        masks.append(None if f.mask_path is None else _read_mask(f.mask_path, w // factor, h // factor, factor, where))
    return images, paths, kept, masks, factor, skipped, transfer


def build_cameras(kept: list[FrameSpec], images: list[Tensor], factor: int, norm: Similarity) -> Cameras:
    """Cameras at the loaded resolution, poses in the normalized frame."""
    c2w = torch.from_numpy(np.stack([f.camera_to_world for f in kept]))
    # box_downscale crops the remainder, which keeps the pixel grid origin: intrinsics just divide
    intr = torch.tensor([f.intrinsics for f in kept], dtype=torch.float64) / factor
    return Cameras(
        norm.apply_poses(c2w).float(),
        intr.float(),
        torch.tensor([im.shape[1] for im in images], dtype=torch.long),
        torch.tensor([im.shape[0] for im in images], dtype=torch.long),
        torch.tensor([list(f.distortion) for f in kept], dtype=torch.float32),
    )


def check_uniform_intrinsics(kept: list[FrameSpec], per_frame: bool, where: Path) -> None:
    """Shared intrinsics only make sense if every image has the same size."""
    if per_frame:
        return
    sizes = {(f.width, f.height) for f in kept}
    if len(sizes) > 1:
        listed = ", ".join(f"{w}×{h}" for w, h in sorted(sizes)[:4])
        raise InputError(where, f"images have mixed sizes ({listed}) but the intrinsics are global; give per-frame w, h and fl_x/fl_y, cx, cy")


def check_distinct_images(frames: list[FrameSpec], where: Path) -> None:
    """Two frames naming one image file would train one view twice with two poses."""
    seen: dict[Path, str] = {}
    for f in frames:
        key = f.image_path.resolve()
        if key in seen:
            raise InputError(where, f"frames {seen[key]} and {f.name} name the same image file {f.image_path.name}")
        seen[key] = f.name or str(f.image_path)


def check_intrinsics(kept: list[FrameSpec], where: Path) -> None:
    """Every kept frame has a positive size and finite intrinsics with positive focal lengths (a zero focal
    length or a truncated camera file would make NaN rays)."""
    for f in kept:
        fx, fy, cx, cy = f.intrinsics  # type: ignore[misc]
        if not (f.width and f.height and f.width > 0 and f.height > 0):
            raise InputError(where, f"frame {f.name}: image size {f.width}×{f.height} is not positive")
        if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
            raise InputError(where, f"frame {f.name}: intrinsics (fx {fx:g}, fy {fy:g}, cx {cx:g}, cy {cy:g}) need finite values and positive focal lengths")


def finalize(
    fmt: str,
    source: Path,
    frames: list[FrameSpec],
    options: CaptureOptions,
    normalization: Similarity | Literal["auto"],
    box_half_extent: float | np.ndarray | None,
    split: dict[str, list[str]] | None,
    per_frame_intrinsics: bool,
    points: np.ndarray | None = None,
    point_colors: np.ndarray | None = None,
    box_multiplier: float = 1.0,
) -> Capture:
    """Read images, resolve intrinsics, decide the scene model, normalize, split: the common tail of every parser.

    ``box_half_extent``: the format's own scene box: ``[-h, h]^3`` in the normalized frame, or a ``(2, 3)``
    array: a box in the source frame (normalized and made axis-aligned); None = the format has none (the
    box comes from the cameras, the sparse points and the near/far bounds). ``normalization`` applies to
    bounded and unbounded scenes; NDC scenes get LLFF's. ``split`` maps split names to image names
    (frame ``name``); None = hold out every N-th frame.
    """
    for f in frames:
        f.camera_to_world = check_pose(f.camera_to_world, source, f.name or str(f.image_path))
    if not frames:
        raise InputError(source, "capture has zero frames")
    check_distinct_images(frames, source)
    images, paths, kept, masks, factor, skipped, transfer = load_frames(frames, source, options, fmt)
    check_intrinsics(kept, source)
    check_uniform_intrinsics(kept, per_frame_intrinsics, source)
    c2w_src = np.stack([f.camera_to_world for f in kept])
    nf_src = np.array([f.near_far for f in kept], dtype=np.float64) if all(f.near_far is not None for f in kept) else None
    pts_src = np.asarray(points, dtype=np.float64) if points is not None and len(points) else None
    model, reason, norm, box = scene_model_of(fmt, kept, c2w_src, nf_src, pts_src, options, normalization, box_half_extent, box_multiplier, source)
    cameras = build_cameras(kept, images, factor, norm)
    if split is None:
        split_idx = split_indices(len(kept), options.holdout_every)
    else:
        index = {f.name: i for i, f in enumerate(kept)}
        split_idx = {k: [index[n] for n in split.get(k, []) if n in index] for k in ("train", "val", "test")}
        if not split_idx["test"]:
            split_idx["test"] = list(split_idx["val"])
        if not split_idx["val"]:
            split_idx["val"] = list(split_idx["test"])
    if not split_idx["train"]:
        raise InputError(source, "capture has no training frames after the split")
    has_alpha = any(im.shape[-1] == 4 for im in images)
    bg = options.background if options.background is not None else ((1.0, 1.0, 1.0) if has_alpha else (0.0, 0.0, 0.0))
    pts = cols = None
    if pts_src is not None:
        pts = norm.apply(torch.from_numpy(pts_src)).float()
        cols = None if point_colors is None else torch.from_numpy(np.asarray(point_colors, dtype=np.float32))
    near_far = None
    if all(f.near_far is not None for f in kept) and kept[0].near_far is not None:
        near_far = torch.tensor([f.near_far for f in kept], dtype=torch.float32) * norm.scale
    return Capture(
        images=images,
        image_paths=paths,
        cameras=cameras,
        scene_box=box,
        normalization=norm,
        split=split_idx,
        background=torch.tensor(bg, dtype=torch.float32),
        transfer=transfer,  # type: ignore[arg-type]
        masks=masks if any(m is not None for m in masks) else None,
        points=pts,
        point_colors=cols,
        source=source,
        format=fmt,
        downscale=factor,
        ndc=model == "ndc",
        scene_model=model,
        scene_reason=reason,
        near_far=near_far,
        skipped=skipped,
    )


def _box_in_frame(box_half_extent: float | np.ndarray, norm: Similarity) -> np.ndarray:
    if isinstance(box_half_extent, np.ndarray):  # an explicit box in the source frame
        lo, hi = box_half_extent
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        c = norm.apply(torch.from_numpy(corners)).double().numpy()
        return np.stack([c.min(0), c.max(0)])
    h = float(box_half_extent)
    return np.array([[-h] * 3, [h] * 3])


def scene_model_of(
    fmt: str, kept: list[FrameSpec], c2w_src: np.ndarray, nf_src: np.ndarray | None, pts_src: np.ndarray | None, options: CaptureOptions,
    normalization: Similarity | Literal["auto"], format_box: float | np.ndarray | None, box_multiplier: float, source: Path,
) -> tuple[str, str, Similarity, Tensor]:
    """``(model, reason, normalization, scene box)`` of a capture (see :mod:`.scene_model`), with the
    warnings a box deserves (cameras inside it, sparse points outside it)."""
    requested = sm.requested_model(options.scene_model, options.ndc, fmt)
    geom = sm.camera_geometry(c2w_src, pts_src, nf_src)
    near = sm.near_depth(c2w_src, pts_src, nf_src)
    model, reason = sm.decide(geom, requested, has_format_box=format_box is not None, has_depth=near is not None)
    if model == "ndc":
        if near is None:  # forced without depth: the focus distance stands in for the near bound
            near = max(0.1 * geom.camera_radius, 1e-3)
        norm = sm.forward_normalization(c2w_src, near)
        box = np.array([[-1.0] * 3, [1.0] * 3])
        return model, reason, norm, torch.from_numpy(box).float()
    norm = auto_normalization(c2w_src, options) if normalization == "auto" else normalization
    c2w = norm.apply_poses(torch.from_numpy(c2w_src)).double().numpy()
    centres = c2w[:, :3, 3]
    pts = None if pts_src is None else norm.apply(torch.from_numpy(pts_src)).double().numpy()
    if model == "unbounded":
        centre = norm.apply(torch.from_numpy(geom.centre[None])).double().numpy()[0]
        box = sm.cameras_box(centres, centre)
        if format_box is not None:  # a format's box still holds the region of interest: keep the larger
            fb = _box_in_frame(format_box, norm)
            box = np.stack([np.minimum(box[0], fb[0]), np.maximum(box[1], fb[1])])
        reason += ", contraction outside the cameras' box"
    else:
        if format_box is not None:
            box = _box_in_frame(format_box, norm)
        elif pts is not None and len(pts) >= 8:
            box = sm.points_box(pts)
            reason += f", box from {len(pts):,} sparse points"
        else:
            intr = np.array([f.intrinsics for f in kept], dtype=np.float64)
            sizes = np.array([(f.width, f.height) for f in kept], dtype=np.float64)
            if nf_src is not None:
                nf, what = nf_src * norm.scale, "near/far bounds"
            else:
                r = geom.camera_radius * norm.scale
                nf, what = np.tile([0.05 * r, 2.0 * r], (len(kept), 1)), "the cameras' focus distance"
            box = sm.frusta_box(c2w, intr, sizes, nf)
            if box is None:
                box = np.array([[-1.0] * 3, [1.0] * 3])
                reason += ", no region shared by the frusta: box [-1, 1]³"
            else:
                reason += f", box shared by half the frusta ({what})"
            if box_multiplier != 1.0:
                mid, half = (box[0] + box[1]) / 2, (box[1] - box[0]) / 2 * box_multiplier
                box = np.stack([mid - half, mid + half])
    if options.scene_scale != 1.0:
        mid, half = (box[0] + box[1]) / 2, (box[1] - box[0]) / 2 * options.scene_scale
        box = np.stack([mid - half, mid + half])
    if model == "bounded":
        inside = int(sm.inside_box(centres, box).sum())
        if inside:
            warnings.warn(
                f"{source}: {inside} of {len(centres)} cameras lie inside the scene box {np.round(box, 2).tolist()}; "
                "the scene may extend past them (--scene-model unbounded, or a larger --scene-scale)",
                CaptureWarning,
                stacklevel=3,
            )
    if pts is not None and len(pts) >= 8 and model != "ndc":
        outside = 1.0 - float(sm.inside_box(pts, box).mean())
        if outside > 0.05:
            warnings.warn(
                f"{source}: {outside:.0%} of the {len(pts):,} sparse points fall outside the scene box"
                + (" (they lie in the contracted region)" if model == "unbounded" else "; raise --scene-scale or use --scene-model unbounded"),
                CaptureWarning,
                stacklevel=3,
            )
    return model, reason, norm, torch.from_numpy(box).float()


__all__ = [
    "Cameras",
    "Capture",
    "CaptureOptions",
    "CaptureWarning",
    "FrameSpec",
    "auto_normalization",
    "check_pose",
    "finalize",
    "focus_point",
    "split_indices",
]
