"""The encoders of data.formats, read back by independent readers (open3d, imageio, OpenEXR) and by our own."""

import json
import struct

import imageio.v3 as iio
import numpy as np
import open3d as o3d
import pytest
import torch

from fieldforge.data.formats import encode_exr, encode_glb, encode_mesh, encode_obj, encode_ply, encode_png, quantize
from fieldforge.data.images import linear_to_srgb, load_image
from fieldforge.data.pointclouds import load_surface


def _srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.clip(x, 0.0031308, None) ** (1 / 2.4) - 0.055)


def _icosahedron() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    m = o3d.geometry.TriangleMesh.create_icosahedron(0.7)
    v = np.asarray(m.vertices)
    colours = np.random.default_rng(0).random(v.shape)
    return v, np.asarray(m.triangles).astype(np.int64), v / np.linalg.norm(v, axis=1, keepdims=True), colours


def test_ply_mesh_reads_back_with_open3d(tmp_path):
    v, f, n, c = _icosahedron()
    path = tmp_path / "m.ply"
    path.write_bytes(encode_ply(v, f, normals=n, colours=c))
    back = o3d.io.read_triangle_mesh(str(path))
    assert np.allclose(np.asarray(back.vertices), v, atol=1e-6) and np.array_equal(np.asarray(back.triangles), f)
    assert back.has_vertex_normals() and np.allclose(np.asarray(back.vertex_normals), n, atol=1e-6)
    assert np.allclose(np.asarray(back.vertex_colors), _srgb(c), atol=0.5 / 255)  # linear → 8-bit sRGB
    stored = tmp_path / "s.ply"  # colours that already are sRGB-encoded values are written as they are
    stored.write_bytes(encode_ply(torch.from_numpy(v).float(), torch.from_numpy(f), colours=c, colour_space="srgb"))
    assert np.allclose(np.asarray(o3d.io.read_triangle_mesh(str(stored)).vertex_colors), c, atol=0.5 / 255)


def test_ply_point_cloud_reads_back_with_open3d_and_load_surface(tmp_path):
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(200, 3))
    nrm = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    lin = rng.random((200, 3))
    path = tmp_path / "p.ply"
    blob = encode_ply(pts, normals=nrm, colours=lin)
    assert b"element face" not in blob[: blob.index(b"end_header")]
    path.write_bytes(blob)
    pcd = o3d.io.read_point_cloud(str(path))
    assert np.allclose(np.asarray(pcd.points), pts, atol=1e-6) and np.allclose(np.asarray(pcd.normals), nrm, atol=1e-6)
    assert np.allclose(np.asarray(pcd.colors), _srgb(lin), atol=0.5 / 255)
    cloud = load_surface(path)  # our reader decodes 8-bit sRGB back to linear
    assert not cloud.is_mesh and np.allclose(cloud.world_points(), pts, atol=1e-5)
    assert torch.allclose(cloud.normals.double(), torch.from_numpy(nrm), atol=1e-6)
    assert torch.allclose(cloud.colours.double(), torch.from_numpy(lin), atol=4.5e-3)  # half an 8-bit step at the top
    assert encode_ply(pts, np.zeros((0, 3), dtype=np.int64)).count(b"element face 0") == 1


def test_obj_and_glb_carry_the_same_geometry(tmp_path):
    v, f, n, c = _icosahedron()
    path = tmp_path / "m.obj"
    path.write_bytes(encode_obj(v, f, normals=n, colours=c))
    back = o3d.io.read_triangle_mesh(str(path))
    bv, bt = np.asarray(back.vertices), np.asarray(back.triangles)
    assert np.allclose(bv[bt], v[f], atol=1e-6)  # open3d's OBJ reader renumbers vertices
    assert np.allclose(np.asarray(back.vertex_colors)[bt], _srgb(c)[f], atol=0.6 / 255)
    blob = encode_glb(v, f, normals=n, colours=c, colour_space="linear")
    magic, version, length = struct.unpack("<III", blob[:12])
    jlen = struct.unpack("<I", blob[12:16])[0]
    gltf = json.loads(blob[20 : 20 + jlen])
    binary = blob[28 + jlen :]
    prim = gltf["meshes"][0]["primitives"][0]
    assert magic == 0x46546C67 and version == 2 and length == len(blob) and prim["mode"] == 4

    def read(index: int, dtype: str, width: int) -> np.ndarray:
        acc = gltf["accessors"][index]
        view = gltf["bufferViews"][acc["bufferView"]]
        flat = np.frombuffer(binary, dtype=dtype, count=acc["count"] * width, offset=view["byteOffset"])
        return flat.reshape(acc["count"], width)

    assert np.allclose(read(prim["attributes"]["COLOR_0"], "<f4", 3), c, atol=1e-6)  # glTF colours are linear
    srgb_in = encode_glb(v, f, colours=_srgb(c), colour_space="srgb")  # stored values are decoded for glTF
    g2 = json.loads(srgb_in[20 : 20 + struct.unpack("<I", srgb_in[12:16])[0]])
    assert "COLOR_0" in g2["meshes"][0]["primitives"][0]["attributes"]
    points = encode_glb(v)  # no faces: a point primitive without indices
    g3 = json.loads(points[20 : 20 + struct.unpack("<I", points[12:16])[0]])
    assert g3["meshes"][0]["primitives"][0]["mode"] == 0 and "indices" not in g3["meshes"][0]["primitives"][0]
    assert encode_mesh("obj", v, f) == encode_obj(v, f)
    with pytest.raises(ValueError, match="unknown mesh format"):
        encode_mesh("stl", v, f)
    with pytest.raises(ValueError, match="outside"):
        encode_ply(v, f + 100)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_round_trip_is_exact_for_8bit_values(tmp_path, channels):
    q = np.random.default_rng(channels).integers(0, 256, (5, 7, channels))
    values = torch.from_numpy(q / 255.0).float()
    back = iio.imread(encode_png(values))
    expect = q[..., 0] if channels == 1 else q
    assert back.dtype == np.uint8 and np.array_equal(back, expect)


def test_png_grey_16bit_clipping_and_errors():
    g = np.random.default_rng(7).integers(0, 65536, (4, 6))
    back = iio.imread(encode_png(g / 65535.0, bits=16))
    assert back.dtype == np.uint16 and np.array_equal(back, g)
    assert np.array_equal(quantize(np.array([-0.5, 0.0, 0.5, 1.0, 2.0])), [0, 0, 128, 255, 255])
    with pytest.raises(ValueError, match="grey"):
        encode_png(np.zeros((2, 2, 3)), bits=16)
    with pytest.raises(ValueError):
        encode_png(np.zeros((2, 2, 5)))


def test_exr_keeps_hdr_values(tmp_path):
    hdr = np.random.default_rng(8).random((6, 5, 3)).astype(np.float32) * 4.0
    (tmp_path / "h.exr").write_bytes(encode_exr(hdr))
    img = load_image(tmp_path / "h.exr")
    assert img.transfer == "linear" and torch.equal(img.pixels, torch.from_numpy(hdr))
    (tmp_path / "y.exr").write_bytes(encode_exr(hdr[..., 0]))
    assert torch.equal(load_image(tmp_path / "y.exr").pixels[..., 0], torch.from_numpy(hdr[..., 0]))


def test_png_of_srgb_encoded_linear_values_matches_encode_image(tmp_path):
    from fieldforge.data.images import encode_image

    lin = torch.rand(4, 4, 3, generator=torch.Generator().manual_seed(9))
    assert encode_image(lin, "png") == encode_png(linear_to_srgb(lin))
