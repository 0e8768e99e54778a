"""Reading, validating and normalizing point clouds and meshes (files generated into tmp_path)."""

import math
import warnings

import numpy as np
import open3d as o3d
import pytest
import torch

from fieldforge.data.errors import InputError
from fieldforge.data.images import srgb_to_linear
from fieldforge.data.pointclouds import (
    NonWatertightWarning,
    estimate_normals,
    is_closed_manifold,
    load_surface,
    sample_surface,
    with_normals,
)
from fieldforge.data.transforms import Similarity


CENTRE = np.array([3.0, -2.0, 7.5])
RADIUS = 1.7


def _sphere_mesh(resolution: int = 24) -> o3d.geometry.TriangleMesh:
    m = o3d.geometry.TriangleMesh.create_sphere(RADIUS, resolution)
    m.translate(CENTRE)
    m.compute_vertex_normals()
    return m


def _quiet_write_mesh(path, mesh) -> None:
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        assert o3d.io.write_triangle_mesh(str(path), mesh)


@pytest.mark.parametrize("suffix", ["ply", "obj", "stl", "off"])
def test_meshes_read_normalized_and_map_back_exactly(tmp_path, suffix):
    mesh = _sphere_mesh()
    path = tmp_path / f"sphere.{suffix}"
    _quiet_write_mesh(path, mesh)
    cloud = load_surface(path, padding=0.1)
    assert cloud.is_mesh and cloud.watertight  # STL's per-triangle corners are merged into shared vertices
    assert cloud.triangles.shape[0] == len(mesh.triangles)
    lo, hi = cloud.points.min(0).values, cloud.points.max(0).values
    assert torch.allclose((lo + hi) / 2, torch.full((3,), 0.5), atol=1e-6)
    assert float((hi - lo).max()) == pytest.approx(0.8, abs=1e-6)
    world = cloud.world_points()
    ref = np.asarray(mesh.vertices)
    d = np.linalg.norm(world[:, None, :] - ref[None, ::7, :], axis=-1).min(axis=0)  # every 7th vertex is present
    assert d.max() < 1e-5 * RADIUS
    assert np.allclose(np.linalg.norm(world - CENTRE, axis=1), RADIUS, atol=1e-5)


def test_normalization_round_trip_and_matrix():
    pts = np.random.default_rng(0).normal(size=(100, 3)) * [5, 1, 2] + [10, -3, 0.5]
    n = Similarity.fit_unit_cube(pts, padding=0.05)
    unit = n.apply(pts)
    assert np.allclose(n.invert(unit), pts, atol=1e-12)
    assert unit.min() >= 0.05 - 1e-12 and unit.max() <= 0.95 + 1e-12
    lo, hi = unit.min(axis=0), unit.max(axis=0)
    assert np.allclose((lo + hi) / 2, 0.5, atol=1e-12) and float((hi - lo).max()) == pytest.approx(0.9, abs=1e-12)
    homog = np.c_[pts, np.ones(len(pts))] @ n.matrix().T
    assert np.allclose(homog[:, :3], unit)
    assert Similarity.from_dict(n.to_dict()) == n


@pytest.mark.parametrize("suffix", ["ply", "pcd", "xyz", "xyzn", "xyzrgb", "pts"])
def test_point_clouds_keep_normals_and_colours_where_the_format_has_them(tmp_path, suffix):
    mesh = _sphere_mesh()
    rng = np.random.default_rng(1)
    colours = rng.integers(0, 256, size=(len(mesh.vertices), 3)) / 255.0
    pc = o3d.geometry.PointCloud(mesh.vertices)
    pc.normals = mesh.vertex_normals
    pc.colors = o3d.utility.Vector3dVector(colours)
    path = tmp_path / f"cloud.{suffix}"
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        assert o3d.io.write_point_cloud(str(path), pc)
    cloud = load_surface(path)
    assert not cloud.is_mesh and cloud.n_points == len(mesh.vertices)
    assert np.allclose(cloud.world_points(), np.asarray(mesh.vertices), atol=1e-5)
    has_normals = suffix in ("ply", "pcd", "xyzn")
    has_colours = suffix in ("ply", "pcd", "xyzrgb", "pts")
    assert (cloud.normals is not None) == has_normals
    assert (cloud.colours is not None) == has_colours
    if has_normals:
        assert torch.allclose(cloud.normals.double(), torch.from_numpy(np.asarray(mesh.vertex_normals)), atol=1e-5)
    if has_colours:  # 8-bit file colours are sRGB: decoded to linear
        expect = srgb_to_linear(torch.from_numpy(colours))
        assert torch.allclose(cloud.colours.double(), expect, atol=2.5e-3)


def test_plain_text_variants(tmp_path):
    pts = np.random.default_rng(2).uniform(-1, 1, (50, 3))
    nrm = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    p = tmp_path / "a.xyz"
    p.write_text("# comment\n" + "\n".join(", ".join(f"{v:.9f}" for v in row) for row in np.c_[pts, nrm]))
    c = load_surface(p)
    assert c.normals is not None and torch.allclose(c.normals.double(), torch.from_numpy(nrm), atol=1e-6)
    q = tmp_path / "b.pts"
    q.write_text("50\n" + "\n".join(" ".join(f"{v:.9f}" for v in row) + " 0.5 255 0 128" for row in pts))
    c = load_surface(q)
    assert c.colours is not None and torch.allclose(c.colours[0].double(), srgb_to_linear(torch.tensor([1.0, 0.0, 128 / 255], dtype=torch.float64)), atol=1e-6)
    assert np.allclose(c.world_points(), pts, atol=1e-6)


def test_estimated_normals_of_a_sphere_are_radial_and_outward():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(2000, 3, generator=g, dtype=torch.float64)
    pts = (0.5 + 0.3 * d / d.norm(dim=-1, keepdim=True)).float()
    n = estimate_normals(pts, k=10).double()
    radial = (pts.double() - 0.5) / (pts.double() - 0.5).norm(dim=-1, keepdim=True)
    cos = (n * radial).sum(-1)
    assert float(cos.min()) > 0.97  # oriented outward everywhere, not just up to sign


def test_mesh_normals_and_surface_samples_follow_the_faces():
    m = _sphere_mesh(40)
    v = torch.from_numpy((np.asarray(m.vertices) - CENTRE) / RADIUS).float()
    t = torch.from_numpy(np.asarray(m.triangles).astype(np.int64))
    pts, nrm = sample_surface(v, t, 20000, seed=3)
    r = pts.double().norm(dim=-1)
    assert float(r.max()) <= 1.0 + 1e-6 and float(r.min()) > math.cos(math.pi / 40) - 1e-3  # on the facets
    assert float((nrm.double() * pts.double() / r[:, None]).sum(-1).min()) > 0.99  # outward face normals
    # uniform in area: the fraction above z = 0.5 is the cap's share of the area, (1 − 0.5)/2
    assert float((pts[:, 2] > 0.5).double().mean()) == pytest.approx(0.25, abs=0.015)


def test_with_normals_uses_triangles_for_meshes(tmp_path):
    path = tmp_path / "s.stl"
    _quiet_write_mesh(path, _sphere_mesh())
    c = with_normals(load_surface(path))
    radial = c.points.double() - 0.5
    radial = radial / radial.norm(dim=-1, keepdim=True)
    assert not c.normals_estimated and float((c.normals.double() * radial).sum(-1).min()) > 0.98


def test_open_mesh_warns_about_the_sign_convention(tmp_path):
    m = _sphere_mesh()
    tri = np.asarray(m.triangles)
    centres = np.asarray(m.vertices)[tri].mean(axis=1)
    m.triangles = o3d.utility.Vector3iVector(tri[centres[:, 2] < CENTRE[2] + 0.5])  # cut off the top cap
    path = tmp_path / "open.ply"
    _quiet_write_mesh(path, m)
    with pytest.warns(NonWatertightWarning, match="not watertight"):
        c = load_surface(path)
    assert c.watertight is False and not is_closed_manifold(c.triangles.numpy())


# -- bad inputs ------------------------------------------------------------------------------------------------


def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


BAD_INPUTS = {
    "missing": (lambda t: t / "nope.ply", "does not exist"),
    "empty": (lambda t: _write(t, "e.ply", b""), "empty"),
    "directory": (lambda t: t, "directory"),
    "unsupported": (lambda t: _write(t, "a.vtk", "x"), "unsupported format .vtk"),
    "not ply": (lambda t: _write(t, "a.ply", "hello world\n"), "not a PLY"),
    "truncated ply": (
        lambda t: _write(t, "a.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 100\nproperty float x\nproperty float y\nproperty float z\nend_header\n\0\0"),
        "unreadable PLY file",
    ),
    "header-only ply": (lambda t: _write(t, "b.ply", "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nend_header\n"), "no points could be read"),
    "nan": (lambda t: _write(t, "a.xyz", "0 0 0\n1 1 1\nnan 0 0\n" + "0.5 0.5 0.5\n" * 6), "NaN or infinite"),
    "inf": (lambda t: _write(t, "a.xyz", "0 0 0\n1 inf 1\n" + "0.5 0.5 0.5\n" * 6), "NaN or infinite"),
    "coincident": (lambda t: _write(t, "a.xyz", "1 2 3\n" * 20), "coincide"),
    "too few": (lambda t: _write(t, "a.xyz", "0 0 0\n1 1 1\n"), "only 2 points"),
    "ragged": (lambda t: _write(t, "a.xyz", "0 0 0\n1 1 1 1\n" + "0 1 0\n" * 8), "not a numeric point table"),
    "words": (lambda t: _write(t, "a.xyz", "x y z\n" * 10), "not a numeric point table"),
    "columns": (lambda t: _write(t, "a.xyz", "0 0 0 0 0\n" * 10), "unsupported column count 5"),
    "binary text": (lambda t: _write(t, "a.xyz", b"\xff\xfe\x00\x01" * 10), "binary"),
    "zero area": (
        lambda t: _write(t, "a.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nv 3 0 0\nf 1 2 3\nf 2 3 4\n"),
        "every triangle has zero area",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_raise_one_clear_input_error(tmp_path, case, capfd):
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match=message) as info:
            load_surface(path)
    assert "\n" not in str(info.value)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # native readers (open3d, RPly) are silenced
