"""``fieldforge export mesh``: a trained field's surface as PLY / OBJ / GLB, its raw grid as NPZ, and a PNG
of three mid-plane slices.

The field is found through a loader registered for its run type (``RUN_LOADERS``) and meshed according
to what it can do (capabilities, not classes): ``HasSDF`` → the zero level set of the signed distance
(sparse evaluation near the surface); an ``occupancy_logit`` output → logit 0 (probability ½);
``HasDensity`` → a density threshold. Run types with their own mesher (NeRF: colours from the radiance
field, capture frame) are delegated through ``RUN_MESH_EXPORTERS``. Marching cubes runs slab by slab (``fields.meshing.extract_mesh``),
so memory stays bounded at 512³ and 1024³. Vertices are mapped back to the input's coordinates.

Encoders return bytes; every file is written atomically.
"""

import io
import json
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fieldforge.app.atomic import atomic_path, atomic_write_bytes
from fieldforge.app.checkpoint import load_weights
from fieldforge.app.runs import RunDir
from fieldforge.data.errors import InputError
from fieldforge.data.images import encode_image, linear_to_srgb
from fieldforge.fields.capabilities import HasDensity, HasSDF
from fieldforge.fields.meshing import MeshData, extract_mesh, grid_axes, vertex_normals

console = Console(stderr=True)
MeshFormat = Literal["ply", "obj", "glb", "npz"]


# -- encoders (bytes) --------------------------------------------------------------------------------------


def _srgb8(colours: np.ndarray) -> np.ndarray:
    srgb = linear_to_srgb(torch.from_numpy(np.clip(colours, 0.0, 1.0))).numpy()
    return np.round(srgb * 255.0).astype(np.uint8)


def encode_ply(mesh: MeshData) -> bytes:
    """Binary little-endian PLY: float32 positions (+ normals), 8-bit sRGB colours, int32 triangle lists."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.normals is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if mesh.colours is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    v = np.empty(mesh.n_vertices, dtype=fields)
    for i, name in enumerate("xyz"):
        v[name] = mesh.vertices[:, i]
    if mesh.normals is not None:
        for i, name in enumerate(("nx", "ny", "nz")):
            v[name] = mesh.normals[:, i]
    if mesh.colours is not None:
        c = _srgb8(mesh.colours)
        for i, name in enumerate(("red", "green", "blue")):
            v[name] = c[:, i]
    f = np.empty(mesh.n_faces, dtype=[("n", "u1"), ("i", "<i4", (3,))])
    f["n"] = 3
    f["i"] = mesh.faces
    props = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment FieldForge mesh export", f"element vertex {mesh.n_vertices}"]
    header += [f"property {props[t]} {n}" for n, t in fields]
    header += [f"element face {mesh.n_faces}", "property list uchar int vertex_indices", "end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + v.tobytes() + f.tobytes()


def encode_obj(mesh: MeshData) -> bytes:
    """Wavefront OBJ: ``v x y z [r g b]`` (colours sRGB in [0,1], the common extension), ``vn``, ``f a//a ...``."""
    out = io.StringIO()
    out.write("# FieldForge mesh export\n")
    cols = mesh.vertices
    fmt = "v %.7g %.7g %.7g"
    if mesh.colours is not None:
        cols = np.concatenate([mesh.vertices, _srgb8(mesh.colours) / 255.0], axis=1)
        fmt += " %.4g %.4g %.4g"
    np.savetxt(out, cols, fmt=fmt)
    if mesh.normals is not None:
        np.savetxt(out, mesh.normals, fmt="vn %.5g %.5g %.5g")
        f = mesh.faces + 1
        np.savetxt(out, np.repeat(f, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
    else:
        np.savetxt(out, mesh.faces + 1, fmt="f %d %d %d")
    return out.getvalue().encode("ascii")


def encode_glb(mesh: MeshData) -> bytes:
    """Binary glTF 2.0: one triangle primitive with POSITION, NORMAL, COLOR_0 (linear, as glTF specifies)
    and uint32 indices in a single BIN chunk."""
    blobs: list[bytes] = []
    views, accessors = [], []
    attributes: dict[str, int] = {}

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

    attributes["POSITION"] = add(mesh.vertices.astype("<f4"), "VEC3", 5126, 34962, minmax=True)
    if mesh.normals is not None:
        attributes["NORMAL"] = add(mesh.normals.astype("<f4"), "VEC3", 5126, 34962)
    if mesh.colours is not None:
        attributes["COLOR_0"] = add(np.clip(mesh.colours, 0, 1).astype("<f4"), "VEC3", 5126, 34962)
    indices = add(mesh.faces.reshape(-1).astype("<u4"), "SCALAR", 5125, 34963)
    binary = b"".join(blobs)
    gltf = {
        "asset": {"version": "2.0", "generator": "FieldForge"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes, "indices": indices, "mode": 4}]}],
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


def encode_mesh(mesh: MeshData, fmt: Literal["ply", "obj", "glb"]) -> bytes:
    if fmt == "ply":
        return encode_ply(mesh)
    if fmt == "obj":
        return encode_obj(mesh)
    if fmt == "glb":
        return encode_glb(mesh)
    raise ValueError(f"unknown mesh format {fmt!r}")


class GridNpzWriter:
    """Streams a ``resolution³`` float32 grid into an ``.npz`` row by row (memory: one row).

    ``values`` is stored Fortran-ordered so rows of z-planes append contiguously; ``np.load`` returns it
    indexed ``values[x, y, z]``. Also stored: ``bbox`` (the grid's corners, in the coordinates of
    ``coordinates``), ``level``, ``kind``, ``unit_to_input_scale``/``unit_to_input_offset`` when known.
    """

    def __init__(self, path: Path, resolution: int, extras: dict[str, np.ndarray]) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        for name, value in extras.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(value))
            self.zip.writestr(f"{name}.npy", buf.getvalue())
        self.stream = self.zip.open("values.npy", "w", force_zip64=True)
        header = {"descr": "<f4", "fortran_order": True, "shape": (resolution,) * 3}
        np.lib.format.write_array_header_2_0(self.stream, header)

    def write_row(self, z_start: int, values: np.ndarray) -> None:
        self.stream.write(np.asarray(values, dtype="<f4").tobytes(order="F"))

    def close(self) -> None:
        self.stream.close()
        self.zip.close()


# -- slice preview ------------------------------------------------------------------------------------------


def slice_image(
    value_fn: Callable[[torch.Tensor], torch.Tensor],
    bbox: torch.Tensor,
    resolution: int,
    level: float,
    inside: Literal["below", "above"],
    kind: str,
    device: torch.device | str = "cpu",
) -> bytes:
    """PNG of the mid-planes z (x→, y↑), y (x→, z↑) and x (y→, z↑) side by side: blue outside, red
    inside, black level set; SDFs also show iso-distance bands every 2% of the box."""
    ax = grid_axes(bbox, resolution)
    mid = [0.5 * (a[0] + a[-1]) for a in ax]
    u, v = np.meshgrid(np.arange(resolution), np.arange(resolution)[::-1], indexing="xy")  # image rows: up = +
    panels = []
    for a, b, c in ((0, 1, 2), (0, 2, 1), (1, 2, 0)):
        pts = np.zeros((resolution, resolution, 3))
        pts[..., a], pts[..., b], pts[..., c] = ax[a][u], ax[b][v], mid[c]
        with torch.no_grad():
            p = torch.from_numpy(pts.reshape(-1, 3)).float().to(device)
            vals = torch.cat([value_fn(q).float().cpu() for q in p.split(65536)]).numpy().reshape(resolution, resolution)
        panels.append(_colour_slice(vals, level, inside, kind, float(np.linalg.norm(ax[0][-1] - ax[0][0]))))
    gap = np.ones((resolution, 4, 3))
    img = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    return encode_image(torch.from_numpy(img).float(), "png")


def _colour_slice(vals: np.ndarray, level: float, inside: str, kind: str, extent: float) -> np.ndarray:
    d = vals - level if inside == "below" else level - vals  # > 0 outside
    if kind == "sdf":
        t = np.tanh(d / (0.1 * extent))
        bands = 0.85 + 0.15 * np.cos(2 * np.pi * d / (0.02 * extent))
    else:
        t = np.tanh(d / 4.0)
        bands = np.ones_like(d)
    white = np.ones(3)
    blue, red = np.array([0.05, 0.2, 0.8]), np.array([0.8, 0.1, 0.05])
    w = np.abs(t)[..., None]
    rgb = np.where((t > 0)[..., None], (1 - w) * white + w * blue, (1 - w) * white + w * red) * bands[..., None]
    inside_mask = d < 0
    edge = np.zeros_like(inside_mask)
    edge[:-1, :] |= inside_mask[:-1, :] != inside_mask[1:, :]
    edge[:, :-1] |= inside_mask[:, :-1] != inside_mask[:, 1:]
    rgb[edge] = 0.0
    return np.clip(rgb, 0, 1)


# -- loading runs and dispatching on capabilities -----------------------------------------------------------


@dataclass
class LoadedField:
    """What a run loader returns: the field and how to map its coordinates back to the input's."""

    model: torch.nn.Module
    bbox: torch.Tensor
    """Region to mesh, in the field's world coordinates ``(2, 3)``."""
    step: int
    to_input: tuple[float, np.ndarray] | None = None
    """``(scale, offset)`` with ``input = (p − offset)/scale``; ``None``: the field's coordinates are the input's."""
    reference: object | None = None
    """Optional: a ``data.pointclouds.PointCloud`` of the input (unit coordinates) for scores and colours."""
    density_level: float | None = None
    """Default iso-level for density fields."""
    kind_hint: str | None = None


RUN_LOADERS: dict[str, str] = {
    "fieldforge.app.config_sdf:SDFTrainConfig": "fieldforge.app.export_mesh:load_sdf_run",
}
"""Run config type (``module:qualname``) → ``module:function(run, step) -> LoadedField``. Other run types
(e.g. radiance fields) register their loader here; meshing then follows the field's capabilities."""


def load_sdf_run(run: RunDir, step: int | None) -> LoadedField:
    from fieldforge.app.sdf_task import UNIT_BOX, build_sdf_field
    from fieldforge.data.pointclouds import Normalization, load_surface

    config = run.read_config()
    ckpts = dict(run.checkpoints())
    if not ckpts:
        raise InputError(run.path, "run has no checkpoint yet")
    chosen = max(ckpts) if step is None else step
    if chosen not in ckpts:
        raise InputError(run.path, f"no checkpoint at step {step} (have {sorted(ckpts)})")
    info_path = run.path / "data.json"
    if not info_path.is_file():
        raise InputError(run.path, "run has no data.json (the input's normalization); was it created by 'train sdf'?")
    info = json.loads(info_path.read_text())
    norm = Normalization.from_dict(info["normalization"])
    field = build_sdf_field(config)
    load_weights(ckpts[chosen], field)
    reference = None
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = load_surface(config.data, config.padding)
        if abs(reference.normalization.scale - norm.scale) > 1e-9 * norm.scale:
            reference = None  # the input file changed since training
    except InputError:
        reference = None  # the input moved; the export itself does not need it
    return LoadedField(field.eval(), UNIT_BOX.clone(), chosen, (norm.scale, np.asarray(norm.offset)), reference, kind_hint=config.target)


RUN_MESH_EXPORTERS: dict[str, str] = {
    "fieldforge.app.config_nerf:NerfTrainConfig": "fieldforge.app.export_mesh:export_nerf_run",
}
"""Run config type → ``module:function(ExportMeshConfig) -> (path, metrics)`` for runs whose meshing
needs more than a level set of the field (radiance fields: colours seen along the normal, capture frame)."""


def export_nerf_run(config: "ExportMeshConfig") -> tuple[Path, dict]:
    """``export mesh`` on a NeRF run: the radiance engineer's density mesher (``app.export_nerf``)."""
    from fieldforge.app.export_nerf import export_nerf_mesh
    from fieldforge.app.trainer import resolve_device

    if config.format == "npz":
        raise InputError(None, "--format npz exports SDF/occupancy grids; NeRF runs export ply, obj or glb meshes")
    frame = "capture" if config.frame == "input" else "normalized"
    device = str(resolve_device(config.device))
    return export_nerf_mesh(config.run, config.resolution, config.level, frame, config.step, config.output, config.format, device)  # type: ignore[arg-type]


def _config_key(config: object) -> str:
    return f"{type(config).__module__}:{type(config).__qualname__}"


def load_run_field(run: RunDir, step: int | None) -> LoadedField:
    config = run.read_config()
    key = _config_key(config)
    if key not in RUN_LOADERS:
        raise InputError(run.path, f"cannot export a mesh from a {type(config).__name__} run (mesh export supports SDF, occupancy and NeRF runs)")
    module, _, fn = RUN_LOADERS[key].partition(":")
    return getattr(import_module(module), fn)(run, step)


@dataclass
class MeshSource:
    value_fn: Callable[[torch.Tensor], torch.Tensor]
    level: float
    inside: Literal["below", "above"]
    kind: str
    lipschitz_ok: bool


def mesh_source(loaded: LoadedField, level: float | None) -> MeshSource:
    """How to mesh a field, from its capabilities: SDF zero set, occupancy logit, or density threshold."""
    model = loaded.model
    if isinstance(model, HasSDF):
        return MeshSource(model.signed_distance, 0.0 if level is None else level, "below", "sdf", True)
    probe = model(loaded.bbox.mean(dim=0, keepdim=True).to(next(iter(model.buffers()), loaded.bbox).device))
    if getattr(probe, "occupancy_logit", None) is not None:
        return MeshSource(lambda p: model(p).occupancy_logit, 0.0 if level is None else level, "above", "occupancy", False)
    if isinstance(model, HasDensity):
        lvl = level if level is not None else loaded.density_level
        if lvl is None:
            raise InputError(None, "density fields need --level (the density threshold of the surface)")
        return MeshSource(model.density, float(lvl), "above", "density", False)
    raise InputError(None, "this field has no surface to extract (no signed distance, occupancy or density)")


# -- the command --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportMeshConfig:
    """Extract a trained field's surface with marching cubes (memory-bounded, slab by slab)."""

    run: Path = Path("")
    """Run directory of a shape (SDF/occupancy) field, or of a NeRF (meshed at a density level)."""
    resolution: int = 512
    """Grid samples per axis over the field's box (512³ and 1024³ run in bounded memory)."""
    format: MeshFormat = "ply"
    """ply (binary, normals, colours), obj, glb (glTF 2.0 binary), or npz (the raw value grid)."""
    output: Path | None = None
    """Output file (default: <run>/exports/mesh-<resolution>.<format>)."""
    step: int | None = None
    """Checkpoint step to export (default: newest)."""
    level: float | None = None
    """Iso-level (default: 0 for SDF and occupancy logits; density fields need one)."""
    colours: Literal["auto", "none", "nearest"] = "auto"
    """Vertex colours: 'nearest' input point's colour; 'auto' = nearest when the input has colours."""
    frame: Literal["input", "unit"] = "input"
    """Vertex coordinates: the input's own ('input'), or the normalized unit cube ('unit')."""
    lipschitz: float = 2.0
    """Bound on |∇f| of SDF fields for sparse evaluation near the surface (0: evaluate every grid point)."""
    chunk: int = 262144
    """Points per field evaluation (bounds activation memory)."""
    slices: bool = True
    """Also write a PNG of the three mid-plane slices next to the output."""
    score: bool = True
    """Score the mesh against the training input (Chamfer, F-score, normal consistency) when it is available."""
    device: Literal["auto", "cpu", "cuda"] = "auto"


def export_mesh(config: ExportMeshConfig) -> tuple[Path, dict]:
    from fieldforge.app.trainer import resolve_device

    if config.resolution < 8 or config.resolution > 4096:
        raise InputError(None, f"--resolution must be in [8, 4096], got {config.resolution}")
    if config.chunk < 1:
        raise InputError(None, f"--chunk must be positive, got {config.chunk}")
    run = RunDir.open(config.run)
    delegate = RUN_MESH_EXPORTERS.get(_config_key(run.read_config()))
    if delegate is not None:
        module, _, fn = delegate.partition(":")
        return getattr(import_module(module), fn)(config)
    loaded = load_run_field(run, config.step)
    device = resolve_device(config.device)
    loaded.model.to(device)
    src = mesh_source(loaded, config.level)
    out = config.output or run.exports_dir / f"mesh-{config.resolution}.{config.format}"
    if out.suffix.lower() != f".{config.format}":
        raise InputError(out, f"output extension does not match --format {config.format}")
    lipschitz = config.lipschitz if (src.lipschitz_ok and config.lipschitz > 0 and config.format != "npz") else None
    columns = [TextColumn("[bold]marching cubes"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn()]
    writer_ctx = atomic_path(out) if config.format == "npz" else None
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("mc", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        if writer_ctx is not None:
            with writer_ctx as tmp:
                extras = {"bbox": loaded.bbox.double().numpy(), "level": np.float64(src.level), "kind": np.str_(src.kind)}
                if loaded.to_input is not None:
                    extras["unit_to_input_scale"] = np.float64(loaded.to_input[0])
                    extras["unit_to_input_offset"] = np.asarray(loaded.to_input[1], dtype=np.float64)
                writer = GridNpzWriter(tmp, config.resolution, extras)
                try:
                    mesh, stats = extract_mesh(
                        src.value_fn, loaded.bbox, config.resolution, src.level, src.inside, chunk=config.chunk,
                        device=device, on_row=writer.write_row, progress=tick,
                    )  # fmt: skip
                finally:
                    writer.close()
        else:
            mesh, stats = extract_mesh(
                src.value_fn, loaded.bbox, config.resolution, src.level, src.inside, chunk=config.chunk,
                lipschitz=lipschitz, device=device, progress=tick,
            )  # fmt: skip
    if mesh.n_faces == 0 and config.format != "npz":
        raise InputError(run.path, f"the field has no surface at level {src.level:g} inside its box (nothing to mesh)")
    metrics: dict = {"step": loaded.step, "vertices": mesh.n_vertices, "faces": mesh.n_faces, "kind": src.kind}
    metrics["evaluated_fraction"] = stats["evaluated"] / stats["dense"]
    metrics["watertight"] = mesh.is_watertight() if mesh.n_faces else False
    ref = loaded.reference
    if mesh.n_faces and config.score and ref is not None:
        from fieldforge.app.sdf_task import score_mesh, shape_reference

        reference = shape_reference(ref, 100_000, 11)
        diag = float(torch.linalg.norm(ref.points.max(0).values - ref.points.min(0).values))
        scores = score_mesh(mesh, reference, diag, 100_000)
        scale = loaded.to_input[0] if loaded.to_input is not None else 1.0
        metrics.update(chamfer_l1=scores["chamfer_l1"] / scale, chamfer_l1_rel=scores["chamfer_l1_rel"], f_score=scores["f_score"])
        if "normal_consistency" in scores:
            metrics["normal_consistency"] = scores["normal_consistency"]
    if mesh.n_faces and config.format != "npz":
        want = config.colours
        if want == "nearest" and (ref is None or getattr(ref, "colours", None) is None):
            raise InputError(None, "--colours nearest needs the training input with colours (it has none, or it moved)")
        if want in ("auto", "nearest") and ref is not None and getattr(ref, "colours", None) is not None:
            from fieldforge.fields.geometry_metrics import nearest

            _, idx = nearest(torch.from_numpy(mesh.vertices), ref.points)
            mesh.colours = ref.colours.double().numpy()[idx.numpy()]
        if config.frame == "input" and loaded.to_input is not None:
            mesh = mesh.transformed(loaded.to_input[0], loaded.to_input[1])
        mesh.normals = vertex_normals(mesh.vertices, mesh.faces)
        atomic_write_bytes(out, encode_mesh(mesh, config.format))  # type: ignore[arg-type]
    if config.slices:
        png = slice_image(src.value_fn, loaded.bbox, min(config.resolution, 512), src.level, src.inside, src.kind, device)
        atomic_write_bytes(out.with_name(out.stem + "-slices.png"), png)
    return out, metrics
