"""Triton grouped kernels for KiloNeRF tile banks (CUDA; on CPU only under ``TRITON_INTERPRET=1``).

Same math and the same packed layout as :mod:`fieldforge.fields.kernels.tiles_reference`: points sorted by
tile, each tile's segment padded to whole blocks of ``BLOCK`` rows (:func:`pack_segments`). Per layer:

- forward (``_grouped_linear_kernel``): one program per block; it loads its tile's weight matrix and bias
  once (on chip, padded to a power of two ≥ 16), multiplies its ``BLOCK`` rows with ``tl.dot`` (fp32
  accumulation; fp32 dots run as tf32 on tensor cores), adds the bias and applies the ReLU;
- backward: ``dx = dz @ Wᵀ`` is the same kernel with the weight strides swapped; the weight and bias
  gradients come from ``_grouped_wgrad_kernel``, one program per tile that walks its own blocks and sums
  ``xᵀ dz`` on chip (no atomics: deterministic).

Computation is fp32 (inputs are cast). A backward that must itself be differentiable (``create_graph``,
e.g. an eikonal loss) is recomputed through the pure-torch layer instead. Importing this module imports
Triton and compiles nothing.
"""

from typing import no_type_check

import torch
import triton
import triton.language as tl
from jaxtyping import Float, Int
from torch import Tensor

from fieldforge.fields.kernels.backends import hopper_mma_v2
from fieldforge.fields.kernels.tiles_reference import Segments, pack_segments


def _pad(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _grouped_linear_kernel(
    X, W, B, Y, BT, I, O, stride_wt, stride_wi, stride_wo,
    HAS_BIAS: tl.constexpr, RELU: tl.constexpr, BLOCK_M: tl.constexpr, IP: tl.constexpr, OP: tl.constexpr,
):
    pid = tl.program_id(0)
    t = tl.load(BT + pid).to(tl.int64)
    rows = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    ci = tl.arange(0, IP)
    co = tl.arange(0, OP)
    x = tl.load(X + rows[:, None] * I + ci[None, :], mask=ci[None, :] < I, other=0.0)
    w = tl.load(
        W + t * stride_wt + ci[:, None] * stride_wi + co[None, :] * stride_wo,
        mask=(ci[:, None] < I) & (co[None, :] < O), other=0.0,
    )
    acc = tl.dot(x, w)
    if HAS_BIAS:
        acc += tl.load(B + t * O + co, mask=co < O, other=0.0)[None, :]
    if RELU:
        acc = tl.maximum(acc, 0.0)
    tl.store(Y + rows[:, None] * O + co[None, :], acc, mask=co[None, :] < O)


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _grouped_wgrad_kernel(X, DZ, DW, DB, TB, I, O, BLOCK_M: tl.constexpr, IP: tl.constexpr, OP: tl.constexpr):
    t = tl.program_id(0).to(tl.int64)
    b0 = tl.load(TB + t)
    b1 = tl.load(TB + t + 1)
    ci = tl.arange(0, IP)
    co = tl.arange(0, OP)
    acc = tl.zeros((IP, OP), dtype=tl.float32)
    accb = tl.zeros((OP,), dtype=tl.float32)
    for b in range(b0, b1):
        rows = b * BLOCK_M + tl.arange(0, BLOCK_M)
        x = tl.load(X + rows[:, None] * I + ci[None, :], mask=ci[None, :] < I, other=0.0)
        dz = tl.load(DZ + rows[:, None] * O + co[None, :], mask=co[None, :] < O, other=0.0)
        acc += tl.dot(tl.trans(x), dz)
        accb += tl.sum(dz, axis=0)
    tl.store(DW + t * I * O + ci[:, None] * O + co[None, :], acc, mask=(ci[:, None] < I) & (co[None, :] < O))
    tl.store(DB + t * O + co, accb, mask=co < O)


def _linear(xp: Tensor, w: Tensor, b: Tensor | None, block_tile: Tensor, relu: bool, transpose: bool = False) -> Tensor:
    """``act(xp_blk @ W[t] + b[t])`` per block on the packed layout; ``transpose`` uses ``W[t]ᵀ``."""
    n_tiles, wi, wo = w.shape
    i, o = (wo, wi) if transpose else (wi, wo)
    s_t, s_i, s_o = w.stride(0), *((w.stride(2), w.stride(1)) if transpose else (w.stride(1), w.stride(2)))
    y = torch.empty(xp.shape[0], o, device=xp.device, dtype=torch.float32)
    n_blocks = block_tile.shape[0]
    if n_blocks == 0:
        return y
    with hopper_mma_v2():
        _grouped_linear_kernel[(n_blocks,)](
            xp, w, b if b is not None else w, y, block_tile, i, o, s_t, s_i, s_o,
            HAS_BIAS=b is not None, RELU=relu, BLOCK_M=xp.shape[0] // n_blocks, IP=_pad(i), OP=_pad(o),
        )
    return y


def _wgrad(xp: Tensor, dz: Tensor, tile_blocks: Tensor, n_tiles: int, block: int) -> tuple[Tensor, Tensor]:
    i, o = xp.shape[1], dz.shape[1]
    dw = torch.empty(n_tiles, i, o, device=xp.device, dtype=torch.float32)
    db = torch.empty(n_tiles, o, device=xp.device, dtype=torch.float32)
    with hopper_mma_v2():
        _grouped_wgrad_kernel[(n_tiles,)](xp, dz, dw, db, tile_blocks, i, o, BLOCK_M=block, IP=_pad(i), OP=_pad(o))
    return dw, db


class _GroupedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp: Tensor, w: Tensor, b: Tensor, block_tile: Tensor, tile_blocks: Tensor, relu: bool):  # type: ignore[override]
        y = _linear(xp, w.float().contiguous(), b.float().contiguous(), block_tile, relu)
        ctx.save_for_backward(xp, w, b, y, block_tile, tile_blocks)
        ctx.relu = relu
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):  # type: ignore[override]
        xp, w, b, y, block_tile, tile_blocks = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a differentiable backward through the torch layer
            return _differentiable_backward(ctx, xp, w, b, block_tile, gy)
        w32 = w.float().contiguous()
        dz = gy.float().contiguous()
        if ctx.relu:
            dz = dz * (y > 0)
        dx = _linear(dz, w32, None, block_tile, relu=False, transpose=True) if ctx.needs_input_grad[0] else None
        dw = db = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            dw, db = _wgrad(xp.float().contiguous(), dz, tile_blocks, w.shape[0], xp.shape[0] // max(1, block_tile.shape[0]))
        return (
            dx.to(xp.dtype) if dx is not None else None,
            dw.to(w.dtype) if dw is not None and ctx.needs_input_grad[1] else None,
            db.to(b.dtype) if db is not None and ctx.needs_input_grad[2] else None,
            None, None, None,
        )


def _torch_linear(xp: Tensor, w: Tensor, b: Tensor, block_tile: Tensor, relu: bool) -> Tensor:
    n_blocks = block_tile.shape[0]
    h = torch.baddbmm(b[block_tile][:, None, :].float(), xp.float().reshape(n_blocks, -1, xp.shape[1]), w[block_tile].float())
    h = h.reshape(xp.shape[0], -1)
    return torch.relu(h) if relu else h


def _differentiable_backward(ctx, xp, w, b, block_tile, gy):
    """create_graph=True: recompute the layer in torch so the returned gradients have a graph."""
    inputs = [t for t, need in zip((xp, w, b), ctx.needs_input_grad[:3]) if need]
    y = _torch_linear(xp, w, b, block_tile, ctx.relu)
    grads = iter(torch.autograd.grad(y, inputs, gy, create_graph=True, allow_unused=True))
    return (*[next(grads) if need else None for need in ctx.needs_input_grad[:3]], None, None, None)


def tile_mlp_triton(
    x: Float[Tensor, "n i"], tile_ids: Int[Tensor, " n"], weights: list[Tensor], biases: list[Tensor], block: int | None = None
) -> Float[Tensor, "n o"]:
    """:func:`~fieldforge.fields.kernels.tiles_reference.tile_mlp_batched` with the Triton grouped kernels (fp32)."""
    if x.shape[0] == 0:
        return x.new_zeros(0, weights[-1].shape[-1], dtype=torch.float32)
    seg: Segments = pack_segments(tile_ids, weights[0].shape[0], block, min_block=16)  # tl.dot: ≥ 16 rows
    h = seg.pack(x.float().contiguous())
    for l, (w, b) in enumerate(zip(weights, biases)):
        h = _GroupedLinear.apply(h, w, b, seg.block_tile, seg.tile_blocks, l < len(weights) - 1)
    return seg.unpack(h)


__all__ = ["tile_mlp_triton"]
