"""Point clouds and triangle meshes: read, validate, normalize; SDF / occupancy / implicit-loss samples.

Formats (open3d, plus a plain-text reader): PLY (mesh or points), PCD, XYZ / XYZN / XYZRGB / PTS (text),
OBJ, STL, OFF. Everything is mapped into the unit cube by one isotropic similarity, recorded as a
:class:`~fieldforge.data.transforms.Similarity` without rotation (``unit = scale·(world + translation)``),
so signed distances stay distances and exports map back to the input's coordinates exactly.

Sign convention: signed distance is **negative inside**, occupancy is 1 inside. For meshes, inside is
decided by open3d's ray-parity test (``compute_occupancy``) with ``sign_rays`` random rays and a majority
vote. That is exact for closed (watertight) meshes; for open meshes "inside" means "most rays cross the
surface an odd number of times", which is ambiguous near holes, and loading warns about it.
Colours are linear floats in ``[0,1]`` (8-bit file colours are sRGB-decoded on read).
"""

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from fieldforge.data.errors import InputError, require_file
from fieldforge.data.images import srgb_to_linear
from fieldforge.data.transforms import Similarity

MESH_SUFFIXES = (".obj", ".stl", ".off")
TEXT_SUFFIXES = (".xyz", ".xyzn", ".xyzrgb", ".pts")
SUFFIXES = (".ply", ".pcd", *TEXT_SUFFIXES, *MESH_SUFFIXES)
MIN_POINTS = 8


class NonWatertightWarning(UserWarning):
    """The mesh has boundary or non-manifold edges: inside/outside (the SDF sign) is ambiguous near them."""


@dataclass(frozen=True)
class PointCloud:
    """Points (and, for a mesh, triangles) in unit-cube coordinates, with the normalization that put them there."""

    points: Float[Tensor, "n 3"]
    """Positions in the unit cube, float32. For a mesh: its vertices."""
    normals: Float[Tensor, "n 3"] | None
    """Unit normals (outward), or ``None``."""
    colours: Float[Tensor, "n 3"] | None
    """Linear RGB in ``[0,1]``, or ``None``."""
    triangles: Int[Tensor, "m 3"] | None
    """Vertex indices of a triangle mesh (counter-clockwise seen from outside), or ``None`` for a point cloud."""
    normalization: Similarity
    """Input (world) coordinates → unit cube."""
    path: Path | None = None
    normals_estimated: bool = False
    """Normals were estimated (not read from the file)."""
    watertight: bool | None = None
    """Meshes: every edge has exactly two triangles (closed, manifold). ``None`` for point clouds."""

    @property
    def is_mesh(self) -> bool:
        return self.triangles is not None

    @property
    def n_points(self) -> int:
        return self.points.shape[0]

    def world_points(self) -> np.ndarray:
        return self.normalization.invert(self.points.double().numpy())

    def world_diagonal(self) -> float:
        """Bounding-box diagonal in input (world) units."""
        p = self.world_points()
        return float(np.linalg.norm(p.max(axis=0) - p.min(axis=0)))


# -- reading ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _captured_native_output() -> Iterator[io.StringIO]:
    """Silence C/C++ prints (open3d/RPly write to fds 1 and 2) and collect them, for error messages."""
    import open3d as o3d

    sink = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
                yield sink
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            sink.write(" ".join(line.strip() for line in text.splitlines() if line.strip()))


def _native_hint(sink: io.StringIO) -> str:
    msg = sink.getvalue().replace("\x1b[1;33m", "").replace("\x1b[0;m", "").strip()
    return f" ({msg[:200]})" if msg else ""


def _parse_text(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Whitespace/comma-separated columns: x y z [nx ny nz] [r g b] (see :func:`load_surface`)."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputError(path, "not a plain-text point file (binary content)") from None
    lines = [ln.split("#", 1)[0].replace(",", " ").strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if lines and len(lines[0].split()) == 1:  # PTS header: the point count
        lines = lines[1:]
    if not lines:
        raise InputError(path, "contains no points")
    try:
        data = np.loadtxt(io.StringIO("\n".join(lines)), dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InputError(path, f"not a numeric point table ({e})") from None
    suffix, cols = path.suffix.lower(), data.shape[1]
    xyz, normals, colours = data[:, :3], None, None
    if cols == 3:
        pass
    elif cols == 4:  # x y z intensity
        pass
    elif cols == 6:
        extra = data[:, 3:6]
        if suffix == ".xyzn":
            normals = extra
        elif suffix == ".xyzrgb":
            colours = extra
        elif np.all(np.isfinite(extra)) and np.allclose(np.linalg.norm(extra, axis=1), 1.0, atol=1e-2):
            normals = extra
        elif np.all(np.isfinite(extra)) and extra.min() >= 0 and extra.max() <= 255:
            colours = extra
        else:
            raise InputError(path, "6 columns that are neither unit normals nor colours; use .xyzn (normals) or .xyzrgb (colours)")
    elif cols == 7:  # PTS: x y z intensity r g b
        colours = data[:, 4:7]
    elif cols == 9:  # x y z nx ny nz r g b
        normals, colours = data[:, 3:6], data[:, 6:9]
    else:
        raise InputError(path, f"unsupported column count {cols} (expected 3, 4, 6, 7 or 9)")
    if colours is not None:
        colours = colours / 255.0 if colours.max() > 1.0 else colours
    return xyz, normals, colours


def _read_open3d(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(vertices, normals, colours in file encoding [0,1], triangles) via open3d; silent on failure."""
    import open3d as o3d

    suffix = path.suffix.lower()
    if suffix == ".ply":
        with open(path, "rb") as f:
            if f.read(4) not in (b"ply\n", b"ply\r"):
                raise InputError(path, "not a PLY file (missing 'ply' magic line)")
    triangles = None
    with _captured_native_output() as sink:
        mesh = None
        if suffix in (".ply", *MESH_SUFFIXES):
            mesh = o3d.io.read_triangle_mesh(str(path), enable_post_processing=False, print_progress=False)
        if mesh is not None and len(mesh.triangles) > 0:
            # STL stores each triangle's corners separately; merging makes edges shared (needed for watertightness).
            mesh.remove_duplicated_vertices()
            v = np.asarray(mesh.vertices)
            n = np.asarray(mesh.vertex_normals) if mesh.has_vertex_normals() else None
            c = np.asarray(mesh.vertex_colors) if mesh.has_vertex_colors() else None
            triangles = np.asarray(mesh.triangles).astype(np.int64)
        elif suffix in (".ply", ".pcd"):
            pc = o3d.io.read_point_cloud(str(path), remove_nan_points=False, remove_infinite_points=False)
            v = np.asarray(pc.points)
            n = np.asarray(pc.normals) if pc.has_normals() else None
            c = np.asarray(pc.colors) if pc.has_colors() else None
        else:
            v = np.asarray(mesh.vertices) if mesh is not None else np.zeros((0, 3))
            n = c = None
    hint = _native_hint(sink)
    if v.shape[0] == 0:
        raise InputError(path, f"no points could be read (empty or unreadable {suffix[1:].upper()} file){hint}")
    if "fail" in hint.lower() or "error" in hint.lower():  # open3d returns partial garbage on read errors
        raise InputError(path, f"unreadable {suffix[1:].upper()} file{hint}")
    return v, n, c, triangles


def _check_normals(path: Path, normals: np.ndarray | None, n: int) -> np.ndarray | None:
    if normals is None or normals.shape != (n, 3):
        return None
    if not np.isfinite(normals).all():
        raise InputError(path, "normals contain NaN or infinite values")
    length = np.linalg.norm(normals, axis=1)
    if (length < 1e-8).any():
        warnings.warn(f"{path}: {(length < 1e-8).sum()} zero-length normals; ignoring the file's normals", stacklevel=3)
        return None
    return normals / length[:, None]


def load_surface(path: str | Path, padding: float = 0.1) -> PointCloud:
    """Read a point cloud or triangle mesh and normalize it into the unit cube.

    PLY/OBJ/OFF with faces and STL are meshes; PLY/PCD without faces, OBJ/OFF without faces and the text
    formats are point clouds. Text files hold one point per line, columns ``x y z`` optionally followed by
    normals (``.xyzn``, or 6 columns of unit vectors), colours (``.xyzrgb``, or 6 columns in 0–255),
    ``intensity r g b`` (7 columns, PTS) or ``nx ny nz r g b`` (9 columns); a first line holding only a
    count (PTS) and ``#`` comments are skipped.

    Args:
        padding: empty margin left on each side of the unit cube (fraction of its side).

    Raises:
        InputError: missing/empty/unsupported file, unreadable content, fewer than 8 points, NaN or
            infinite coordinates, all points coincident, or a mesh whose triangles all have zero area.
    """
    p = require_file(path, "point cloud or mesh file")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(p, f"unsupported format {suffix or '(no extension)'}; expected one of {', '.join(SUFFIXES)}")
    if not 0.0 <= padding < 0.5:
        raise InputError(None, f"padding must be in [0, 0.5), got {padding}")
    if suffix in TEXT_SUFFIXES:
        vertices, normals, colours, triangles = (*_parse_text(p), None)
    else:
        vertices, normals, colours, triangles = _read_open3d(p)
    vertices = np.asarray(vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise InputError(p, f"{bad} of {len(vertices)} points have NaN or infinite coordinates")
    if triangles is None and vertices.shape[0] < MIN_POINTS:
        raise InputError(p, f"only {vertices.shape[0]} points; need at least {MIN_POINTS}")
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    if float(extent.max()) <= 1e-12 * max(1.0, float(np.abs(vertices).max())):
        raise InputError(p, "degenerate input: all points coincide")
    check_spread(p, vertices, extent, triangles is not None)
    watertight = None
    if triangles is not None:
        if triangles.min() < 0 or triangles.max() >= len(vertices):
            raise InputError(p, "triangles reference vertices that do not exist")
        area = triangle_areas(vertices, triangles)
        keep = area > 1e-12 * float(extent.max()) ** 2
        if not keep.any():
            raise InputError(p, "degenerate mesh: every triangle has zero area")
        triangles = triangles[keep]
        watertight = is_closed_manifold(triangles)
        if not watertight:
            warnings.warn(
                f"{p}: mesh is not watertight (boundary or non-manifold edges); inside/outside comes from a "
                "majority vote of ray-parity tests and is ambiguous near holes",
                NonWatertightWarning,
                stacklevel=2,
            )
    normals = _check_normals(p, normals, len(vertices))
    if colours is not None:
        if colours.shape != vertices.shape or not np.isfinite(colours).all():
            colours = None
        else:
            colours = srgb_to_linear(torch.from_numpy(np.clip(colours, 0.0, 1.0))).numpy()
    norm = Similarity.fit_unit_cube(vertices, padding)
    unit = norm.apply(vertices)
    return PointCloud(
        points=torch.from_numpy(unit).float(),
        normals=None if normals is None else torch.from_numpy(normals).float(),
        colours=None if colours is None else torch.from_numpy(colours).float(),
        triangles=None if triangles is None else torch.from_numpy(triangles.astype(np.int64)),
        normalization=norm,
        path=p,
        watertight=watertight,
    )


MAX_COORDINATE = 1e30
"""Largest accepted |coordinate|: exports map the unit cube back to the file's frame in float32 (max ≈ 3.4e38)."""


def check_spread(path: Path, vertices: np.ndarray, extent: np.ndarray, is_mesh: bool) -> None:
    """Refuse coordinates too large to map back (1e308: the extent overflows) and point clouds on one line
    (a line has no surface to reconstruct; meshes are checked by their triangle areas)."""
    largest = float(np.abs(vertices).max())
    if not np.isfinite(extent).all() or largest > MAX_COORDINATE:
        raise InputError(path, f"coordinates up to {largest:.3g} are too large (the limit is {MAX_COORDINATE:.0e}); rescale the file")
    if not is_mesh:
        centred = (vertices - vertices.mean(axis=0)) / float(extent.max())
        spread = np.sqrt(np.maximum(np.linalg.eigvalsh(centred.T @ centred / len(centred)), 0.0))  # ascending
        if spread[1] <= 1e-6 * spread[2]:
            raise InputError(path, "degenerate input: all points lie on one line (a surface needs points spread in two directions)")


# -- geometry helpers ----------------------------------------------------------------------------------------


def triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def is_closed_manifold(triangles: np.ndarray) -> bool:
    """Every undirected edge is shared by exactly two triangles (a closed 2-manifold surface)."""
    t = triangles.astype(np.int64)
    a = np.concatenate([t[:, 0], t[:, 1], t[:, 2]])
    b = np.concatenate([t[:, 1], t[:, 2], t[:, 0]])
    n = int(t.max()) + 1
    _, counts = np.unique(np.minimum(a, b) * n + np.maximum(a, b), return_counts=True)
    return bool((counts == 2).all())


def estimate_normals(points: Float[Tensor, "n 3"], k: int = 10) -> Float[Tensor, "n 3"]:
    """Unit normals from PCA of the ``k`` nearest neighbours, oriented consistently (open3d's
    minimum-spanning-tree propagation) and then globally flipped to point away from the centroid."""
    import open3d as o3d

    pts = points.double().numpy()
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    with _captured_native_output():
        pc.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(k))
        pc.orient_normals_consistent_tangent_plane(k)
    n = np.asarray(pc.normals).copy()
    if float(((pts - pts.mean(axis=0)) * n).sum(axis=1).mean()) < 0:
        n = -n
    return torch.from_numpy(n / np.linalg.norm(n, axis=1, keepdims=True).clip(1e-12)).float()


def with_normals(cloud: PointCloud, k: int = 10) -> PointCloud:
    """The cloud with normals: kept if present, from the triangles for a mesh, else estimated."""
    if cloud.normals is not None:
        return cloud
    if cloud.is_mesh:
        import open3d as o3d

        m = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(cloud.points.double().numpy()), o3d.utility.Vector3iVector(cloud.triangles.numpy())
        )
        m.compute_vertex_normals()
        return replace(cloud, normals=torch.from_numpy(np.asarray(m.vertex_normals)).float())
    return replace(cloud, normals=estimate_normals(cloud.points, k), normals_estimated=True)


def sample_surface(
    vertices: Float[Tensor, "v 3"], triangles: Int[Tensor, "m 3"], n: int, seed: int = 0
) -> tuple[Float[Tensor, "n 3"], Float[Tensor, "n 3"]]:
    """``n`` points uniformly distributed over the surface area (and their face normals)."""
    v = vertices.double().numpy()
    t = triangles.numpy()
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    cross = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(cross, axis=1)
    rng = np.random.default_rng(seed)
    face = rng.choice(len(t), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w0, w1, w2 = 1 - s, s * (1 - r2), s * r2
    pts = w0[:, None] * a[face] + w1[:, None] * b[face] + w2[:, None] * c[face]
    nrm = cross[face] / np.linalg.norm(cross[face], axis=1, keepdims=True).clip(1e-300)
    return torch.from_numpy(pts).float(), torch.from_numpy(nrm).float()


class MeshDistance:
    """Exact distance to a triangle mesh (open3d ``RaycastingScene``), sign by majority ray parity."""

    def __init__(self, vertices: Float[Tensor, "v 3"], triangles: Int[Tensor, "m 3"], sign_rays: int = 11) -> None:
        import open3d as o3d

        if sign_rays < 1 or sign_rays % 2 == 0:
            raise ValueError(f"sign_rays must be odd and positive, got {sign_rays}")
        self.sign_rays = sign_rays
        mesh = o3d.t.geometry.TriangleMesh()
        mesh.vertex.positions = o3d.core.Tensor(vertices.float().numpy())
        mesh.triangle.indices = o3d.core.Tensor(triangles.numpy().astype(np.int32))
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(mesh)

    def distance(self, points: Float[Tensor, "n 3"]) -> Float[Tensor, " n"]:
        q = np.ascontiguousarray(points.float().numpy())
        return torch.from_numpy(self.scene.compute_distance(q).numpy().copy())

    def occupancy(self, points: Float[Tensor, "n 3"]) -> Bool[Tensor, " n"]:
        q = np.ascontiguousarray(points.float().numpy())
        return torch.from_numpy(self.scene.compute_occupancy(q, nsamples=self.sign_rays).numpy() > 0.5)

    def signed_distance(self, points: Float[Tensor, "n 3"]) -> Float[Tensor, " n"]:
        """Distance to the nearest triangle, negative inside."""
        d = self.distance(points)
        return torch.where(self.occupancy(points), -d, d)


# -- training samples ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SDFSamples:
    """Points with exact signed distance and occupancy (unit-cube units)."""

    points: Float[Tensor, "n 3"]
    sdf: Float[Tensor, " n"]
    """Signed distance, negative inside."""
    occupancy: Float[Tensor, " n"]
    """1 inside, 0 outside."""


def sample_points_near_surface(
    surface: Float[Tensor, "n 3"], sigmas: tuple[float, ...], n_near: int, n_uniform: int, seed: int = 0
) -> Float[Tensor, "m 3"]:
    """``n_near`` surface points perturbed by N(0, σ²) (σ cycling through ``sigmas``) + ``n_uniform`` uniform
    points in the unit cube. Surface points are drawn with replacement from ``surface``."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, surface.shape[0], (n_near,), generator=gen)
    sigma = torch.tensor(sigmas, dtype=torch.float32)[torch.arange(n_near) % len(sigmas)]
    near = surface[idx] + torch.randn(n_near, 3, generator=gen) * sigma[:, None]
    uniform = torch.rand(n_uniform, 3, generator=gen)
    return torch.cat([near, uniform]).clamp(0.0, 1.0)


def mesh_sdf_samples(
    cloud: PointCloud,
    n: int,
    sigmas: tuple[float, ...] = (0.002, 0.01, 0.04),
    uniform_fraction: float = 0.2,
    sign_rays: int = 11,
    seed: int = 0,
) -> SDFSamples:
    """Exact SDF/occupancy at near-surface and uniform points of a mesh (see the module's sign convention)."""
    if not cloud.is_mesh:
        raise ValueError("mesh_sdf_samples needs a mesh; point clouds use the implicit loss or pseudo_occupancy")
    n_uniform = int(round(n * uniform_fraction))
    surface, _ = sample_surface(cloud.points, cloud.triangles, max(1, n - n_uniform), seed)
    pts = sample_points_near_surface(surface, sigmas, n - n_uniform, n_uniform, seed + 1)
    md = MeshDistance(cloud.points, cloud.triangles, sign_rays)
    sdf = md.signed_distance(pts)
    return SDFSamples(points=pts, sdf=sdf, occupancy=(sdf < 0).float())


def pseudo_occupancy(
    points: Float[Tensor, "n 3"], surface: Float[Tensor, "s 3"], normals: Float[Tensor, "s 3"]
) -> tuple[Float[Tensor, " n"], Float[Tensor, " n"]]:
    """Inside/outside for a point cloud from its nearest oriented point: inside when ``(q − p)·n_p < 0``.

    Returns ``(occupancy, signed distance to the nearest point)``; reliable where the cloud is dense and
    its normals are consistently oriented.
    """
    from scipy.spatial import cKDTree

    tree = cKDTree(surface.double().numpy())
    q = points.double().numpy()
    dist, idx = tree.query(q, k=1, workers=-1)
    side = ((q - surface.double().numpy()[idx]) * normals.double().numpy()[idx]).sum(axis=1)
    inside = side < 0
    return torch.from_numpy(inside).float(), torch.from_numpy(np.where(inside, -dist, dist)).float()


class SDFSampler:
    """Random batches from a fixed pool of :class:`SDFSamples`; its generator state is checkpointable."""

    def __init__(self, samples: SDFSamples, batch_size: int, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.samples = samples
        self.device = torch.device(device)
        self.batch_size = min(batch_size, samples.points.shape[0])
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> tuple[Float[Tensor, "n 3"], Float[Tensor, " n"], Float[Tensor, " n"]]:
        """``(points, sdf, occupancy)`` on the device, drawn uniformly with replacement."""
        i = torch.randint(0, self.samples.points.shape[0], (self.batch_size,), generator=self.generator)
        s = self.samples
        return s.points[i].to(self.device), s.sdf[i].to(self.device), s.occupancy[i].to(self.device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


@dataclass
class ImplicitBatch:
    """A point-cloud batch: surface points with normals, and off-surface points with approximate SDF targets."""

    surface: Float[Tensor, "n 3"]
    """On-surface points (target value 0)."""
    normals: Float[Tensor, "n 3"]
    """Their unit normals (target gradient direction)."""
    points: Float[Tensor, "m 3"]
    """Near-surface (perturbed) and uniform points."""
    sdf: Float[Tensor, " m"]
    """Approximate signed distance of ``points`` from the oriented cloud (see :class:`SurfaceSampler`)."""


class SurfaceSampler:
    """Batches for point-cloud SDF training, drawn afresh every step (checkpointable generator state).

    ``surface_size`` input points with their normals; ``batch_size`` off-surface points distributed like a
    mesh's sample pool (surface points perturbed by N(0, σ²) with σ cycling through ``sigmas``, plus a
    ``uniform_fraction`` of uniform points in the unit cube), each with an approximate signed distance
    from the nearest input point ``p`` with normal ``n``: the tangent-plane distance ``(q − p)·n`` for the
    perturbations with σ ≤ ``plane_sigma`` (accurate between sparse points), else ``±‖q − p‖`` with the
    sign of ``(q − p)·n`` (accurate far away; :func:`pseudo_occupancy` uses the same rule).
    """

    def __init__(
        self,
        points: Float[Tensor, "n 3"],
        normals: Float[Tensor, "n 3"],
        batch_size: int,
        surface_size: int | None = None,
        sigmas: tuple[float, ...] = (0.002, 0.01, 0.04),
        uniform_fraction: float = 0.2,
        plane_sigma: float = 0.01,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        from scipy.spatial import cKDTree

        self.points, self.normals = points.float(), normals.float()
        self.tree = cKDTree(points.double().numpy())
        self.batch_size = batch_size
        self.surface_size = surface_size or max(1, batch_size // 8)
        self.sigmas = torch.tensor(sigmas, dtype=torch.float32)
        self.uniform_fraction = uniform_fraction
        self.plane_sigma = plane_sigma
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    def _nearest(self, q: Tensor) -> tuple[Tensor, Tensor]:
        dist, idx = self.tree.query(q.double().numpy(), k=1, workers=-1)
        i = torch.from_numpy(idx.astype(np.int64))
        side = ((q - self.points[i]) * self.normals[i]).sum(dim=-1)
        return side, torch.from_numpy(dist).float()

    def plane_distance(self, q: Float[Tensor, "m 3"]) -> Float[Tensor, " m"]:
        """Signed distance of ``q`` to the tangent plane of its nearest input point (positive along the normal)."""
        return self._nearest(q)[0]

    def point_distance(self, q: Float[Tensor, "m 3"]) -> Float[Tensor, " m"]:
        """Distance of ``q`` to its nearest input point, negative where it lies behind that point's normal."""
        side, dist = self._nearest(q)
        return torch.where(side < 0, -dist, dist)

    def sample(self) -> ImplicitBatch:
        g, n = self.generator, self.batch_size
        i = torch.randint(0, self.points.shape[0], (self.surface_size,), generator=g)
        n_uni = int(round(n * self.uniform_fraction))
        n_near = n - n_uni
        j = torch.randint(0, self.points.shape[0], (n_near,), generator=g)
        sigma = self.sigmas[torch.arange(n_near) % len(self.sigmas)]
        near = (self.points[j] + torch.randn(n_near, 3, generator=g) * sigma[:, None]).clamp(0, 1)
        pts = torch.cat([near, torch.rand(n_uni, 3, generator=g)])
        side, dist = self._nearest(pts)
        use_plane = torch.cat([sigma <= self.plane_sigma, torch.zeros(n_uni, dtype=torch.bool)])
        sdf = torch.where(use_plane, side, torch.where(side < 0, -dist, dist))
        d = self.device
        return ImplicitBatch(self.points[i].to(d), self.normals[i].to(d), pts.to(d), sdf.to(d))

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


__all__ = [
    "ImplicitBatch",
    "MeshDistance",
    "NonWatertightWarning",
    "PointCloud",
    "SDFSampler",
    "SDFSamples",
    "SUFFIXES",
    "SurfaceSampler",
    "estimate_normals",
    "is_closed_manifold",
    "load_surface",
    "mesh_sdf_samples",
    "pseudo_occupancy",
    "sample_points_near_surface",
    "sample_surface",
    "triangle_areas",
    "with_normals",
]
