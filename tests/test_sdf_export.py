"""Shape training and mesh export through the real CLI: transforms, formats, grids, errors, resume."""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch
from safetensors.torch import load_file

from fieldforge.app.cli import main
from fieldforge.app.export_mesh import GridNpzWriter, encode_mesh
from fieldforge.fields.meshing import MeshData


CENTRE = np.array([10.0, -5.0, 3.0])
RADIUS = 2.0
TINY = [
    "--method", "pe", "--field.encoding.n-frequencies", "2", "--field.network.width", "32", "--field.network.n-hidden-layers", "2",
    "--steps", "120", "--batch-size", "2048", "--optim.lr", "5e-3", "--sampling.pool-size", "20000",
    "--eval-resolution", "32", "--eval-points", "5000", "--progress", "False",
]  # fmt: skip


@pytest.fixture(scope="module")
def sphere_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "sphere.ply"
    m = o3d.geometry.TriangleMesh.create_sphere(RADIUS, 40)
    m.translate(CENTRE)
    m.vertex_colors = o3d.utility.Vector3dVector(np.tile([[1.0, 0.5, 0.0]], (len(m.vertices), 1)))
    assert o3d.io.write_triangle_mesh(str(path), m)
    return path


@pytest.fixture(scope="module")
def sphere_run(tmp_path_factory, sphere_file) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "sdf", "--data", str(sphere_file), "--output-dir", str(out), "--name", "s", *TINY]) == 0
    return out / "s"


def test_training_writes_a_run_with_its_normalization(sphere_run, capsys):
    info = json.loads((sphere_run / "data.json").read_text())
    assert info["kind"] == "mesh" and info["watertight"] is True
    assert info["normalization"]["scale"] == pytest.approx(0.8 / (2 * RADIUS), rel=1e-3)
    records = [json.loads(line) for line in (sphere_run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if r["kind"] == "eval"][-1]
    assert final["watertight"] == 1.0 and final["chamfer_l1_rel"] < 0.01 and final["iou"] > 0.95
    assert (sphere_run / "renders" / "mesh.ply").is_file() and (sphere_run / "renders" / "slices.png").is_file()


def test_export_round_trips_the_coordinate_transform(sphere_run, capsys):
    assert main(["export", "mesh", "--run", str(sphere_run), "--resolution", "48", "--format", "ply"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "watertight" in line and "NOT" not in line and "Chamfer-L1" in line
    mesh = o3d.io.read_triangle_mesh(str(sphere_run / "exports" / "mesh-48-step000120.ply"))  # default name: resolution and step
    v = np.asarray(mesh.vertices)
    r = np.linalg.norm(v - CENTRE, axis=1)
    assert abs(v.mean(axis=0) - CENTRE).max() < 0.02 * RADIUS  # back in the input's coordinates
    err = np.abs(r - RADIUS)
    assert err.mean() < 0.015 * RADIUS and np.quantile(err, 0.99) < 0.05 * RADIUS  # a 120-step fit of the sphere
    # closed, edge- and vertex-manifold, consistently oriented (open3d's is_watertight also rejects the rare
    # self-intersection marching cubes makes between near-degenerate triangles in one cell)
    assert mesh.is_edge_manifold(allow_boundary_edges=False) and mesh.is_vertex_manifold() and mesh.is_orientable()
    colours = np.asarray(mesh.vertex_colors)  # nearest input colour, sRGB-encoded 8-bit on disk
    assert np.allclose(colours, [1.0, 128 / 255, 0.0], atol=1 / 255)
    assert (sphere_run / "exports" / "mesh-48-step000120-slices.png").is_file()
    # the unit frame: the same surface inside the normalized cube
    out = sphere_run / "exports" / "unit.obj"
    assert main(["export", "mesh", "--run", str(sphere_run), "--resolution", "48", "--format", "obj", "--frame", "unit", "--output", str(out), "--slices", "False"]) == 0
    vu = np.asarray(o3d.io.read_triangle_mesh(str(out)).vertices)
    info = json.loads((sphere_run / "data.json").read_text())["normalization"]
    expect = v * info["scale"] + np.asarray(info["offset"])  # same extraction, other frame (OBJ readers reorder)
    assert len(vu) == len(expect)
    assert np.allclose(vu[np.lexsort(vu.T)], expect[np.lexsort(expect.T)], atol=1e-5)


def test_npz_export_stores_the_exact_grid(sphere_run):
    out = sphere_run / "exports" / "grid.npz"
    assert main(["export", "mesh", "--run", str(sphere_run), "--resolution", "20", "--format", "npz", "--output", str(out), "--slices", "False"]) == 0
    data = np.load(out)
    values = data["values"]
    assert values.shape == (20, 20, 20) and data["kind"] == "sdf"
    from fieldforge.app.loader import load_run

    loaded = load_run(sphere_run)
    assert loaded.kind == "sdf" and loaded.step == 120
    i, j, k = 3, 11, 17
    p = torch.tensor([[i / 19, j / 19, k / 19]], dtype=torch.float32)  # the grid spans the unit cube
    with torch.no_grad():
        assert float(loaded.model.signed_distance(p)) == pytest.approx(float(values[i, j, k]), abs=1e-6)
    assert data["unit_to_input_scale"] == pytest.approx(0.8 / (2 * RADIUS), rel=1e-3)


def test_grid_writer_streams_fortran_rows(tmp_path):
    grid = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32)
    w = GridNpzWriter(tmp_path / "g.npz", 6, {"level": np.float64(0.0)})
    for z in range(0, 6, 4):
        w.write_row(z, grid[:, :, z : z + 4])
    w.close()
    assert np.array_equal(np.load(tmp_path / "g.npz")["values"], grid)


def _mesh() -> MeshData:
    m = o3d.geometry.TriangleMesh.create_icosahedron(0.7)
    v = np.asarray(m.vertices)
    c = np.random.default_rng(0).random(v.shape)
    return MeshData(v, np.asarray(m.triangles).astype(np.int64), v / np.linalg.norm(v, axis=1, keepdims=True), c)


@pytest.mark.parametrize("fmt", ["ply", "obj"])
def test_ply_and_obj_encoders_read_back_with_open3d(tmp_path, fmt):
    mesh = _mesh()
    path = tmp_path / f"m.{fmt}"
    path.write_bytes(encode_mesh(mesh, fmt))
    back = o3d.io.read_triangle_mesh(str(path))
    bv, bt, bc = np.asarray(back.vertices), np.asarray(back.triangles), np.asarray(back.vertex_colors)
    # open3d's OBJ reader renumbers vertices: compare each triangle's corner positions and colours
    assert np.allclose(bv[bt], mesh.vertices[mesh.faces], atol=1e-6)
    srgb = np.where(mesh.colours <= 0.0031308, 12.92 * mesh.colours, 1.055 * mesh.colours ** (1 / 2.4) - 0.055)
    assert np.allclose(bc[bt], srgb[mesh.faces], atol=0.6 / 255)


def test_glb_encoder_is_valid_gltf(tmp_path):
    mesh = _mesh()
    blob = encode_mesh(mesh, "glb")
    magic, version, length = struct.unpack("<III", blob[:12])
    assert magic == 0x46546C67 and version == 2 and length == len(blob)
    jlen, jtype = struct.unpack("<II", blob[12:20])
    gltf = json.loads(blob[20 : 20 + jlen])
    blen, btype = struct.unpack("<II", blob[20 + jlen : 28 + jlen])
    assert jtype == 0x4E4F534A and btype == 0x004E4942 and jlen % 4 == 0
    binary = blob[28 + jlen : 28 + jlen + blen]
    prim = gltf["meshes"][0]["primitives"][0]

    def read(accessor_index, dtype, width):
        acc = gltf["accessors"][accessor_index]
        view = gltf["bufferViews"][acc["bufferView"]]
        raw = binary[view["byteOffset"] : view["byteOffset"] + view["byteLength"]]
        return np.frombuffer(raw, dtype=dtype).reshape(acc["count"], width) if width > 1 else np.frombuffer(raw, dtype=dtype)

    pos = read(prim["attributes"]["POSITION"], "<f4", 3)
    assert np.allclose(pos, mesh.vertices, atol=1e-6)
    assert np.allclose(gltf["accessors"][prim["attributes"]["POSITION"]]["max"], mesh.vertices.max(0), atol=1e-6)
    assert np.array_equal(read(prim["indices"], "<u4", 1).reshape(-1, 3), mesh.faces)
    assert np.allclose(read(prim["attributes"]["COLOR_0"], "<f4", 3), mesh.colours, atol=1e-6)  # glTF colours are linear
    assert np.allclose(read(prim["attributes"]["NORMAL"], "<f4", 3), mesh.normals, atol=1e-6)
    trimesh = pytest.importorskip("trimesh", reason="trimesh (a viser dependency) cross-checks the GLB when installed")
    path = tmp_path / "m.glb"
    path.write_bytes(blob)
    scene = trimesh.load(path)
    geom = next(iter(scene.geometry.values()))
    assert geom.faces.shape == mesh.faces.shape


def test_point_cloud_without_normals_and_resume_is_bit_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(800, 3, generator=g, dtype=torch.float64)
    pts = 3.0 + 0.5 * d / d.norm(dim=-1, keepdim=True)
    data = tmp_path / "pts.xyz"
    np.savetxt(data, pts.numpy())
    args = ["train", "sdf", "--data", str(data), "--output-dir", str(tmp_path), *TINY, "--batch-size", "512", "--eval-resolution", "24"]
    assert main([*args, "--name", "full", "--steps", "40", "--checkpoint-every", "20"]) == 0
    shutil.copytree(tmp_path / "full", tmp_path / "cut")  # as if killed right after the step-20 checkpoint
    for p in (tmp_path / "cut" / "checkpoints").glob("step-000040*"):
        p.unlink()
    assert main(["train", "sdf", "--resume", str(tmp_path / "cut")]) == 0
    a = load_file(str(tmp_path / "full" / "checkpoints" / "step-000040.safetensors"))
    b = load_file(str(tmp_path / "cut" / "checkpoints" / "step-000040.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((tmp_path / "full" / "data.json").read_text())
    assert info["kind"] == "points" and info["normals_estimated"] is True


# -- bad input: one line, exit code 2 --------------------------------------------------------------------------


def _bad(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    return str(p)


@pytest.mark.parametrize(
    "argv_fn,message",
    [
        (lambda t: ["train", "sdf", "--data", str(t / "missing.ply")], "does not exist"),
        (lambda t: ["train", "sdf", "--data", _bad(t, "e.xyz", b"")], "empty"),
        (lambda t: ["train", "sdf", "--data", _bad(t, "a.dae", b"<x/>")], "unsupported format"),
        (lambda t: ["train", "sdf", "--data", _bad(t, "n.xyz", b"0 0 0\n1 nan 0\n" + b"1 1 1\n" * 8)], "NaN or infinite"),
        (lambda t: ["train", "sdf", "--data", _bad(t, "c.xyz", b"1 1 1\n" * 10)], "coincide"),
        (lambda t: ["train", "sdf", "--data", _bad(t, "z.obj", b"v 0 0 0\nv 1 1 1\nv 2 2 2\nf 1 2 3\n")], "zero area"),
        (lambda t: ["train", "sdf", "--data", _bad(t, "g.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 9\nproperty float x\nproperty float y\nproperty float z\nend_header\n\0")], "unreadable PLY"),
        (lambda t: ["train", "sdf", "--method", "nope", "--data", "x.ply"], "unknown --method"),
        (lambda t: ["train", "sdf", "--target", "volume", "--data", "x.ply"], "--target must be"),
        (lambda t: ["export", "mesh", "--run", str(t)], "not a FieldForge run directory"),
    ],
    ids=["missing", "empty", "format", "nan", "coincident", "zero-area", "garbage-ply", "method", "target", "not-a-run"],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, capfd, argv_fn, message):
    argv = argv_fn(tmp_path)
    if argv[:2] == ["train", "sdf"]:
        argv += ["--output-dir", str(tmp_path / "runs")]
    code = main(argv)
    out, err = capfd.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fieldforge: error:") and message in lines[0], err
    assert not (tmp_path / "runs").exists()  # input is validated before a run directory is created


@pytest.mark.parametrize(("argv", "option"), [(["train", "sdf"], "--data"), (["export", "mesh"], "--run")], ids=["no-data", "no-run"])
def test_a_missing_required_option_is_a_usage_error_with_exit_code_2(tmp_path, capfd, argv, option):
    """One error line naming the option, exit code 2, nothing written."""
    if argv[0] == "train":
        argv = [*argv, "--output-dir", str(tmp_path / "runs")]
    assert main(argv) == 2
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("fieldforge: error:"), err
    assert option in lines[0] and "required" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_export_refuses_runs_of_other_tasks_and_bad_options(tmp_path, sphere_run, capfd):
    from fieldforge.data.images import encode_image
    from fieldforge.data.synthetic import test_image

    image = tmp_path / "img.png"
    image.write_bytes(encode_image(test_image(8, 8), "png"))
    assert main(["train", "image", "--data", str(image), "--method", "ff", "--steps", "1", "--batch-size", "16", "--field.network.width", "8",
                 "--output-dir", str(tmp_path), "--name", "img", "--progress", "False"]) == 0
    capfd.readouterr()
    assert main(["export", "mesh", "--run", str(tmp_path / "img"), "--device", "cpu"]) == 2  # an image field has no surface
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fieldforge: error:") and "no surface to extract" in err[0], err
    assert not (tmp_path / "img" / "exports").exists()
    assert main(["export", "mesh", "--run", str(sphere_run), "--resolution", "4"]) == 2
    assert "--resolution must be" in capfd.readouterr().err
    assert main(["export", "mesh", "--run", str(sphere_run), "--format", "obj", "--output", str(tmp_path / "x.ply")]) == 2
    assert "does not match --format obj" in capfd.readouterr().err


def test_occupancy_runs_export_their_probability_one_half_surface(tmp_path, sphere_file, capsys):
    args = ["train", "sdf", "--data", str(sphere_file), "--output-dir", str(tmp_path), "--name", "occ", "--target", "occupancy", *TINY]
    assert main(args) == 0
    assert "trained pe (occupancy)" in capsys.readouterr().out
    assert main(["export", "mesh", "--run", str(tmp_path / "occ"), "--resolution", "40", "--format", "glb", "--slices", "False"]) == 0
    line = capsys.readouterr().out
    assert "exported occupancy mesh (level 0) at 40³ from step 120" in line and "watertight" in line and "NOT" not in line
    assert (tmp_path / "occ" / "exports" / "mesh-40-step000120.glb").is_file()
