"""Multi-resolution hash grid (instant-ngp, Müller et al. 2022), pure torch: THE reference implementation.

Used by ``fields.encodings.hashgrid.HashGridEncoding`` (the module) and by the fast paths as their oracle; it
imports nothing else of the package, so the kernels can import it without importing the encoding.

Every fast backend (Triton, tiny-cuda-nn) must reproduce :func:`hash_grid_encode` exactly (forward and
backward). The convention, fixed once:

**Levels.** ``L`` levels with resolutions ``N_l = floor(N_min · b^l + 1e-6)``, ``b = exp((ln N_max − ln N_min)/(L−1))``
(so ``N_0 = N_min`` and ``N_{L−1} = N_max``; ``b = 1`` when ``L = 1``). Level ``l`` is a grid of ``N_l`` cells per
axis, i.e. ``N_l + 1`` vertices per axis at integer positions ``0..N_l``.

**Table.** One flat fp32 parameter ``table`` of shape ``(M, F)``; level ``l`` owns rows
``offsets[l] : offsets[l+1]``. Its size is ``S_l = min(2^T, (N_l + 1)^d)``. A level is **dense** when
``(N_l + 1)^d ≤ 2^T`` (one row per vertex, no collisions) and **hashed** otherwise (``S_l = 2^T``).

**Lookup of a point** ``x ∈ [0,1]^d`` (clamped into the cube first; gradients w.r.t. ``x`` are zero outside):
``p = x · N_l`` (align-corners: vertex 0 at ``x = 0``, vertex ``N_l`` at ``x = 1``), cell ``i = clamp(floor(p), 0, N_l − 1)``,
local coordinate ``w = p − i ∈ [0,1]^d``. For each of the ``2^d`` corners ``c = i + o``, ``o ∈ {0,1}^d``:

- dense index: ``Σ_k c_k · (N_l + 1)^k`` (axis 0 fastest);
- hashed index: ``(c_0·π_0 ⊕ c_1·π_1 ⊕ c_2·π_2) mod 2^T`` with ``π = (1, 2654435761, 805459861)`` and the
  products taken modulo ``2^32`` (uint32 arithmetic; as ``2^T`` divides ``2^32`` the result equals the
  low ``T`` bits of the XOR of the full products, which is what this implementation computes in int64);
- row ``offsets[l] + index``; weight ``Π_k (w_k if o_k = 1 else 1 − w_k)`` (bi/trilinear interpolation).

The level's feature is the weighted sum of the ``2^d`` rows. Output ``(n, L·F)``, level-major:
``[level 0 features 0..F−1, level 1 features 0..F−1, …]``.

**Init.** ``U(−s, s)`` with ``s = 1e-4`` (instant-ngp); FreSh needs a larger ``s`` so the untrained field's
spectrum depends on the grid (``init_scale``).

Gradients: w.r.t. the table they are the interpolation weights scattered to the rows (``index_add``);
w.r.t. ``x`` they are the derivative of the weights (piecewise constant table differences times ``N_l``).
"""

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

HASH_PRIMES: tuple[int, ...] = (1, 2654435761, 805459861)
"""Per-axis primes of the spatial hash (axis 0 uses 1 for coherence along x)."""


@dataclass(frozen=True)
class HashGridLayout:
    """Per-level resolution and table slice of a hash grid; everything a kernel needs besides the table."""

    in_dim: int
    resolutions: tuple[int, ...]
    """``N_l``: cells per axis of level ``l`` (vertices per axis: ``N_l + 1``)."""
    offsets: tuple[int, ...]
    """Row offsets into the flat table, length ``L + 1`` (``offsets[-1]`` = total rows)."""
    hashed: tuple[bool, ...]
    """Whether level ``l`` is hashed (``(N_l+1)^d > 2^T``) or dense."""
    log2_table_size: int

    @property
    def n_levels(self) -> int:
        return len(self.resolutions)

    @property
    def n_rows(self) -> int:
        return self.offsets[-1]

    def sizes(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.offsets[:-1], self.offsets[1:]))


def level_resolutions(n_levels: int, base_resolution: int, max_resolution: int) -> tuple[int, ...]:
    """Geometric progression ``N_l = floor(N_min · b^l)`` from ``base_resolution`` to ``max_resolution``."""
    if n_levels < 1 or base_resolution < 1 or max_resolution < base_resolution:
        raise ValueError(f"need n_levels ≥ 1 and 1 ≤ base ≤ max, got {n_levels}, {base_resolution}, {max_resolution}")
    if n_levels == 1:
        return (base_resolution,)
    growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return tuple(int(math.floor(base_resolution * growth**lvl + 1e-6)) for lvl in range(n_levels))


def hash_grid_layout(
    in_dim: int, n_levels: int, log2_table_size: int, base_resolution: int, max_resolution: int
) -> HashGridLayout:
    """Resolutions, table offsets and dense/hashed flags of every level (see the module docstring)."""
    if not 1 <= in_dim <= len(HASH_PRIMES):
        raise ValueError(f"hash grid supports 1–{len(HASH_PRIMES)} input dimensions, got {in_dim}")
    if not 1 <= log2_table_size <= 30:
        raise ValueError(f"log2_table_size must be in [1, 30], got {log2_table_size}")
    resolutions = level_resolutions(n_levels, base_resolution, max_resolution)
    cap = 2**log2_table_size
    offsets, hashed = [0], []
    for res in resolutions:
        dense_rows = (res + 1) ** in_dim
        hashed.append(dense_rows > cap)
        offsets.append(offsets[-1] + min(cap, dense_rows))
    return HashGridLayout(in_dim, resolutions, tuple(offsets), tuple(hashed), log2_table_size)


def _outer(terms: list[Tensor], combine) -> Tensor:
    """Combine per-axis ``(n, L, 2)`` corner terms into ``(n, L, 2^d)`` with corner ``j`` = bits of ``j`` per axis.

    Axis 0 is the fastest-varying bit of the corner number (corner ``j`` uses offset ``(j >> k) & 1`` on axis ``k``).
    """
    d = len(terms)
    n, lv = terms[0].shape[:2]
    out = None
    for k, t in enumerate(terms):
        shape = [n, lv] + [1] * d
        shape[2 + (d - 1 - k)] = 2
        t = t.reshape(shape)
        out = t if out is None else combine(out, t)
    assert out is not None
    return out.reshape(n, lv, 2**d)


def hash_grid_indices_weights(
    x: Float[Tensor, "n d"], layout: HashGridLayout
) -> tuple[Tensor, Float[Tensor, "n l c"]]:
    """Table rows ``(n, L, 2^d)`` (int64) and interpolation weights ``(n, L, 2^d)`` of every corner.

    Corner ``j`` is offset ``(j >> k) & 1`` along axis ``k``. The weights carry the autograd graph to ``x``;
    the rows do not depend on it differentiably. Dense levels always precede hashed ones (resolutions
    increase), so the two kinds are computed on contiguous level ranges.
    """
    n, d = x.shape
    dev = x.device
    res_i = torch.tensor(layout.resolutions, device=dev, dtype=torch.int64)  # (L,)
    p = x.clamp(0.0, 1.0)[:, None, :] * res_i.to(x.dtype)[None, :, None]  # (n, L, d)
    cell = torch.minimum(torch.floor(p.detach()).to(torch.int64), (res_i - 1)[None, :, None])  # p ≥ 0 so floor ≥ 0
    w = p - cell.to(x.dtype)  # (n, L, d), in [0, 1]
    two = torch.arange(2, device=dev, dtype=torch.int64)
    c = cell[..., None] + two  # (n, L, d, 2): both corner coordinates per axis
    n_dense = layout.hashed.index(True) if any(layout.hashed) else layout.n_levels
    if any(layout.hashed[n_dense:]) and not all(layout.hashed[n_dense:]):
        raise ValueError("hash grid layout must list dense levels before hashed ones")
    offsets = torch.tensor(layout.offsets[:-1], device=dev, dtype=torch.int64)
    parts = []
    if n_dense:
        cd = c[:, :n_dense]
        strides = (res_i[:n_dense, None] + 1) ** torch.arange(d, device=dev)[None, :]  # (Ld, d)
        terms = [cd[:, :, k] * strides[None, :, k, None] for k in range(d)]
        terms[0] = terms[0] + offsets[None, :n_dense, None]
        parts.append(_outer([t.to(torch.int32) for t in terms], torch.add))
    if n_dense < layout.n_levels:
        mask = 2**layout.log2_table_size - 1
        ch = c[:, n_dense:]
        terms = [(ch[:, :, k] * HASH_PRIMES[k]) & mask for k in range(d)]  # low T bits commute with XOR
        xor = _outer([t.to(torch.int32) for t in terms], torch.bitwise_xor)
        parts.append(xor + offsets[None, n_dense:, None].to(torch.int32))
    rows = (torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]).long()  # int64: index_add_ is ~4× faster
    wk = torch.stack([1.0 - w, w], dim=-1)  # (n, L, d, 2)
    weights = _outer([wk[:, :, k] for k in range(d)], torch.mul)
    return rows, weights


class _GatherRows(torch.autograd.Function):
    """``table[rows]`` with an ``index_add_`` backward (faster on CPU than advanced-index accumulation)."""

    @staticmethod
    def forward(ctx, table: Tensor, rows: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(rows)
        ctx.n_rows = table.shape[0]
        return table.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        out = torch.zeros(ctx.n_rows, grad.shape[1], dtype=grad.dtype, device=grad.device)
        out.index_add_(0, rows, grad)
        return out, None


def hash_grid_encode(x: Float[Tensor, "n d"], table: Float[Tensor, "m f"], layout: HashGridLayout) -> Float[Tensor, "n lf"]:
    """Encode unit-cube points with a multi-resolution hash grid; output ``(n, L·F)``, level-major.

    ``table`` is the flat ``(layout.n_rows, F)`` parameter. Computation happens in ``table``'s dtype
    (fp32 in training, also under autocast; fp64 in the reference tests).
    """
    if x.ndim != 2 or x.shape[-1] != layout.in_dim:
        raise ValueError(f"expected points of shape (n, {layout.in_dim}), got {tuple(x.shape)}")
    if table.shape[0] != layout.n_rows:
        raise ValueError(f"table has {table.shape[0]} rows, the layout needs {layout.n_rows}")
    n, feats = x.shape[0], table.shape[1]
    with torch.autocast(device_type=x.device.type, enabled=False):  # the reference interpolates in the table's dtype
        rows, weights = hash_grid_indices_weights(x.to(table.dtype), layout)
        gathered = _GatherRows.apply(table, rows.reshape(-1)).reshape(*rows.shape, feats)  # (n, L, C, F)
        out = torch.einsum("nlc,nlcf->nlf", weights, gathered)
    return out.reshape(n, layout.n_levels * feats)


__all__ = [
    "HASH_PRIMES",
    "HashGridLayout",
    "hash_grid_encode",
    "hash_grid_indices_weights",
    "hash_grid_layout",
    "level_resolutions",
]
