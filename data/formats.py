"""Encoders for every file FieldForge writes: each returns the file's bytes (``app/`` writes them atomically).

- images: :func:`encode_png` (8-bit, or 16-bit grey, of *stored* display values in ``[0, 1]``: no transfer
  function is applied) and :func:`encode_exr` (float32, linear, HDR kept). ``data.images.encode_image`` is the
  linear-light wrapper that sRGB-encodes before :func:`encode_png`.
- geometry: :func:`encode_ply` (binary little-endian; meshes and point clouds), :func:`encode_obj`,
  :func:`encode_glb` (glTF 2.0 binary), and :func:`encode_mesh` choosing one by name.

Vertex colours are floats in ``[0, 1]`` whose encoding the caller states with ``colour_space``: ``"linear"``
(linear light, the library's convention) or ``"srgb"`` (already sRGB-encoded stored values, e.g. a NeRF's
colours of an 8-bit capture). Each format then gets what its specification says: PLY and OBJ hold 8-bit /
float sRGB-encoded colours (what viewers display as is), glTF's ``COLOR_0`` holds linear floats.
The sRGB transfer functions (IEC 61966-2-1) live here too, with the encoders that apply them;
``data.images`` re-exports them. Inputs are NumPy arrays or torch tensors (any device); this module imports
nothing of ``fields``, ``app`` or the rest of ``data``.
"""

import io
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float, Int, Shaped
from torch import Tensor

ColourSpace = Literal["linear", "srgb"]
MeshFormat = Literal["ply", "obj", "glb"]
MESH_FORMATS: tuple[str, ...] = ("ply", "obj", "glb")

Image = Shaped[Tensor, "h w *c"] | Shaped[np.ndarray, "h w *c"]
Vertices = Float[Tensor, "n 3"] | Float[np.ndarray, "n 3"]
Faces = Int[Tensor, "m 3"] | Int[np.ndarray, "m 3"]


def srgb_to_linear(x: Tensor) -> Tensor:
    """IEC 61966-2-1 sRGB decode."""
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    """IEC 61966-2-1 sRGB encode."""
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach()
        if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
            x = x.float()  # half / bfloat16 have no NumPy equivalent worth keeping
        return x.cpu().numpy()
    return np.asarray(x)


# -- images ----------------------------------------------------------------------------------------------------


def quantize(values: Shaped[Tensor, "..."] | Shaped[np.ndarray, "..."], bits: Literal[8, 16] = 8) -> np.ndarray:
    """Values in ``[0, 1]`` → ``uint8`` / ``uint16`` (clipped, rounded to nearest); integer arrays of that
    width pass through unchanged."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    dtype = np.uint8 if bits == 8 else np.uint16
    a = _numpy(values)
    if a.dtype == dtype:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"expected float values in [0, 1] or {np.dtype(dtype).name}, got {a.dtype}")
    return np.round(np.clip(a.astype(np.float64), 0.0, 1.0) * ((1 << bits) - 1)).astype(dtype)


def encode_png(values: Image, bits: Literal[8, 16] = 8) -> bytes:
    """PNG of stored (display) values in ``[0, 1]``, written as they are: ``(h, w)`` or ``(h, w, 1)`` grey,
    ``(h, w, 2)`` grey + alpha, ``(h, w, 3)`` RGB, ``(h, w, 4)`` RGBA. 16-bit is available for grey."""
    import imageio.v3 as iio

    a = quantize(values, bits)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (2, 3, 4)):
        raise ValueError(f"PNG needs (h, w) or (h, w, c) with c in 1..4, got shape {a.shape}")
    if bits == 16 and a.ndim == 3:
        raise ValueError("16-bit PNG is written for grey images only")
    return iio.imwrite("<bytes>", np.ascontiguousarray(a), extension=".png")


def encode_exr(values: Float[Tensor, "h w *c"] | Float[np.ndarray, "h w *c"]) -> bytes:
    """OpenEXR (ZIP-compressed float32 scanlines) of linear values, HDR kept: ``Y`` (1 channel), ``RGB``, ``RGBA``."""
    import OpenEXR

    arr = _numpy(values).astype(np.float32)
    if arr.ndim == 2:
        arr = arr[..., None]
    names = {1: "Y", 3: "RGB", 4: "RGBA"}
    if arr.ndim != 3 or arr.shape[-1] not in names:
        raise ValueError(f"EXR export supports 1, 3 or 4 channels, got shape {arr.shape}")
    channels = {names[arr.shape[-1]]: np.ascontiguousarray(arr if arr.shape[-1] > 1 else arr[..., 0])}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    fd, tmp = tempfile.mkstemp(suffix=".exr")
    os.close(fd)
    try:
        OpenEXR.File(header, channels).write(tmp)
        return Path(tmp).read_bytes()
    finally:
        os.unlink(tmp)


# -- geometry -------------------------------------------------------------------------------------------------


def _geometry(
    vertices: Vertices, faces: Faces | None, normals: Vertices | None, colours: Vertices | None, colour_space: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    v = _numpy(vertices).astype(np.float64)
    n = v.shape[0]
    f = None if faces is None else _numpy(faces).astype(np.int64).reshape(-1, 3)
    nr = None if normals is None else _numpy(normals).astype(np.float64)
    c = None if colours is None else _numpy(colours).astype(np.float64)
    for name, x in (("normals", nr), ("colours", c)):
        if x is not None and x.shape != (n, 3):
            raise ValueError(f"{name} must have shape ({n}, 3) like the vertices, got {x.shape}")
    if f is not None and f.size and (f.min() < 0 or f.max() >= n):
        raise ValueError(f"faces reference vertices outside 0..{n - 1}")
    if colour_space not in ("linear", "srgb"):
        raise ValueError(f"colour_space must be 'linear' or 'srgb', got {colour_space!r}")
    return v, f, nr, c


def _srgb_colours(colours: np.ndarray, colour_space: str) -> np.ndarray:
    """sRGB-encoded floats in [0, 1]."""
    c = np.clip(colours, 0.0, 1.0)
    return linear_to_srgb(torch.from_numpy(c)).numpy() if colour_space == "linear" else c


def _linear_colours(colours: np.ndarray, colour_space: str) -> np.ndarray:
    c = np.clip(colours, 0.0, 1.0)
    return srgb_to_linear(torch.from_numpy(c)).numpy() if colour_space == "srgb" else c


def encode_ply(
    vertices: Vertices,
    faces: Faces | None = None,
    *,
    normals: Vertices | None = None,
    colours: Vertices | None = None,
    colour_space: ColourSpace = "linear",
) -> bytes:
    """Binary little-endian PLY of a mesh (``faces`` given, even with zero rows) or a point cloud (``faces=None``):
    float32 ``x y z``, optional float32 ``nx ny nz``, optional 8-bit sRGB-encoded ``red green blue``, int32
    triangle lists."""
    v, f, nr, c = _geometry(vertices, faces, normals, colours, colour_space)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if nr is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if c is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    rec = np.empty(v.shape[0], dtype=fields)
    for i, name in enumerate("xyz"):
        rec[name] = v[:, i]
    if nr is not None:
        for i, name in enumerate(("nx", "ny", "nz")):
            rec[name] = nr[:, i]
    if c is not None:
        c8 = quantize(_srgb_colours(c, colour_space), 8)
        for i, name in enumerate(("red", "green", "blue")):
            rec[name] = c8[:, i]
    props = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment FieldForge export"]
    if c is not None:
        header.append("comment vertex colours are 8-bit sRGB-encoded")
    header.append(f"element vertex {v.shape[0]}")
    header += [f"property {props[t]} {name}" for name, t in fields]
    body = rec.tobytes()
    if f is not None:
        frec = np.empty(f.shape[0], dtype=[("n", "u1"), ("i", "<i4", (3,))])
        frec["n"] = 3
        frec["i"] = f
        header += [f"element face {f.shape[0]}", "property list uchar int vertex_indices"]
        body += frec.tobytes()
    header.append("end_header")
    return ("\n".join(header) + "\n").encode("ascii") + body


def encode_obj(
    vertices: Vertices,
    faces: Faces | None = None,
    *,
    normals: Vertices | None = None,
    colours: Vertices | None = None,
    colour_space: ColourSpace = "linear",
) -> bytes:
    """Wavefront OBJ: ``v x y z [r g b]`` (colours sRGB-encoded in [0, 1] at 8-bit precision, the common
    extension), ``vn`` (one per vertex), ``f a//a b//b c//c`` (or ``f a b c`` without normals); 1-based."""
    v, f, nr, c = _geometry(vertices, faces, normals, colours, colour_space)
    out = io.StringIO()
    out.write("# FieldForge export\n")
    rows, fmt = v, "v %.7g %.7g %.7g"
    if c is not None:
        rows = np.concatenate([v, quantize(_srgb_colours(c, colour_space), 8) / 255.0], axis=1)
        fmt += " %.4g %.4g %.4g"
    np.savetxt(out, rows, fmt=fmt)
    if nr is not None:
        np.savetxt(out, nr, fmt="vn %.5g %.5g %.5g")
    if f is not None:
        if nr is not None:
            np.savetxt(out, np.repeat(f + 1, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
        else:
            np.savetxt(out, f + 1, fmt="f %d %d %d")
    return out.getvalue().encode("ascii")


def encode_glb(
    vertices: Vertices,
    faces: Faces | None = None,
    *,
    normals: Vertices | None = None,
    colours: Vertices | None = None,
    colour_space: ColourSpace = "linear",
) -> bytes:
    """Binary glTF 2.0: one primitive with ``POSITION``, ``NORMAL``, ``COLOR_0`` (linear floats, as glTF
    specifies) in a single BIN chunk; triangles with uint32 indices, or points (mode 0) without faces."""
    v, f, nr, c = _geometry(vertices, faces, normals, colours, colour_space)
    blobs: list[bytes] = []
    views: list[dict] = []
    accessors: list[dict] = []

    def add(data: np.ndarray, kind: str, component: int, target: int, minmax: bool = False) -> int:
        offset = sum(len(b) for b in blobs)
        raw = np.ascontiguousarray(data).tobytes()
        blobs.append(raw + b"\0" * (-len(raw) % 4))
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(raw), "target": target})
        acc = {"bufferView": len(views) - 1, "componentType": component, "count": int(data.shape[0]), "type": kind}
        if minmax:
            acc["min"] = [float(x) for x in data.min(axis=0)]
            acc["max"] = [float(x) for x in data.max(axis=0)]
        accessors.append(acc)
        return len(accessors) - 1

    attributes = {"POSITION": add(v.astype("<f4"), "VEC3", 5126, 34962, minmax=True)}
    if nr is not None:
        attributes["NORMAL"] = add(nr.astype("<f4"), "VEC3", 5126, 34962)
    if c is not None:
        attributes["COLOR_0"] = add(_linear_colours(c, colour_space).astype("<f4"), "VEC3", 5126, 34962)
    primitive: dict = {"attributes": attributes, "mode": 0}
    if f is not None:
        primitive.update(indices=add(f.reshape(-1).astype("<u4"), "SCALAR", 5125, 34963), mode=4)
    binary = b"".join(blobs)
    gltf = {
        "asset": {"version": "2.0", "generator": "FieldForge"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [primitive]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
    }
    js = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (
        struct.pack("<III", 0x46546C67, 2, total)
        + struct.pack("<II", len(js), 0x4E4F534A)
        + js
        + struct.pack("<II", len(binary), 0x004E4942)
        + binary
    )


def encode_mesh(
    fmt: str,
    vertices: Vertices,
    faces: Faces | None = None,
    *,
    normals: Vertices | None = None,
    colours: Vertices | None = None,
    colour_space: ColourSpace = "linear",
) -> bytes:
    """:func:`encode_ply`, :func:`encode_obj` or :func:`encode_glb` by name."""
    encoders = {"ply": encode_ply, "obj": encode_obj, "glb": encode_glb}
    if fmt not in encoders:
        raise ValueError(f"unknown mesh format {fmt!r}; choose {', '.join(MESH_FORMATS)}")
    return encoders[fmt](vertices, faces, normals=normals, colours=colours, colour_space=colour_space)


__all__ = [
    "MESH_FORMATS",
    "ColourSpace",
    "MeshFormat",
    "encode_exr",
    "encode_glb",
    "encode_mesh",
    "encode_obj",
    "encode_png",
    "encode_ply",
    "linear_to_srgb",
    "quantize",
    "srgb_to_linear",
]
