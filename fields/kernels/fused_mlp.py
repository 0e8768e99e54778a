"""Fully fused MLP in Triton: one kernel for the whole forward pass, one for the whole backward pass.

The math (rounding included) is :func:`fields.kernels.fused_mlp_reference.fused_mlp_reference`: compute
dtype fp16/bf16 (or fp32, whose dots run as tf32 on tensor cores), fp32 accumulation, ReLU hidden layers,
an output activation from ``none|relu|sigmoid|exp|trunc_exp|softplus_beta100``. Hidden widths 16, 32, 64, 128; any
depth ≥ 1 hidden layer; input width ≤ 256, output width ≤ 128 (both padded to a power of two ≥ 16 on chip,
never in memory).

Forward kernel (``_mlp_fwd_kernel``): each program owns ``BLOCK_M`` rows. It loads its input tile once,
then for every layer loads that layer's weight tile (L2-resident: the whole network is ≤ 290 KB) into
registers/shared memory, multiplies with ``tl.dot`` (tensor cores) and applies bias + activation on the
fp32 accumulator. Activations stay on chip between layers; only the final output is written. In training
mode (an input requires grad) the post-ReLU activations are additionally written once, for the backward
pass (tiny-cuda-nn's "forward with activations" does the same).

Backward kernel (``_mlp_bwd_kernel``): each program walks its rows back through all layers in one launch:
output-activation derivative (recomputed from the last hidden activation), ``dh = dz @ W``, the ReLU mask,
and the weight/bias gradient contributions ``dz^T @ h``. Those contributions must be summed over all row
blocks; two strategies are implemented and were measured (``scripts/bench_kernels.py --wgrad``):

* ``"atomic"``: each program ``atomic_add``s its fp32 partials into one of ``n_slots`` copies of the
  gradient (slot = program id mod ``n_slots``), and a final ``sum`` over slots. No extra activation traffic,
  but L2 atomic throughput bounds it.
* ``"splitk"``: the fused kernel writes each layer's ``dz`` (compute dtype) to memory and a split-K
  reduction kernel computes ``dW = dz^T h`` per layer with fp32 partial sums per program, summed at the end.

Double backward (``create_graph=True``, e.g. the SDF eikonal loss) is SUPPORTED: when the first backward
must itself be differentiable, it is recomputed through the pure-torch reference (same math), so the
gradient graph exists; that step then runs at torch speed (logged once).

Importing this module imports Triton but compiles nothing; kernels compile on first launch per config.
"""

import logging
import os
from typing import no_type_check

import torch
import triton
import triton.language as tl
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.kernels.backends import hopper_mma_v2
from fieldforge.fields.kernels.fused_mlp_reference import (
    FUSED_WIDTHS,
    OUTPUT_ACTIVATIONS,
    fused_mlp_reference,
    fused_mlp_unsupported,
    next_pow2,
    unpack_params,
)

log = logging.getLogger(__name__)

_ACT_CODE = {"none": 0, "relu": 1, "sigmoid": 2, "exp": 3, "trunc_exp": 4, "softplus_beta100": 5}
"""Output activation → the ``ACT`` branch of ``_out_act``/``_out_act_grad`` (explicit: never an enumeration order)."""
assert set(_ACT_CODE) == set(OUTPUT_ACTIVATIONS), "every fused output activation needs a kernel branch"
_TL_DTYPE = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32}

# Launch configurations per hidden width: (BLOCK_M, num_warps, num_stages). Tuned on an H100
# (scripts/bench_kernels.py --tune); any value is correct, these are only the fastest measured. fp32 runs
# with num_stages=1 (pipelined fp32 weight tiles exceed shared memory). An out-of-resources launch is
# retried with half the rows per program.
FWD_CONFIG: dict[int, tuple[int, int, int]] = {16: (128, 4, 1), 32: (128, 4, 1), 64: (128, 4, 1), 128: (128, 8, 1)}
BWD_CONFIG: dict[int, tuple[int, int, int]] = {16: (128, 4, 1), 32: (128, 4, 1), 64: (128, 4, 1), 128: (128, 8, 1)}
WGRAD_STRATEGY: dict[int, str] = {16: "atomic", 32: "atomic", 64: "atomic", 128: "atomic"}
ATOMIC_SLOTS: dict[int, int] = {16: 16, 32: 16, 64: 16, 128: 16}
SPLITK_PROGRAMS = 264
SPLITK_BLOCK_M = 128
LAST_FWD_KERNEL = None
"""Handle of the last compiled forward launch (``.asm``, ``.n_regs``, ``.n_spills``): for the benchmark's report."""
LAST_BWD_KERNEL = None


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# ------------------------------------------------------------------------------------------------- kernels
@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _mm(a, b, UPCAST: tl.constexpr):
    """``a @ b`` with fp32 accumulation. UPCAST: fp32 operands (exact for bf16/fp16 products); used only
    under the CPU interpreter, whose bf16 ``tl.dot`` is wrong in Triton 3.9. fp32 operands run as tf32
    on the GPU (10-bit mantissa, like fp16)."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    else:
        return tl.dot(a, b)


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _cast(x, DTYPE: tl.constexpr, FIX: tl.constexpr):
    """``x.to(DTYPE)`` with round-to-nearest-even. FIX: emulate RNE for bf16 with bit operations, because the
    CPU interpreter of Triton 3.9 truncates fp32 → bf16 (the GPU rounds to nearest even)."""
    if FIX and DTYPE == tl.bfloat16:
        b = x.to(tl.float32).to(tl.uint32, bitcast=True)
        b = ((b + (((b >> 16) & 1) + 0x7FFF)) >> 16) << 16
        x = b.to(tl.float32, bitcast=True)
    return x.to(DTYPE)


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _out_act(z, ACT: tl.constexpr):
    if ACT == 1:
        z = tl.maximum(z, 0.0)
    elif ACT == 2:
        z = 1.0 / (1.0 + tl.exp(-z))
    elif ACT == 3:
        z = tl.exp(z)
    elif ACT == 4:
        z = tl.exp(z)
    elif ACT == 5:
        t = z * 100.0
        z = tl.where(t > 20.0, z, tl.log(1.0 + tl.exp(tl.minimum(t, 20.0))) / 100.0)
    return z


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _out_act_grad(z, ACT: tl.constexpr):
    """d act / d z at the fp32 pre-activation z."""
    if ACT == 0:
        d = tl.full(z.shape, 1.0, tl.float32)
    elif ACT == 1:
        d = tl.where(z > 0.0, 1.0, 0.0)
    elif ACT == 2:
        s = 1.0 / (1.0 + tl.exp(-z))
        d = s * (1.0 - s)
    elif ACT == 3:
        d = tl.exp(z)
    elif ACT == 4:
        d = tl.exp(tl.minimum(z, 15.0))
    else:
        t = z * 100.0
        d = tl.where(t > 20.0, 1.0, 1.0 / (1.0 + tl.exp(-t)))
    return d


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _mlp_fwd_kernel(
    X, W, B, Y, ACTS,
    n_rows, in_dim, out_dim, stride_x, stride_y,
    DTYPE: tl.constexpr, IN_PAD: tl.constexpr, WIDTH: tl.constexpr, OUT_PAD: tl.constexpr,
    N_HIDDEN: tl.constexpr, OUT_ACT: tl.constexpr, HAS_BIAS: tl.constexpr, STORE_ACTS: tl.constexpr,
    BLOCK_M: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    rows = (pid * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rmask = rows < n_rows
    k_in = tl.arange(0, IN_PAD)
    cols = tl.arange(0, WIDTH)
    kmask = k_in < in_dim

    x = tl.load(X + rows[:, None] * stride_x + k_in[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
    x = _cast(x, DTYPE, UPCAST)
    # layer 0: W0 is (WIDTH, in_dim) row-major; load its transpose (IN_PAD, WIDTH)
    w = tl.load(W + cols[None, :] * in_dim + k_in[:, None], mask=kmask[:, None], other=0.0)
    acc = _mm(x, w, UPCAST)
    if HAS_BIAS:
        acc += tl.load(B + cols).to(tl.float32)[None, :]
    h = _cast(tl.maximum(acc, 0.0), DTYPE, UPCAST)
    if STORE_ACTS:
        tl.store(ACTS + rows[:, None] * WIDTH + cols[None, :], h, mask=rmask[:, None])
    w_off = WIDTH * in_dim
    for l in range(1, N_HIDDEN):  # loop-local names: Triton requires loop-carried values to keep their shape
        wl = tl.load(W + w_off + cols[None, :] * WIDTH + cols[:, None])
        accl = _mm(h, wl, UPCAST)
        if HAS_BIAS:
            accl += tl.load(B + l * WIDTH + cols).to(tl.float32)[None, :]
        h = _cast(tl.maximum(accl, 0.0), DTYPE, UPCAST)
        if STORE_ACTS:
            tl.store(ACTS + (l * n_rows + rows[:, None]) * WIDTH + cols[None, :], h, mask=rmask[:, None])
        w_off += WIDTH * WIDTH
    # output layer: (out_dim, WIDTH) row-major, transpose loaded as (WIDTH, OUT_PAD)
    o = tl.arange(0, OUT_PAD)
    omask = o < out_dim
    w = tl.load(W + w_off + o[None, :] * WIDTH + cols[:, None], mask=omask[None, :], other=0.0)
    acc = _mm(h, w, UPCAST)
    if HAS_BIAS:
        acc += tl.load(B + N_HIDDEN * WIDTH + o, mask=omask, other=0.0).to(tl.float32)[None, :]
    y = _out_act(acc, OUT_ACT)
    tl.store(Y + rows[:, None] * stride_y + o[None, :], _cast(y, DTYPE, UPCAST), mask=rmask[:, None] & omask[None, :])


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _mlp_bwd_kernel(
    X, W, B, ACTS, DY, DX, DW, DB, DZ,
    n_rows, in_dim, out_dim, stride_x, stride_dy, stride_dx, w_numel, b_numel, n_slots,
    DTYPE: tl.constexpr, IN_PAD: tl.constexpr, WIDTH: tl.constexpr, OUT_PAD: tl.constexpr,
    N_HIDDEN: tl.constexpr, OUT_ACT: tl.constexpr, HAS_BIAS: tl.constexpr, NEED_DX: tl.constexpr,
    ATOMIC: tl.constexpr, BLOCK_M: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """ATOMIC: weight/bias grads are atomically added to slot ``pid % n_slots`` of DW/DB (fp32).
    Otherwise every layer's dz is stored to DZ (compute dtype; hidden layers ``(N_HIDDEN, n, WIDTH)``
    followed by the output layer's ``(n, OUT_PAD)``) for the split-K reduction kernel."""
    pid = tl.program_id(0)
    rows = (pid * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rmask = rows < n_rows
    cols = tl.arange(0, WIDTH)
    o = tl.arange(0, OUT_PAD)
    omask = o < out_dim
    slot = pid % n_slots
    dw_base = DW + slot.to(tl.int64) * w_numel
    db_base = DB + slot.to(tl.int64) * b_numel
    w_out = WIDTH * in_dim + (N_HIDDEN - 1) * WIDTH * WIDTH

    # ---- output layer: recompute z from the last hidden activation, apply the activation derivative
    h = tl.load(ACTS + ((N_HIDDEN - 1) * n_rows + rows[:, None]) * WIDTH + cols[None, :], mask=rmask[:, None], other=0.0)
    wt = tl.load(W + w_out + o[None, :] * WIDTH + cols[:, None], mask=omask[None, :], other=0.0)  # (WIDTH, OUT_PAD)
    z = _mm(h, wt, UPCAST)
    if HAS_BIAS:
        z += tl.load(B + N_HIDDEN * WIDTH + o, mask=omask, other=0.0).to(tl.float32)[None, :]
    dy = tl.load(DY + rows[:, None] * stride_dy + o[None, :], mask=rmask[:, None] & omask[None, :], other=0.0)
    dz = dy.to(tl.float32) * _out_act_grad(z, OUT_ACT)
    dz_c = _cast(dz, DTYPE, UPCAST)
    if ATOMIC:
        # dW^T = h^T dz with h^T loaded transposed from memory: no register transpose feeds the MMA (with
        # tl.trans(dz) as the A operand, compute-sanitizer saw out-of-bounds shared reads; Triton 3.6, H100)
        hT = tl.load(ACTS + ((N_HIDDEN - 1) * n_rows + rows[None, :]) * WIDTH + cols[:, None], mask=rmask[None, :], other=0.0)
        dwoT = _mm(hT, dz_c, UPCAST)  # (WIDTH, OUT_PAD)
        tl.atomic_add(dw_base + w_out + o[None, :] * WIDTH + cols[:, None], dwoT, mask=omask[None, :])
        if HAS_BIAS:
            tl.atomic_add(db_base + N_HIDDEN * WIDTH + o, tl.sum(dz_c.to(tl.float32), axis=0), mask=omask)
    else:
        dz_out = DZ + n_rows.to(tl.int64) * (N_HIDDEN * WIDTH)
        tl.store(dz_out + rows[:, None] * OUT_PAD + o[None, :], dz_c, mask=rmask[:, None])
    w = tl.load(W + w_out + o[:, None] * WIDTH + cols[None, :], mask=omask[:, None], other=0.0)  # (OUT_PAD, WIDTH)
    dh = _mm(dz_c, w, UPCAST)  # (BLOCK_M, WIDTH)

    # ---- hidden layers N_HIDDEN-1 .. 1
    for i in range(0, N_HIDDEN - 1):  # loop-local names: loop-carried values must keep their shape
        l = N_HIDDEN - 1 - i
        dzl = tl.where(h > 0, dh, 0.0)
        dzl_c = _cast(dzl, DTYPE, UPCAST)
        h_prev = tl.load(ACTS + ((l - 1) * n_rows + rows[:, None]) * WIDTH + cols[None, :], mask=rmask[:, None], other=0.0)
        wl_off = WIDTH * in_dim + (l - 1) * WIDTH * WIDTH
        if ATOMIC:
            hpT = tl.load(ACTS + ((l - 1) * n_rows + rows[None, :]) * WIDTH + cols[:, None], mask=rmask[None, :], other=0.0)
            dwlT = _mm(hpT, dzl_c, UPCAST)  # (WIDTH in, WIDTH out)
            tl.atomic_add(dw_base + wl_off + cols[None, :] * WIDTH + cols[:, None], dwlT)
            if HAS_BIAS:
                tl.atomic_add(db_base + l * WIDTH + cols, tl.sum(dzl_c.to(tl.float32), axis=0))
        else:
            tl.store(DZ + (l * n_rows + rows[:, None]) * WIDTH + cols[None, :], dzl_c, mask=rmask[:, None])
        wl = tl.load(W + wl_off + cols[:, None] * WIDTH + cols[None, :])
        dh = _mm(dzl_c, wl, UPCAST)
        h = h_prev

    # ---- first layer
    dz = tl.where(h > 0, dh, 0.0)
    dz_c = _cast(dz, DTYPE, UPCAST)
    k_in = tl.arange(0, IN_PAD)
    kmask = k_in < in_dim
    if ATOMIC:
        xT = tl.load(X + rows[None, :] * stride_x + k_in[:, None], mask=rmask[None, :] & kmask[:, None], other=0.0)
        xT = _cast(xT, DTYPE, UPCAST)
        dw0T = _mm(xT, dz_c, UPCAST)  # (IN_PAD, WIDTH)
        tl.atomic_add(dw_base + cols[None, :] * in_dim + k_in[:, None], dw0T, mask=kmask[:, None])
        if HAS_BIAS:
            tl.atomic_add(db_base + cols, tl.sum(dz_c.to(tl.float32), axis=0))
    else:
        tl.store(DZ + rows[:, None] * WIDTH + cols[None, :], dz_c, mask=rmask[:, None])
    if NEED_DX:
        w = tl.load(W + cols[:, None] * in_dim + k_in[None, :], mask=kmask[None, :], other=0.0)  # (WIDTH, IN_PAD)
        dx = _mm(dz_c, w, UPCAST)
        tl.store(DX + rows[:, None] * stride_dx + k_in[None, :], _cast(dx, DX.dtype.element_ty, UPCAST), mask=rmask[:, None] & kmask[None, :])


@triton.jit
@no_type_check  # keeps the jaxtyping import hook (tests) off the kernel's source
def _wgrad_splitk_kernel(
    A, Bm, P, PB, n_rows, a_layer_stride, b_layer_stride, n_a, n_b, stride_a, stride_b, rows_per_prog,
    A_PAD: tl.constexpr, B_PAD: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, UPCAST: tl.constexpr,
):  # fmt: skip
    """Partial ``A^T @ B`` over a chunk of rows (program_id(0)) for one layer (program_id(1)).

    A is dz ``(n, n_a)``, B the layer input ``(n, n_b)``; partials go to ``P[split, layer, n_a, n_b]`` (fp32)
    and the bias partials ``sum(A)`` to ``PB[split, layer, n_a]``."""
    split = tl.program_id(0)
    layer = tl.program_id(1)
    n_split = tl.num_programs(0)
    a_ptr = A + layer.to(tl.int64) * a_layer_stride
    b_ptr = Bm + layer.to(tl.int64) * b_layer_stride
    ia = tl.arange(0, A_PAD)
    ib = tl.arange(0, B_PAD)
    acc = tl.zeros((A_PAD, B_PAD), dtype=tl.float32)
    bacc = tl.zeros((A_PAD,), dtype=tl.float32)
    start = split * rows_per_prog
    for r0 in range(start, start + rows_per_prog, BLOCK_M):
        rows = (r0 + tl.arange(0, BLOCK_M)).to(tl.int64)
        rmask = rows < n_rows
        aT = tl.load(a_ptr + rows[None, :] * stride_a + ia[:, None], mask=rmask[None, :] & (ia[:, None] < n_a), other=0.0)
        b = tl.load(b_ptr + rows[:, None] * stride_b + ib[None, :], mask=rmask[:, None] & (ib[None, :] < n_b), other=0.0)
        b = _cast(b, aT.dtype, UPCAST)
        acc += _mm(aT, b, UPCAST)
        if HAS_BIAS:
            bacc += tl.sum(aT.to(tl.float32), axis=1)
    n_layers = tl.num_programs(1)
    p = P + ((split * n_layers + layer).to(tl.int64) * A_PAD) * B_PAD
    tl.store(p + ia[:, None] * B_PAD + ib[None, :], acc)
    if HAS_BIAS:
        tl.store(PB + (split * n_layers + layer).to(tl.int64) * A_PAD + ia, bacc)


# ------------------------------------------------------------------------------------------------- launchers
class _Meta:
    __slots__ = ("in_dim", "width", "out_dim", "n_hidden", "act", "dtype", "has_bias", "wgrad")

    def __init__(self, in_dim, width, out_dim, n_hidden, act, dtype, has_bias, wgrad):
        self.in_dim, self.width, self.out_dim, self.n_hidden = in_dim, width, out_dim, n_hidden
        self.act, self.dtype, self.has_bias, self.wgrad = act, dtype, has_bias, wgrad


def _upcast(dtype: torch.dtype) -> bool:
    return interpreting() and dtype == torch.bfloat16


def _launch_config(table: dict, meta: _Meta) -> tuple[int, int, int]:
    bm, warps, stages = table[meta.width]
    if meta.dtype == torch.float32:
        stages = 1
    return bm, warps, stages


def _launch(kernel, n: int, config: tuple[int, int, int], *args, **kwargs):
    """Launch over ``cdiv(n, BLOCK_M)`` programs, halving BLOCK_M if the config does not fit on chip."""
    bm, warps, stages = config
    while True:
        try:
            grid = (triton.cdiv(n, bm),)
            with hopper_mma_v2():
                return kernel[grid](*args, **kwargs, BLOCK_M=bm, num_warps=warps, num_stages=stages)
        except triton.runtime.errors.OutOfResources:
            if bm <= 16:
                raise
            log.info("fused MLP: launch config %s out of resources; retrying with BLOCK_M=%d", (bm, warps, stages), bm // 2)
            bm, stages = bm // 2, 1


def _forward(x: Tensor, w: Tensor, b: Tensor | None, meta: _Meta, store_acts: bool) -> tuple[Tensor, Tensor | None]:
    n = x.shape[0]
    y = torch.empty((n, meta.out_dim), device=x.device, dtype=meta.dtype)
    acts = torch.empty((meta.n_hidden, n, meta.width), device=x.device, dtype=meta.dtype) if store_acts else None
    if n == 0:
        return y, acts
    global LAST_FWD_KERNEL
    LAST_FWD_KERNEL = _launch(
        _mlp_fwd_kernel, n, _launch_config(FWD_CONFIG, meta),
        x, w, b if b is not None else w, y, acts if acts is not None else y,
        n, meta.in_dim, meta.out_dim, x.stride(0), y.stride(0),
        DTYPE=_TL_DTYPE[meta.dtype], IN_PAD=next_pow2(meta.in_dim), WIDTH=meta.width, OUT_PAD=next_pow2(meta.out_dim),
        N_HIDDEN=meta.n_hidden, OUT_ACT=_ACT_CODE[meta.act], HAS_BIAS=b is not None, STORE_ACTS=store_acts,
        UPCAST=_upcast(meta.dtype),
    )  # fmt: skip
    return y, acts


def _backward(
    x: Tensor, w: Tensor, b: Tensor | None, acts: Tensor, gy: Tensor, meta: _Meta, need_dx: bool
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    n = x.shape[0]
    dev = x.device
    wn, bn = w.numel(), (b.numel() if b is not None else 1)
    dx = torch.empty_like(x) if need_dx else None
    gy = gy.contiguous()
    in_pad, out_pad = next_pow2(meta.in_dim), next_pow2(meta.out_dim)
    config = _launch_config(BWD_CONFIG, meta)
    n_blocks = triton.cdiv(n, config[0])
    atomic = meta.wgrad == "atomic"
    if atomic:
        slots = max(1, min(ATOMIC_SLOTS[meta.width], n_blocks))
        dw = torch.zeros((slots, wn), device=dev, dtype=torch.float32)
        db = torch.zeros((slots, bn), device=dev, dtype=torch.float32)
        dz = dw  # unused
    else:
        slots = 1
        dw = db = torch.empty(1, device=dev, dtype=torch.float32)  # unused
        dz = torch.empty(meta.n_hidden * n * meta.width + n * out_pad, device=dev, dtype=meta.dtype)
    if n > 0:
        global LAST_BWD_KERNEL
        LAST_BWD_KERNEL = _launch(
            _mlp_bwd_kernel, n, config,
            x, w, b if b is not None else w, acts, gy, dx if dx is not None else gy, dw, db, dz,
            n, meta.in_dim, meta.out_dim, x.stride(0), gy.stride(0), dx.stride(0) if dx is not None else 0, wn, bn, slots,
            DTYPE=_TL_DTYPE[meta.dtype], IN_PAD=in_pad, WIDTH=meta.width, OUT_PAD=out_pad, N_HIDDEN=meta.n_hidden,
            OUT_ACT=_ACT_CODE[meta.act], HAS_BIAS=b is not None, NEED_DX=need_dx, ATOMIC=atomic,
            UPCAST=_upcast(meta.dtype),
        )  # fmt: skip
    if atomic:
        gw = dw.sum(0) if slots > 1 else dw[0]
        gb = (db.sum(0) if slots > 1 else db[0]) if b is not None else None
        return dx, gw, gb
    return (dx, *_splitk_wgrad(x, acts, dz, meta, n))


def _splitk_wgrad(x: Tensor, acts: Tensor, dz: Tensor, meta: _Meta, n: int) -> tuple[Tensor, Tensor | None]:
    """Weight/bias grads from stored dz: one split-K launch per layer kind, fp32 partials, one sum."""
    W, L = meta.width, meta.n_hidden
    dev = x.device
    in_pad, out_pad = next_pow2(meta.in_dim), next_pow2(meta.out_dim)
    has_bias = meta.has_bias
    dz_h = dz[: L * n * W].view(L, n, W)
    dz_o = dz[L * n * W :].view(n, out_pad)
    if n == 0:
        gw = torch.zeros(W * meta.in_dim + (L - 1) * W * W + meta.out_dim * W, device=dev)
        gb = torch.zeros(L * W + meta.out_dim, device=dev) if has_bias else None
        return gw, gb
    rows_per = max(SPLITK_BLOCK_M, triton.cdiv(triton.cdiv(n, SPLITK_PROGRAMS), SPLITK_BLOCK_M) * SPLITK_BLOCK_M)
    splits = triton.cdiv(n, rows_per)
    up = _upcast(meta.dtype)

    def launch(a: Tensor, bm: Tensor, n_layers: int, a_ls: int, b_ls: int, n_a: int, n_b: int, a_pad: int, b_pad: int, sa: int, sb: int):
        p = torch.empty((splits, n_layers, a_pad, b_pad), device=dev, dtype=torch.float32)
        pb = torch.empty((splits, n_layers, a_pad), device=dev, dtype=torch.float32)
        with hopper_mma_v2():
            _wgrad_splitk_kernel[(splits, n_layers)](
                a, bm, p, pb, n, a_ls, b_ls, n_a, n_b, sa, sb, rows_per,
                A_PAD=a_pad, B_PAD=b_pad, HAS_BIAS=has_bias, BLOCK_M=SPLITK_BLOCK_M, UPCAST=up, num_warps=4, num_stages=1 if meta.dtype == torch.float32 else 2,
            )  # fmt: skip
        return p.sum(0), pb.sum(0)

    p0, b0 = launch(dz_h[0], x, 1, 0, 0, W, meta.in_dim, W, in_pad, W, x.stride(0))
    parts = [p0[0, :, : meta.in_dim].reshape(-1)]
    bparts = [b0[0]]
    if L > 1:
        ph, bh = launch(dz_h[1:], acts[:-1], L - 1, n * W, n * W, W, W, W, W, W, W)
        parts.append(ph.reshape(-1))
        bparts.append(bh.reshape(-1))
    po, bo = launch(dz_o, acts[L - 1], 1, 0, 0, meta.out_dim, W, out_pad, W, out_pad, W)
    parts.append(po[0, : meta.out_dim, :].reshape(-1))
    bparts.append(bo[0, : meta.out_dim])
    gw = torch.cat(parts)
    gb = torch.cat(bparts) if has_bias else None
    return gw, gb


_warned_double_backward = False


class FusedMLPFunction(torch.autograd.Function):
    """``y = MLP(x)`` with the fused kernels; inputs are the fp32 master parameters packed flat."""

    @staticmethod
    def forward(ctx, x: Tensor, w_packed: Tensor, b_packed: Tensor | None, meta: _Meta):  # type: ignore[override]
        w_c = w_packed.to(meta.dtype).contiguous()
        b_c = b_packed.to(meta.dtype).contiguous() if b_packed is not None else None
        x_c = x if x.stride(-1) == 1 else x.contiguous()
        training = any(ctx.needs_input_grad[:3])
        y, acts = _forward(x_c, w_c, b_c, meta, store_acts=training)
        if training:
            ctx.save_for_backward(x, w_packed, b_packed, w_c, b_c, acts)
        ctx.meta = meta
        return y

    @staticmethod
    def backward(ctx, gy: Tensor):  # type: ignore[override]
        x, w_packed, b_packed, w_c, b_c, acts = ctx.saved_tensors
        meta: _Meta = ctx.meta
        if torch.is_grad_enabled():
            return _differentiable_backward(ctx, x, w_packed, b_packed, gy, meta)
        x_c = x if x.stride(-1) == 1 else x.contiguous()
        dx, gw, gb = _backward(x_c, w_c, b_c, acts, gy, meta, need_dx=ctx.needs_input_grad[0])
        return dx, gw, (gb if ctx.needs_input_grad[2] else None), None


def _differentiable_backward(ctx, x, w_packed, b_packed, gy, meta: _Meta):
    """create_graph=True: recompute through the reference so the returned gradients have a graph."""
    global _warned_double_backward
    if not _warned_double_backward:
        log.info("fused MLP: double backward (create_graph=True) runs through the pure-torch reference")
        _warned_double_backward = True
    inputs = [t for t, need in zip((x, w_packed, b_packed), ctx.needs_input_grad[:3]) if need]
    ws, bs = unpack_params(w_packed, b_packed, meta.in_dim, meta.width, meta.out_dim, meta.n_hidden)
    y = fused_mlp_reference(x, ws, bs, meta.act, meta.dtype)
    grads = iter(torch.autograd.grad(y, inputs, gy, create_graph=True, allow_unused=True))
    out = [next(grads) if need else None for need in ctx.needs_input_grad[:3]]
    return out[0], out[1], out[2], None


def resolve_dtype(x: Tensor, dtype: torch.dtype | None) -> torch.dtype:
    """Explicit dtype, else the autocast dtype of ``x``'s device when autocast is on, else ``x.dtype``."""
    if dtype is not None:
        return dtype
    dev = x.device.type
    if dev in ("cuda", "cpu") and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return x.dtype


def fused_mlp(
    x: Float[Tensor, "n i"],
    weights: list[Tensor],
    biases: list[Tensor] | None,
    output_activation: str = "none",
    dtype: torch.dtype | None = None,
    wgrad: str | None = None,
) -> Float[Tensor, "n o"]:
    """Fused forward (and autograd backward) of a ReLU MLP; see the module docstring for the math."""
    dt = resolve_dtype(x, dtype)
    if dt not in _TL_DTYPE:
        raise ValueError(f"fused MLP computes in fp16, bf16 or fp32, not {dt}")
    width, in_dim = weights[0].shape
    out_dim = weights[-1].shape[0]
    n_hidden = len(weights) - 1
    why = fused_mlp_unsupported(in_dim, width, out_dim, n_hidden, output_activation)
    if why is not None:
        raise ValueError(f"fused MLP cannot run this network: {why}")
    if x.shape[-1] != in_dim:
        raise ValueError(f"expected input width {in_dim}, got {tuple(x.shape)}")
    strategy = wgrad or WGRAD_STRATEGY[width]
    if strategy not in ("atomic", "splitk"):
        raise ValueError(f"unknown weight-gradient strategy {strategy!r}")
    meta = _Meta(in_dim, width, out_dim, n_hidden, output_activation, dt, biases is not None, strategy)
    w_packed = torch.cat([w.reshape(-1) for w in weights])
    b_packed = torch.cat(list(biases)) if biases is not None else None
    return FusedMLPFunction.apply(x, w_packed, b_packed, meta)


__all__ = [
    "FUSED_WIDTHS",
    "FusedMLPFunction",
    "fused_mlp",
    "fused_mlp_unsupported",
    "interpreting",
    "resolve_dtype",
]
