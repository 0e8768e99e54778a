"""``fieldforge export mesh``: a trained field's surface as PLY / OBJ / GLB, its raw grid as NPZ, and a PNG
of three mid-plane slices, for any run (``load_run``).

The field is meshed according to what it can do (capabilities, not classes): ``HasSDF`` → the zero level
set of the signed distance (sparse evaluation near the surface); an ``occupancy_logit`` output → logit 0
(probability ½); ``HasDensity`` → a density threshold (default: σ at which a shell 1% of the box diagonal
thick is half opaque), with vertex colours seen along the inward normal when it is ``Renderable``.
Marching cubes runs slab by slab (``fields.meshing.extract_mesh``), so memory stays bounded at 512³ and
1024³. Vertices are mapped back to the user's coordinates (the input file's, or the capture's world).
Every file is written atomically.
"""

import io
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fieldforge.app.atomic import atomic_path, atomic_write_bytes
from fieldforge.app.loader import LoadedRun, load_run
from fieldforge.app.slice_preview import slice_image
from fieldforge.app.trainer import resolve_device
from fieldforge.data import formats
from fieldforge.data.errors import InputError
from fieldforge.data.formats import ColourSpace
from fieldforge.fields.capabilities import HasDensity, HasSDF, Renderable
from fieldforge.fields.meshing import MeshData, extract_mesh, vertex_normals

console = Console(stderr=True)
MeshFormat = Literal["ply", "obj", "glb", "npz"]


# -- encoders (bytes) --------------------------------------------------------------------------------------


def encode_mesh(mesh: MeshData, fmt: Literal["ply", "obj", "glb"], colour_space: ColourSpace = "linear") -> bytes:
    """A mesh as PLY / OBJ / GLB bytes (the encoders of ``data.formats``); its colours are linear unless
    ``colour_space`` says they are sRGB-encoded stored values."""
    return formats.encode_mesh(
        fmt, mesh.vertices, mesh.faces, normals=mesh.normals, colours=mesh.colours, colour_space=colour_space
    )


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


# -- what to mesh, from capabilities -------------------------------------------------------------------------


@dataclass
class MeshSource:
    value_fn: Callable[[torch.Tensor], torch.Tensor]
    level: float
    inside: Literal["below", "above"]
    kind: str
    """'sdf', 'occupancy' or 'density'."""
    lipschitz_ok: bool


def region(model: torch.nn.Module) -> torch.Tensor:
    """The box to mesh ``(2, 3)``: a scene model's scene box, else the field's own box."""
    box = getattr(model, "scene_box", None)
    return (box if box is not None else model.bbox).detach().float().cpu()


def default_density_level(box: torch.Tensor) -> float:
    """σ at which a shell 1% of the box diagonal thick is 50% opaque: ``ln 2 / (0.01·diag)``."""
    return math.log(2.0) / (0.01 * float((box[1] - box[0]).norm()))


def skipping_density(model: torch.nn.Module, chunk: int = 65536) -> Callable[[torch.Tensor], torch.Tensor]:
    """``density`` evaluated only where the model's occupancy grid is occupied (zero elsewhere)."""

    @torch.no_grad()
    def fn(points: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(points.shape[0], device=points.device)
        idx = torch.nonzero(model.occupied(points)).squeeze(-1)
        for i in range(0, idx.shape[0], chunk):
            sel = idx[i : i + chunk]
            out[sel] = model.density(points[sel]).float()
        return out

    return fn


def mesh_source(model: torch.nn.Module, box: torch.Tensor, level: float | None) -> MeshSource:
    """How to mesh a field, from its capabilities: SDF zero set, occupancy logit, or density threshold."""
    if isinstance(model, HasSDF):
        return MeshSource(model.signed_distance, 0.0 if level is None else level, "below", "sdf", True)
    if isinstance(model, HasDensity):
        lvl = default_density_level(box) if level is None else float(level)
        fn = skipping_density(model) if hasattr(model, "occupied") else model.density
        return MeshSource(fn, lvl, "above", "density", False)
    device = next(iter(model.buffers()), box).device
    probe = model(box.mean(dim=0, keepdim=True).to(device))
    if getattr(probe, "occupancy_logit", None) is not None:
        return MeshSource(lambda p: model(p).occupancy_logit, 0.0 if level is None else level, "above", "occupancy", False)
    raise InputError(None, "this run's field has no surface to extract (no signed distance, occupancy or density)")


@torch.no_grad()
def view_colours(model: Renderable, mesh: MeshData, box: torch.Tensor, device: torch.device, chunk: int = 65536) -> np.ndarray:
    """The radiance field's colour at each vertex seen along the inward normal, like a camera facing it."""
    v = torch.from_numpy(mesh.vertices.astype(np.float32))
    if mesh.normals is not None:
        n = torch.nn.functional.normalize(torch.from_numpy(mesh.normals.astype(np.float32)), dim=-1)
    else:
        n = torch.nn.functional.normalize(v - box.mean(0), dim=-1)
    cols = [model.rgb_density(v[i : i + chunk].to(device), -n[i : i + chunk].to(device))[0].float().cpu() for i in range(0, v.shape[0], chunk)]
    return torch.cat(cols).clamp(0, 1).numpy()


# -- the command --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportMeshConfig:
    """Extract a trained field's surface with marching cubes (memory-bounded, slab by slab)."""

    run: Path
    """Run directory: a shape (SDF / occupancy) field, or a radiance field (meshed at a density level)."""
    resolution: int = 512
    """Grid samples per axis over the field's box (512³ and 1024³ run in bounded memory)."""
    format: MeshFormat = "ply"
    """ply (binary, normals, colours), obj, glb (glTF 2.0 binary), or npz (the raw value grid)."""
    output: Path | None = None
    """Output file (default: <run>/exports/mesh-<resolution>-step<N>.<format>)."""
    step: int | None = None
    """Checkpoint step to export (default: newest)."""
    level: float | None = None
    """Iso-level (default: 0 for SDF and occupancy logits; for densities the σ at which a shell 1% of the box diagonal thick is half opaque)."""
    colours: Literal["auto", "none", "nearest", "view"] = "auto"
    """Vertex colours: 'nearest' input point's colour (shape runs); 'view' the radiance field's colour seen along the normal; 'auto' = whichever the run has."""
    frame: Literal["input", "unit"] = "input"
    """Vertex coordinates: the user's own (the input file's or the capture's world frame), or FieldForge's normalized frame ('unit')."""
    lipschitz: float = 2.0
    """Bound on |∇f| of SDF fields for sparse evaluation near the surface (0: evaluate every grid point)."""
    chunk: int = 262144
    """Points per field evaluation (bounds activation memory)."""
    slices: bool = True
    """Also write a PNG of the three mid-plane slices next to the output."""
    score: bool = True
    """Score the mesh against the training input (Chamfer, F-score, normal consistency) when it is available."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the field is evaluated ('auto': CUDA when present)."""


def _progress() -> Progress:
    columns = [TextColumn("[bold]marching cubes"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn()]
    return Progress(*columns, console=console, transient=True)


def export_mesh(config: ExportMeshConfig) -> tuple[Path, dict]:
    if config.resolution < 8 or config.resolution > 4096:
        raise InputError(None, f"--resolution must be in [8, 4096], got {config.resolution}")
    if config.chunk < 1:
        raise InputError(None, f"--chunk must be positive, got {config.chunk}")
    device = resolve_device(config.device)
    loaded = load_run(config.run, config.step, device)
    if loaded.info.get("ndc"):
        raise InputError(loaded.run.path, "meshing a forward-facing (NDC) radiance field is not supported: its box is in NDC space")
    model, box = loaded.model, region(loaded.model)
    src = mesh_source(model, box, config.level)
    out = config.output or loaded.run.exports_dir / f"mesh-{config.resolution}-step{loaded.step:06d}.{config.format}"
    if out.suffix.lower() != f".{config.format}":
        raise InputError(out, f"output extension does not match --format {config.format}")
    reference = loaded.task.reference_surface(loaded.config, loaded.info) if (config.score or config.colours in ("auto", "nearest")) else None
    if config.colours == "nearest" and (reference is None or reference.colours is None):
        raise InputError(None, "--colours nearest needs the training input with colours (it has none, or it moved)")
    if config.colours == "view" and not isinstance(model, Renderable):
        raise InputError(None, "--colours view needs a radiance field (this run's field has no colour)")
    lipschitz = config.lipschitz if (src.lipschitz_ok and config.lipschitz > 0 and config.format != "npz") else None
    with _progress() as progress:
        bar = progress.add_task("mc", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        if config.format == "npz":
            with atomic_path(out) as tmp:
                extras = {"bbox": box.double().numpy(), "level": np.float64(src.level), "kind": np.str_(src.kind)}
                if loaded.frame is not None:
                    extras["unit_to_input_scale"] = np.float64(loaded.frame.scale)  # input = (unit − offset) / scale
                    extras["unit_to_input_offset"] = np.asarray(loaded.frame.offset, dtype=np.float64)
                writer = GridNpzWriter(tmp, config.resolution, extras)
                try:
                    mesh, stats = extract_mesh(src.value_fn, box, config.resolution, src.level, src.inside, chunk=config.chunk,
                                               device=device, on_row=writer.write_row, progress=tick)
                finally:
                    writer.close()
        else:
            mesh, stats = extract_mesh(src.value_fn, box, config.resolution, src.level, src.inside, chunk=config.chunk,
                                       lipschitz=lipschitz, device=device, progress=tick)
    if mesh.n_faces == 0 and config.format != "npz":
        raise InputError(loaded.run.path, f"the field has no surface at level {src.level:g} inside its box (nothing to mesh)")
    metrics: dict = {"step": loaded.step, "vertices": mesh.n_vertices, "faces": mesh.n_faces, "kind": src.kind, "level": src.level}
    metrics["evaluated_fraction"] = stats["evaluated"] / stats["dense"]
    metrics["watertight"] = mesh.is_watertight() if mesh.n_faces else False
    if mesh.n_faces and config.score and reference is not None:
        metrics.update(score_against(mesh, reference, loaded))
    if mesh.n_faces and config.format != "npz":
        colour_space: ColourSpace = "linear"
        use_view = isinstance(model, Renderable) and config.colours in ("auto", "view")
        if use_view:
            mesh.colours = view_colours(model, mesh, box, device)
            colour_space = "srgb" if loaded.info.get("transfer", "srgb") == "srgb" else "linear"  # the capture's stored values
        elif config.colours in ("auto", "nearest") and reference is not None and reference.colours is not None:
            from fieldforge.fields.geometry_metrics import nearest

            _, idx = nearest(torch.from_numpy(mesh.vertices), reference.points)
            mesh.colours = reference.colours.double().numpy()[idx.numpy()]
        if config.frame == "input" and loaded.frame is not None:
            mesh = MeshData(loaded.frame.invert(mesh.vertices), mesh.faces, colours=mesh.colours)
        mesh.normals = vertex_normals(mesh.vertices, mesh.faces)
        atomic_write_bytes(out, encode_mesh(mesh, config.format, colour_space))  # type: ignore[arg-type]
    if config.slices:
        png = slice_image(src.value_fn, box, min(config.resolution, 512), src.level, src.inside, src.kind, device)
        atomic_write_bytes(out.with_name(out.stem + "-slices.png"), png)
    return out, metrics


def score_against(mesh: MeshData, reference, loaded: LoadedRun) -> dict:
    """Chamfer (in input units), F-score and normal consistency of a unit-frame mesh against the training input."""
    from fieldforge.app.tasks.sdf import score_mesh, shape_reference

    sign_rays = loaded.config.sampling.sign_rays
    ref = shape_reference(reference, 100_000, sign_rays)
    diag = float(torch.linalg.norm(reference.points.max(0).values - reference.points.min(0).values))
    scores = score_mesh(mesh, ref, diag, 100_000)
    scale = loaded.frame.scale if loaded.frame is not None else 1.0
    out = {"chamfer_l1": scores["chamfer_l1"] / scale, "chamfer_l1_rel": scores["chamfer_l1_rel"], "f_score": scores["f_score"]}
    if "normal_consistency" in scores:
        out["normal_consistency"] = scores["normal_consistency"]
    return out
