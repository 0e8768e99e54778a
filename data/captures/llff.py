"""LLFF captures: ``poses_bounds.npy`` + ``images/`` (or ``images_<k>/``).

``poses_bounds.npy`` is ``(n, 17)``: a 3×5 matrix per image, ``[R | t | (h, w, f)]`` with rotation columns
(down, right, backwards), then the near and far depth bounds. Images are the sorted files of the image
folder (which may be a downscaled copy: the focal length is rescaled to the actual width).
The scene model is decided from the cameras like every format's (``scene_model.py``): forward-facing
captures are rendered in normalized device coordinates with LLFF's normalization (Mildenhall et al.
2019/2020: scale so the nearest bound is 1/0.75, recentre on the average pose, cameras looking down −z);
object-centric ones (many LLFF-format captures are) get the nerfstudio normalization and a box from the
frusta between the near/far bounds; outward-looking or far-reaching ones get contraction.
"""

from pathlib import Path

import numpy as np

from fieldforge.data.captures.capture import Capture, CaptureOptions, FrameSpec, finalize
from fieldforge.data.captures.scene_model import BD_FACTOR
from fieldforge.data.errors import InputError
from fieldforge.data.images import IMAGE_SUFFIXES


def parse_llff(path: str | Path, options: CaptureOptions = CaptureOptions()) -> Capture:
    root = Path(path)
    if root.is_file():
        root = root.parent
    pb = root / "poses_bounds.npy"
    if not pb.is_file():
        raise InputError(pb, "poses_bounds.npy does not exist")
    try:
        arr = np.load(pb)
    except Exception as e:
        raise InputError(pb, f"not a readable .npy file ({type(e).__name__}: {e})") from None
    if arr.ndim != 2 or arr.shape[1] != 17:
        raise InputError(pb, f"expected an (n, 17) array, got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(pb, "capture has zero frames")
    if not np.isfinite(arr).all():
        raise InputError(pb, "poses_bounds contains NaN or infinite values")
    folder = root / "images"
    if not folder.is_dir():
        cands = sorted(p for p in root.glob("images_*") if p.is_dir())
        if not cands:
            raise InputError(root, "no images/ folder next to poses_bounds.npy")
        folder = cands[0]
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if len(files) != arr.shape[0]:
        raise InputError(folder, f"{len(files)} images but poses_bounds.npy has {arr.shape[0]} poses")
    poses = arr[:, :15].reshape(-1, 3, 5)
    bounds = arr[:, 15:17]
    if (bounds <= 0).any():
        raise InputError(pb, "depth bounds must be positive")
    hwf = poses[:, :, 4]
    if (hwf <= 0).any():
        raise InputError(pb, "image heights, widths and focal lengths (the 5th column of each pose) must be positive")
    # columns (down, right, back) → (right, up, back) = OpenGL
    rot = np.concatenate([poses[:, :, 1:2], -poses[:, :, 0:1], poses[:, :, 2:3]], axis=2)
    c2w = np.tile(np.eye(4), (arr.shape[0], 1, 1))
    c2w[:, :3, :3] = rot
    c2w[:, :3, 3] = poses[:, :, 3]
    frames = []
    from fieldforge.data.images import _image_size

    for i, f in enumerate(files):
        h0, w0, focal = hwf[i]
        w, h = _image_size(f)
        s = w / w0
        if abs(h / h0 - s) > 0.02:
            raise InputError(f, f"image is {w}×{h} but poses_bounds says {w0:g}×{h0:g} (different aspect ratio)")
        frames.append(
            FrameSpec(f, c2w[i], (focal * s, focal * s, w / 2.0, h / 2.0), w, h, name=f.name, near_far=(float(bounds[i, 0]), float(bounds[i, 1])))
        )
    # the scene model (NDC for forward-facing cameras, else a box or contraction) and its normalization are
    # decided from the poses and bounds in finalize; NDC uses LLFF's bound-based scaling (scene_model.py)
    return finalize("llff", pb, frames, options, "auto", None, None, False)


__all__ = ["BD_FACTOR", "parse_llff"]
