"""Blender synthetic captures (NeRF-synthetic): ``transforms_{train,val,test}.json`` + RGBA PNGs.

Each file has ``camera_angle_x`` (horizontal field of view) and ``frames[].file_path`` (without
extension) with ``transform_matrix`` (camera-to-world, OpenGL). Principal point at the image centre.
Poses are used as they are (the scenes live in ``[-1.5, 1.5]^3``: the scene box); RGBA composites
over ``CaptureOptions.background`` (white by default, the benchmark convention). When only the train
file exists, every N-th train frame is held out for test/val.
"""

from pathlib import Path

import numpy as np

from fieldforge.data.captures.capture import Capture, CaptureOptions, FrameSpec, finalize
from fieldforge.data.captures.nerfstudio import _num, pose_matrix, read_json, resolve_image
from fieldforge.data.errors import InputError
from fieldforge.data.transforms import Similarity

BLENDER_HALF_EXTENT = 1.5


def parse_blender(path: str | Path, options: CaptureOptions = CaptureOptions()) -> Capture:
    path = Path(path)
    root = path.parent if path.is_file() else path
    train = root / "transforms_train.json"
    if not train.is_file():
        raise InputError(train, "transforms file does not exist (a Blender capture needs transforms_train.json)")
    frames: list[FrameSpec] = []
    split: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    present = []
    for name in ("train", "val", "test"):
        tf = root / f"transforms_{name}.json"
        if not tf.is_file():
            continue
        present.append(name)
        meta = read_json(tf)
        fov_x = _num(meta, "camera_angle_x", tf, "top level")
        fov_y = _num(meta, "camera_angle_y", tf, "top level")
        if fov_x is None or not 0 < fov_x < np.pi or (fov_y is not None and not 0 < fov_y < np.pi):
            raise InputError(tf, "camera_angle_x (and camera_angle_y) must be given in (0, π)")
        fms = meta.get("frames")
        if not isinstance(fms, list):
            raise InputError(tf, "no 'frames' list")
        for i, fm in enumerate(fms):
            if not isinstance(fm, dict) or "file_path" not in fm or "transform_matrix" not in fm:
                raise InputError(tf, f"frame {i}: needs 'file_path' and 'transform_matrix'")
            key = f"{name}:{fm['file_path']}"
            frames.append(
                FrameSpec(
                    image_path=resolve_image(root, str(fm["file_path"]), (".png",), tf),
                    camera_to_world=pose_matrix(fm["transform_matrix"], tf, key),
                    intrinsics=None,
                    fov_x=fov_x,
                    fov_y=fov_y,
                    name=key,
                )
            )
            split[name].append(key)
    if not frames:
        raise InputError(train, "capture has zero frames")
    use_split = None if present == ["train"] else split
    # Intrinsics derive from each image's own size and the shared field of view: per-frame by construction.
    return finalize("blender", train, frames, options, Similarity(), BLENDER_HALF_EXTENT, use_split, True)
