"""Marching cubes over analytic fields: area/volume, slab-by-slab == whole grid, sparse == dense, memory."""

import math
import tracemalloc

import numpy as np
import open3d as o3d
import pytest
import torch

from fieldforge.data.pointclouds import sample_surface
from fieldforge.data.synthetic import AnalyticShape, sphere_sdf
from fieldforge.fields.geometry_metrics import surface_metrics, volumetric_iou
from fieldforge.fields.meshing import MeshData, extract_mesh, grid_axes, marching_cubes, vertex_normals


BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


def _dense(fn, bbox, res):
    ax = grid_axes(bbox, res)
    g = np.stack(np.meshgrid(*ax, indexing="ij"), -1).reshape(-1, 3)
    return fn(torch.from_numpy(g).float()).numpy().reshape(res, res, res)


def test_marching_cubes_of_an_analytic_sphere_has_the_right_area_and_volume():
    r = 0.6
    mesh = marching_cubes(_dense(lambda p: sphere_sdf(p, r), BOX, 96), 0.0, BOX)
    assert mesh.area() == pytest.approx(4 * math.pi * r**2, rel=3e-3)
    assert mesh.volume() == pytest.approx(4 / 3 * math.pi * r**3, rel=3e-3)  # positive: faces point outward
    assert mesh.is_watertight()
    o3 = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.faces))
    assert o3.is_watertight() and o3.is_orientable()
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - r).max() < 2e-3  # vertices interpolated onto the surface
    n = vertex_normals(mesh.vertices, mesh.faces)
    assert float((n * mesh.vertices / radii[:, None]).sum(1).min()) > 0.99


def test_inside_above_orients_occupancy_and_density_meshes_outward():
    r = 0.5
    occ_logit = lambda p: -10.0 * sphere_sdf(p, r)  # noqa: E731  (positive inside, like a logit or a density)
    mesh, _ = extract_mesh(occ_logit, BOX, 64, level=0.0, inside="above")
    assert mesh.volume() == pytest.approx(4 / 3 * math.pi * r**3, rel=5e-3) and mesh.is_watertight()


@pytest.mark.parametrize("kind", AnalyticShape.KINDS)
def test_slab_by_slab_and_sparse_extraction_equal_the_whole_grid(kind):
    shape = AnalyticShape(kind)
    fn = lambda p: shape.sdf(p.double()).float()  # noqa: E731
    res = 81
    full = marching_cubes(_dense(fn, BOX, res), 0.0, BOX)
    for kwargs in ({"slab_voxels": 1, "block": 4}, {"lipschitz": 1.0, "slab_voxels": 1}, {"lipschitz": 1.0, "block": 8}):
        mesh, stats = extract_mesh(fn, BOX, res, **kwargs)
        assert stats["unmatched"] == 0
        assert mesh.n_vertices == full.n_vertices and mesh.n_faces == full.n_faces
        assert np.allclose(np.sort(mesh.vertices, axis=0), np.sort(full.vertices, axis=0))
        assert mesh.is_watertight() and mesh.area() == pytest.approx(full.area(), rel=1e-6)
        if "lipschitz" in kwargs:
            assert stats["evaluated"] < 0.35 * stats["dense"]
    ref, ref_n = shape.sample_surface(20000, seed=0)
    pts, _ = sample_surface(torch.from_numpy(full.vertices), torch.from_numpy(full.faces), 20000, seed=1)
    m = surface_metrics(pts, ref, threshold=0.01)
    floor = surface_metrics(shape.sample_surface(20000, seed=2)[0], ref, threshold=0.01)  # sampling noise alone
    assert m.chamfer_l1 < 1.05 * floor.chamfer_l1 and m.f_score > 0.97 * floor.f_score
    assert full.volume() == pytest.approx(shape.volume(), rel=0.02)


def test_close_boundary_closes_a_solid_that_touches_the_box():
    half_space = lambda p: p[:, 2] - 0.25  # noqa: E731  (solid below z = 0.25 fills the bottom of the box)
    closed, _ = extract_mesh(half_space, BOX, 24, close_boundary=True)
    open_, _ = extract_mesh(half_space, BOX, 24, close_boundary=False)
    assert closed.is_watertight() and not open_.is_watertight()
    assert closed.volume() == pytest.approx(2 * 2 * 1.25, rel=0.05)  # the box part below the plane


def test_row_callback_sees_every_exact_value_in_order():
    fn = lambda p: sphere_sdf(p, 0.5)  # noqa: E731
    res = 37
    rows = []
    extract_mesh(fn, BOX, res, block=4, on_row=lambda z, v: rows.append((z, v.copy())))
    assert [z for z, _ in rows] == list(range(0, res, 4))
    grid = np.concatenate([v for _, v in rows], axis=2)
    assert np.array_equal(grid, _dense(fn, BOX, res))


def test_memory_stays_bounded_by_a_slab():
    """A dense 160³ extraction must never hold the whole grid (16 MB of float32)."""
    fn = lambda p: sphere_sdf(p, 0.7)  # noqa: E731
    res = 160
    tracemalloc.start()
    mesh, stats = extract_mesh(fn, BOX, res, slab_voxels=res * res * 8, chunk=32768)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    grid_bytes = res**3 * 4
    assert stats["peak_slab_voxels"] <= res * res * 9
    assert peak < 0.5 * grid_bytes + mesh.vertices.nbytes * 3 + mesh.faces.nbytes * 3, (peak, grid_bytes)
    assert mesh.is_watertight()


def test_iou_and_surface_metrics_against_brute_force():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(300, 3, generator=g, dtype=torch.float64), torch.rand(200, 3, generator=g, dtype=torch.float64)
    d = torch.cdist(a, b)
    dab, dba = d.min(1).values, d.min(0).values
    m = surface_metrics(a, b, threshold=0.05, pred_normals=a - 0.5, reference_normals=b - 0.5)
    assert m.chamfer_l1 == pytest.approx(float(0.5 * (dab.mean() + dba.mean())), rel=1e-12)
    assert m.chamfer_l2 == pytest.approx(float(0.5 * ((dab**2).mean() + (dba**2).mean())), rel=1e-12)
    p, r = float((dab < 0.05).double().mean()), float((dba < 0.05).double().mean())
    assert m.f_score == pytest.approx(2 * p * r / (p + r))
    na, nb = torch.nn.functional.normalize(a - 0.5, dim=-1), torch.nn.functional.normalize(b - 0.5, dim=-1)
    nc = 0.5 * ((na * nb[d.argmin(1)]).sum(-1).abs().mean() + (nb * na[d.argmin(0)]).sum(-1).abs().mean())
    assert m.normal_consistency == pytest.approx(float(nc), rel=1e-12)
    x, y = torch.tensor([1, 1, 0, 0, 1], dtype=torch.bool), torch.tensor([1, 0, 1, 0, 1], dtype=torch.bool)
    assert volumetric_iou(x, y) == pytest.approx(2 / 4)
    assert volumetric_iou(torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)) == 1.0


def test_mesh_data_transform_maps_back_exactly():
    mesh = MeshData(np.random.default_rng(0).random((10, 3)), np.array([[0, 1, 2], [2, 3, 4]]))
    world = mesh.transformed(0.25, np.array([0.1, 0.2, 0.3]))
    assert np.allclose(world.vertices * 0.25 + [0.1, 0.2, 0.3], mesh.vertices)


def test_vertices_that_coincide_on_a_shared_slab_plane_are_welded_into_a_closed_mesh():
    """An octahedron whose equator passes exactly through grid points of a plane two slabs share: distinct
    edges give vertices at one float position there, which must be welded, not mismatched."""
    fn = lambda p: p[:, 0].abs() + p[:, 1].abs() + (p[:, 2] + 1 / 32).abs() - 10 / 32  # noqa: E731  (z index 31 = 4·8 − 1)
    whole, _ = extract_mesh(fn, BOX, 65, block=4)
    slabs, stats = extract_mesh(fn, BOX, 65, block=4, slab_voxels=1)
    assert stats["welded"] > 0 and stats["unmatched"] == 0
    assert whole.is_watertight() and slabs.is_watertight()
    assert slabs.volume() == pytest.approx(4 / 3 * (10 / 32) ** 3, rel=1e-9) == whole.volume()
    assert slabs.area() == pytest.approx(whole.area(), rel=1e-9)
