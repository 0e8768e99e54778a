"""Multi-resolution hash grid encoding in Triton, forward and backward.

Computes exactly :func:`fields.kernels.hashgrid_reference.hash_grid_encode` (read its module docstring for the
convention: align-corners vertices, ``cell = clamp(floor(x·N_l), 0, N_l − 1)``, dense levels indexed
``Σ c_k (N_l+1)^k``, hashed levels ``(c_0·1 ⊕ c_1·2654435761 ⊕ c_2·805459861) mod 2^T``, level-major output).
All arithmetic is fp32 like the reference with an fp32 table.

Forward: one program per (block of points, level); the ``2^d`` corner rows are gathered and blended in
registers, features written once. Backward: table gradients by fp32 ``atomic_add`` of ``weight · dL/dy``
into the rows (the scatter that ``index_add`` does in the reference), input gradients from the
derivative of the interpolation weights (zero outside ``[0,1]``, as the reference's clamp gives).
Double backward (``create_graph=True``) is recomputed through the torch reference (logged once).
"""

import logging
from typing import no_type_check

import torch
import triton
import triton.language as tl
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.kernels.backends import hash_grid_triton_unsupported, hopper_mma_v2, log_once

log = logging.getLogger(__name__)

BLOCK = 128
PRIME1 = 2654435761
PRIME2 = 805459861


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _corner(xk, res_f):
    p = tl.minimum(tl.maximum(xk, 0.0), 1.0) * res_f
    cell = tl.minimum(tl.floor(p), res_f - 1.0)
    return cell.to(tl.int64), p - cell


@triton.jit
@no_type_check
def _row(c0, c1, c2, res, offset, hashed, mask_t, D: tl.constexpr):
    stride = (res + 1).to(tl.int64)
    if D == 1:
        dense = c0
        hsh = c0 & mask_t
    elif D == 2:
        dense = c0 + c1 * stride
        hsh = (c0 & mask_t) ^ ((c1 * 2654435761) & mask_t)
    else:
        dense = c0 + c1 * stride + c2 * stride * stride
        hsh = (c0 & mask_t) ^ ((c1 * 2654435761) & mask_t) ^ ((c2 * 805459861) & mask_t)
    return tl.where(hashed != 0, hsh, dense) + offset


@triton.jit
@no_type_check
def _hashgrid_kernel(
    X, T, Y, DY, DT, DX, RES, OFF, HASHED,
    n, mask_t, stride_x, n_levels,
    D: tl.constexpr, F: tl.constexpr, BACKWARD: tl.constexpr, NEED_DX: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    lvl = tl.program_id(1)
    rows = (pid * BLOCK + tl.arange(0, BLOCK)).to(tl.int64)
    rmask = rows < n
    fs = tl.arange(0, F)
    res = tl.load(RES + lvl)
    offset = tl.load(OFF + lvl).to(tl.int64)
    hashed = tl.load(HASHED + lvl)
    res_f = res.to(tl.float32)
    x0 = tl.load(X + rows * stride_x, mask=rmask, other=0.0).to(tl.float32)
    c0, w0 = _corner(x0, res_f)
    in0 = (x0 >= 0.0) & (x0 <= 1.0)
    c1 = c0
    w1 = w0
    c2 = c0
    w2 = w0
    in1 = in0
    in2 = in0
    if D >= 2:
        x1 = tl.load(X + rows * stride_x + 1, mask=rmask, other=0.0).to(tl.float32)
        c1, w1 = _corner(x1, res_f)
        in1 = (x1 >= 0.0) & (x1 <= 1.0)
    if D >= 3:
        x2 = tl.load(X + rows * stride_x + 2, mask=rmask, other=0.0).to(tl.float32)
        c2, w2 = _corner(x2, res_f)
        in2 = (x2 >= 0.0) & (x2 <= 1.0)
    out_cols = lvl * F + fs
    ld = n_levels * F
    if BACKWARD:
        g = tl.load(DY + rows[:, None] * ld + out_cols[None, :], mask=rmask[:, None], other=0.0).to(tl.float32)
        gx0 = tl.zeros((BLOCK,), dtype=tl.float32)
        gx1 = tl.zeros((BLOCK,), dtype=tl.float32)
        gx2 = tl.zeros((BLOCK,), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK, F), dtype=tl.float32)
    for corner in tl.static_range(2**D):
        o0 = corner & 1  # compile-time (static_range unrolls); plain names: constexpr names cannot be reassigned
        o1 = (corner >> 1) & 1
        o2 = (corner >> 2) & 1
        # per-axis factors, multiplied in axis order like the reference
        f0 = w0 if o0 == 1 else 1.0 - w0
        wgt = f0
        if D >= 2:
            f1 = w1 if o1 == 1 else 1.0 - w1
            wgt = wgt * f1
        if D >= 3:
            f2 = w2 if o2 == 1 else 1.0 - w2
            wgt = wgt * f2
        row = _row(c0 + o0, c1 + o1, c2 + o2, res, offset, hashed, mask_t, D)
        ptrs = T + row[:, None] * F + fs[None, :]
        if BACKWARD:
            tl.atomic_add(DT + row[:, None] * F + fs[None, :], g * wgt[:, None], mask=rmask[:, None])
            if NEED_DX:
                tv = tl.load(ptrs, mask=rmask[:, None], other=0.0).to(tl.float32)
                gt = tl.sum(g * tv, axis=1)  # dL/dweight of this corner
                s0 = 1.0 if o0 == 1 else -1.0
                if D == 1:
                    gx0 += gt * s0
                elif D == 2:
                    s1 = 1.0 if o1 == 1 else -1.0
                    gx0 += gt * s0 * f1
                    gx1 += gt * f0 * s1
                else:
                    s1 = 1.0 if o1 == 1 else -1.0
                    s2 = 1.0 if o2 == 1 else -1.0
                    gx0 += gt * s0 * f1 * f2
                    gx1 += gt * f0 * s1 * f2
                    gx2 += gt * f0 * f1 * s2
        else:
            tv = tl.load(ptrs, mask=rmask[:, None], other=0.0).to(tl.float32)
            acc += wgt[:, None] * tv
    if BACKWARD:
        if NEED_DX:
            # per-level contributions summed over levels by atomics (each level is its own program)
            tl.atomic_add(DX + rows * D, tl.where(in0, gx0 * res_f, 0.0), mask=rmask)
            if D >= 2:
                tl.atomic_add(DX + rows * D + 1, tl.where(in1, gx1 * res_f, 0.0), mask=rmask)
            if D >= 3:
                tl.atomic_add(DX + rows * D + 2, tl.where(in2, gx2 * res_f, 0.0), mask=rmask)
    else:
        tl.store(Y + rows[:, None] * ld + out_cols[None, :], acc, mask=rmask[:, None])


class _LayoutTensors:
    """Per-level int32 tensors of a layout on one device (cached)."""

    _cache: dict = {}

    @classmethod
    def get(cls, layout, device: torch.device):
        key = (layout, str(device))
        if key not in cls._cache:
            res = torch.tensor(layout.resolutions, dtype=torch.int32, device=device)
            off = torch.tensor(layout.offsets[:-1], dtype=torch.int64, device=device)
            hashed = torch.tensor([int(h) for h in layout.hashed], dtype=torch.int32, device=device)
            cls._cache[key] = (res, off, hashed)
        return cls._cache[key]


def _launch(x, table, layout, y=None, dy=None, dt=None, dx=None):
    n, d = x.shape
    feats = table.shape[1]
    res, off, hashed = _LayoutTensors.get(layout, x.device)
    backward = dy is not None
    grid = (triton.cdiv(n, BLOCK), layout.n_levels)
    dummy = table
    with hopper_mma_v2():  # no dots here; kept uniform with the MLP kernels
        _hashgrid_kernel[grid](
            x, table, y if y is not None else dummy, dy if dy is not None else dummy, dt if dt is not None else dummy,
            dx if dx is not None else dummy, res, off, hashed,
            n, (1 << layout.log2_table_size) - 1, x.stride(0), layout.n_levels,
            D=d, F=feats, BACKWARD=backward, NEED_DX=dx is not None, BLOCK=BLOCK, num_warps=4,
        )  # fmt: skip


class HashGridFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, table: Tensor, layout):  # type: ignore[override]
        x_c = x.contiguous().float()
        n = x.shape[0]
        y = torch.empty((n, layout.n_levels * table.shape[1]), device=x.device, dtype=torch.float32)
        if n:
            _launch(x_c, table.contiguous(), layout, y=y)
        ctx.save_for_backward(x, table)
        ctx.layout = layout
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):  # type: ignore[override]
        x, table = ctx.saved_tensors
        layout = ctx.layout
        if torch.is_grad_enabled():
            from fieldforge.fields.kernels.hashgrid_reference import hash_grid_encode

            log_once("hash grid (triton): double backward (create_graph=True) runs through the pure-torch reference")
            need = ctx.needs_input_grad[:2]
            inputs = [t for t, nd in zip((x, table), need) if nd]
            y = hash_grid_encode(x, table, layout)
            grads = iter(torch.autograd.grad(y, inputs, gy, create_graph=True, allow_unused=True))
            gx, gt = [next(grads) if nd else None for nd in need]
            return gx, gt, None
        need_dx = ctx.needs_input_grad[0]
        dt = torch.zeros_like(table, dtype=torch.float32)
        dx = torch.zeros(x.shape, device=x.device, dtype=torch.float32) if need_dx else None
        if x.shape[0]:
            _launch(x.contiguous().float(), table.contiguous(), layout, dy=gy.contiguous().float(), dt=dt, dx=dx)
        return (dx.to(x.dtype) if dx is not None else None), dt.to(table.dtype), None


def hash_grid_encode_triton(x: Float[Tensor, "n d"], table: Float[Tensor, "m f"], layout) -> Float[Tensor, "n lf"]:
    """Triton version of :func:`fields.kernels.hashgrid_reference.hash_grid_encode` (same math, fp32)."""
    why = hash_grid_triton_unsupported(table, layout.in_dim)
    if why is not None:
        raise ValueError(f"Triton hash grid cannot run this config: {why}")
    if x.ndim != 2 or x.shape[1] != layout.in_dim:
        raise ValueError(f"expected points of shape (n, {layout.in_dim}), got {tuple(x.shape)}")
    if table.shape[0] != layout.n_rows:
        raise ValueError(f"table has {table.shape[0]} rows, the layout needs {layout.n_rows}")
    return HashGridFunction.apply(x, table, layout)


__all__ = ["HashGridFunction", "hash_grid_encode_triton"]
