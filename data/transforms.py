"""One similarity transform for every coordinate normalization: ``p' = scale · (rotation @ p + translation)``.

Captures record the map from their own world frame to the normalized frame the cameras are trained in;
point clouds and meshes record the map from the input's coordinates into the unit cube. Both are a
:class:`Similarity` (rotation ``R``, translation ``t``, isotropic scale ``s > 0``): distances scale by ``s``,
directions and normals only rotate.

Parameters are float64 NumPy arrays. Every method takes torch tensors (any device) or NumPy arrays,
computes in float64 and returns the input's type and floating dtype.

Serialized (``to_dict``) as ``{"rotation", "translation", "scale", "offset", "matrix"}``: the parameters, plus
``offset = s·t`` (so ``p' = s·R p + offset``) and the 4×4 matrix for readers that want either. ``from_dict``
also reads the two layouts older runs hold: ``data.json`` ``{"scale", "offset", "world_to_unit"}``
(point clouds: ``unit = world·scale + offset``) and ``capture.json`` ``{"rotation", "translation", "scale"}``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

Points = Float[Tensor, "*batch 3"] | Float[np.ndarray, "*batch 3"]
Poses = Float[Tensor, "*batch 4 4"] | Float[np.ndarray, "*batch 4 4"]
_A = TypeVar("_A", Tensor, np.ndarray)


def _vector(x: object, shape: tuple[int, ...], name: str) -> np.ndarray:
    a = (x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)).copy()
    if a.shape != shape:
        raise ValueError(f"Similarity {name} must have shape {shape}, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"Similarity {name} contains NaN or infinite values")
    a.setflags(write=False)
    return a


def _like(value: np.ndarray, x: _A) -> Tensor | np.ndarray:
    """``value`` (float64 NumPy) as the kind of array ``x`` is, on its device."""
    if isinstance(x, Tensor):
        return torch.tensor(value, dtype=torch.float64, device=x.device)  # a copy: the parameters are read-only
    return value


def _back(y: _A, x: _A) -> _A:
    """The float64 result ``y`` in ``x``'s floating dtype."""
    if isinstance(x, Tensor):
        return y.to(x.dtype)
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        return y.astype(x.dtype, copy=False)
    return y


def _f64(x: _A) -> _A:
    return x.double() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)


def _transpose(r: _A) -> _A:
    return r.transpose(-1, -2) if isinstance(r, Tensor) else np.swapaxes(r, -1, -2)


class Similarity:
    """``p' = scale · (rotation @ p + translation)``: rotation ``(3, 3)``, translation ``(3,)``, scale ``> 0``.

    The rotation is taken as given (it should be orthonormal with determinant +1; the inverse uses its
    transpose). ``Similarity()`` is the identity.
    """

    __slots__ = ("_rotation", "_translation", "_scale")

    def __init__(self, rotation: object = None, translation: object = None, scale: float = 1.0) -> None:
        self._rotation = _vector(np.eye(3) if rotation is None else rotation, (3, 3), "rotation")
        self._translation = _vector(np.zeros(3) if translation is None else translation, (3,), "translation")
        s = float(scale)
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"Similarity scale must be finite and positive, got {scale}")
        self._scale = s

    # -- parameters --------------------------------------------------------------------------------------

    @property
    def rotation(self) -> np.ndarray:
        """``(3, 3)`` float64 (read-only)."""
        return self._rotation

    @property
    def translation(self) -> np.ndarray:
        """``(3,)`` float64 (read-only), applied before the scale."""
        return self._translation

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def offset(self) -> np.ndarray:
        """``scale · translation``: the translation of the matrix form ``p' = scale·R p + offset``."""
        return self._scale * self._translation

    # -- construction ------------------------------------------------------------------------------------

    @staticmethod
    def from_scale_offset(scale: float, offset: object) -> Similarity:
        """``p' = scale·p + offset`` (no rotation)."""
        return Similarity(None, _vector(offset, (3,), "offset") / float(scale), scale)

    @staticmethod
    def from_matrix(matrix: object) -> Similarity:
        """From a 4×4 (or 3×4) matrix ``[[s·R, s·t], [0, 1]]``; raises ``ValueError`` if it is not a similarity."""
        m = np.asarray(matrix.detach().cpu().numpy() if isinstance(matrix, Tensor) else matrix, dtype=np.float64)
        if m.shape not in ((4, 4), (3, 4)):
            raise ValueError(f"similarity matrix must be 4×4 or 3×4, got shape {m.shape}")
        a = m[:3, :3]
        det = float(np.linalg.det(a))
        if not det > 0:
            raise ValueError(f"similarity matrix has a non-positive determinant ({det:.3g}): not a rotation and scale")
        s = det ** (1.0 / 3.0)
        r = a / s
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-6):
            raise ValueError("similarity matrix's 3×3 part is not a rotation times an isotropic scale")
        return Similarity(r, m[:3, 3] / s, s)

    @staticmethod
    def fit_unit_cube(points: Points, padding: float = 0.0) -> Similarity:
        """Centre the bounding box of ``points`` at ``(0.5, 0.5, 0.5)`` and scale its longest side to
        ``1 − 2·padding`` (no rotation). Raises ``ValueError`` for an empty or zero-extent set."""
        p = points.detach().cpu().double().numpy() if isinstance(points, Tensor) else np.asarray(points, dtype=np.float64)
        p = p.reshape(-1, 3)
        if not 0.0 <= padding < 0.5:
            raise ValueError(f"padding must be in [0, 0.5), got {padding}")
        if p.shape[0] == 0:
            raise ValueError("cannot fit a normalization to zero points")
        lo, hi = p.min(axis=0), p.max(axis=0)
        extent = float((hi - lo).max())
        if not extent > 0:
            raise ValueError("cannot fit a normalization to coincident points")
        scale = (1.0 - 2.0 * padding) / extent
        return Similarity(None, 0.5 / scale - 0.5 * (lo + hi), scale)

    # -- points, directions, poses -------------------------------------------------------------------------

    def apply(self, points: Points) -> Points:
        """``scale · (R p + t)``."""
        p = _f64(points)
        r, t = _like(self._rotation, p), _like(self._translation, p)
        return _back(self._scale * (p @ _transpose(r) + t), points)

    def invert(self, points: Points) -> Points:
        """The inverse map of points: ``Rᵀ (p / scale − t)``."""
        p = _f64(points)
        r, t = _like(self._rotation, p), _like(self._translation, p)
        return _back((p / self._scale - t) @ r, points)

    def rotate(self, directions: Points) -> Points:
        """``R d``: directions and normals into the transformed frame (unit length is kept)."""
        d = _f64(directions)
        return _back(d @ _transpose(_like(self._rotation, d)), directions)

    def unrotate(self, directions: Points) -> Points:
        """``Rᵀ d``: directions and normals back into the original frame."""
        d = _f64(directions)
        return _back(d @ _like(self._rotation, d), directions)

    def apply_poses(self, camera_to_world: Poses) -> Poses:
        """Camera-to-world 4×4 poses into the transformed frame: rotation ``R·R_c`` (still orthonormal),
        position ``apply(c)``. The camera's intrinsics are unaffected (a similarity keeps angles)."""
        c = _f64(camera_to_world)
        out = c.clone() if isinstance(c, Tensor) else c.copy()
        out[..., :3, :3] = _like(self._rotation, c) @ c[..., :3, :3]
        out[..., :3, 3] = self.apply(c[..., :3, 3])
        return _back(out, camera_to_world)

    def invert_poses(self, camera_to_world: Poses) -> Poses:
        """Poses in the transformed frame back into the original frame (inverse of :meth:`apply_poses`)."""
        return self.inverse().apply_poses(camera_to_world)

    # -- algebra ---------------------------------------------------------------------------------------------

    def then(self, other: Similarity) -> Similarity:
        """This transform followed by ``other``: ``x ↦ other.apply(self.apply(x))``.

        ``self.then(other).matrix() == other.matrix() @ self.matrix()``.
        """
        rot = other._rotation @ self._rotation
        trans = other._rotation @ self._translation + other._translation / self._scale
        return Similarity(rot, trans, self._scale * other._scale)

    def inverse(self) -> Similarity:
        """The inverse similarity: ``(1/s) · (Rᵀ p − s·Rᵀ t)``."""
        rt = self._rotation.T
        return Similarity(rt, -self._scale * (rt @ self._translation), 1.0 / self._scale)

    def matrix(self) -> np.ndarray:
        """4×4 homogeneous float64 matrix ``[[s·R, s·t], [0, 1]]``."""
        m = np.eye(4)
        m[:3, :3] = self._scale * self._rotation
        m[:3, 3] = self._scale * self._translation
        return m

    def is_identity(self, atol: float = 0.0) -> bool:
        return bool(np.allclose(self.matrix(), np.eye(4), rtol=0.0, atol=atol))

    # -- serialization ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready: ``rotation``, ``translation``, ``scale`` (the parameters) and, derived from them,
        ``offset`` (``s·t``) and ``matrix`` (4×4)."""
        return {
            "rotation": self._rotation.tolist(),
            "translation": self._translation.tolist(),
            "scale": self._scale,
            "offset": self.offset.tolist(),
            "matrix": self.matrix().tolist(),
        }

    @staticmethod
    def from_dict(d: dict) -> Similarity:
        """Read :meth:`to_dict`'s layout or an older run's: capture.json ``{rotation, translation, scale}`` or
        data.json ``{scale, offset[, world_to_unit]}`` (``p' = p·scale + offset``). Raises ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError(f"a similarity is stored as a JSON object, got {type(d).__name__}")
        try:
            if "rotation" in d or "translation" in d:
                return Similarity(d.get("rotation"), d.get("translation"), float(d.get("scale", 1.0)))
            if "offset" in d:
                return Similarity.from_scale_offset(float(d["scale"]), d["offset"])
            for key in ("matrix", "world_to_unit"):
                if key in d:
                    return Similarity.from_matrix(d[key])
        except (TypeError, KeyError) as e:
            raise ValueError(f"malformed similarity {d!r}: {e}") from None
        raise ValueError(f"not a similarity: expected rotation/translation/scale or scale/offset keys, got {sorted(d)}")

    # -- python ----------------------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Similarity):
            return NotImplemented
        return (
            self._scale == other._scale
            and bool(np.array_equal(self._rotation, other._rotation))
            and bool(np.array_equal(self._translation, other._translation))
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        r = np.array2string(self._rotation, precision=6, separator=", ").replace("\n", "")
        t = np.array2string(self._translation, precision=6, separator=", ")
        return f"Similarity(rotation={r}, translation={t}, scale={self._scale:.9g})"

    def __getstate__(self) -> tuple:
        return (self._rotation, self._translation, self._scale)

    def __setstate__(self, state: tuple) -> None:
        rotation, translation, scale = state
        self._rotation = _vector(rotation, (3, 3), "rotation")
        self._translation = _vector(translation, (3,), "translation")
        self._scale = float(scale)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation ``(3, 3)`` mapping the direction of ``a`` onto that of ``b`` (Rodrigues)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: rotate π about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


__all__ = ["Similarity", "rotation_between"]
