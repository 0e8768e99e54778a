"""Pure-torch reference of exactly the math the fused Triton MLP kernel computes (the parity oracle).

Semantics shared by the reference and the kernel (``fields/kernels/fused_mlp.py``):

* The network is ``len(weights)`` linear layers: ``weights[0]`` is ``(width, in_dim)``, the hidden ones
  ``(width, width)``, the last ``(out_dim, width)`` (``nn.Linear`` layout). Hidden layers use ReLU; the last
  layer uses ``output_activation`` (``none``, ``relu``, ``sigmoid``, ``exp``, ``trunc_exp``,
  ``softplus_beta100``: the network output activations of the one table, ``fields.activations``).
* ``dtype`` is the compute dtype (fp16, bf16 or fp32). The input, every weight and every bias are rounded
  to it (like ``torch.autocast``); products are accumulated in fp32, the bias is added in fp32, the
  activation is evaluated in fp32 and the result is rounded back to ``dtype`` before the next layer. The
  output is returned in ``dtype``.
* Backward: the gradient of every pre-activation (``dz``, fp32) is rounded to ``dtype`` before it is
  multiplied with the weights and the layer inputs and summed for the bias (the kernel feeds ``dz`` to the
  tensor cores in ``dtype``); products accumulate in fp32. Weight and bias gradients come back in fp32
  (the dtype of the master parameters), input gradients in the input's dtype.

This module imports no Triton and is what the ``torch`` backend would compute under the same rounding.
"""

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.activations import OUTPUT_ACTIVATIONS, TRUNC_EXP_MAX, activation_fn

FUSED_WIDTHS = (16, 32, 64, 128)
"""Hidden widths the fused kernel supports (as tiny-cuda-nn's FullyFusedMLP)."""
MAX_IN_DIM = 256
MAX_OUT_DIM = 128


class _Round(torch.autograd.Function):
    """Round to ``dtype`` but keep fp32 storage; the gradient passes through unrounded (straight-through),
    as in the kernel, which never rounds activation gradients, weight gradients or input gradients."""

    @staticmethod
    def forward(ctx, x, dtype):  # type: ignore[override]
        return x.to(dtype).float()

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g, None


class _RoundGrad(torch.autograd.Function):
    """Identity whose backward rounds the incoming gradient to ``dtype`` (and back to fp32)."""

    @staticmethod
    def forward(ctx, z, dtype):  # type: ignore[override]
        ctx.dtype = dtype
        return z.view_as(z)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        return g.to(ctx.dtype).to(g.dtype), None


def output_activation_ref(name: str, z: Tensor) -> Tensor:
    """The output activation evaluated in fp32 on the fp32 pre-activation ``z`` (the one activation table)."""
    if name not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"unknown output activation {name!r}; expected one of {OUTPUT_ACTIVATIONS}")
    return activation_fn(name, z)


def fused_mlp_reference(
    x: Float[Tensor, "n i"],
    weights: list[Tensor],
    biases: list[Tensor] | None,
    output_activation: str = "none",
    dtype: torch.dtype = torch.float16,
) -> Float[Tensor, "n o"]:
    """Forward of the fused MLP in plain torch ops (differentiable, also twice)."""
    if len(weights) < 2:
        raise ValueError("the fused MLP has at least one hidden layer (two linear layers)")
    h = _Round.apply(x, dtype)
    last = len(weights) - 1
    for i, w in enumerate(weights):
        z = h @ _Round.apply(w, dtype).t()
        if biases is not None:
            z = z + _Round.apply(biases[i], dtype)
        z = _RoundGrad.apply(z, dtype)
        if i < last:
            h = _Round.apply(F.relu(z), dtype)
        else:
            h = output_activation_ref(output_activation, z).to(dtype)
    return h


def unpack_params(
    w_packed: Tensor, b_packed: Tensor | None, in_dim: int, width: int, out_dim: int, n_hidden: int
) -> tuple[list[Tensor], list[Tensor] | None]:
    """Split the flat parameter vectors the kernel uses back into per-layer views (differentiable)."""
    sizes = [width * in_dim] + [width * width] * (n_hidden - 1) + [out_dim * width]
    shapes = [(width, in_dim)] + [(width, width)] * (n_hidden - 1) + [(out_dim, width)]
    ws = [p.view(s) for p, s in zip(torch.split(w_packed, sizes), shapes)]
    bs = None
    if b_packed is not None:
        bs = list(torch.split(b_packed, [width] * n_hidden + [out_dim]))
    return ws, bs


def fused_mlp_flops(n: int, in_dim: int, width: int, out_dim: int, n_hidden: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass over ``n`` samples."""
    macs = in_dim * width + (n_hidden - 1) * width * width + width * out_dim
    return 2 * n * macs


def fused_mlp_unsupported(in_dim: int, width: int, out_dim: int, n_hidden: int, output_activation: str) -> str | None:
    """Why a ReLU MLP of this shape cannot run fused (``None`` when it can)."""
    if width not in FUSED_WIDTHS:
        return f"width {width} not in {FUSED_WIDTHS}"
    if n_hidden < 1:
        return "needs at least one hidden layer"
    if not 1 <= in_dim <= MAX_IN_DIM:
        return f"input width {in_dim} not in [1, {MAX_IN_DIM}]"
    if not 1 <= out_dim <= MAX_OUT_DIM:
        return f"output width {out_dim} not in [1, {MAX_OUT_DIM}]"
    if output_activation not in OUTPUT_ACTIVATIONS:
        return f"output activation {output_activation!r} not fused"
    return None


def next_pow2(v: int, minimum: int = 16) -> int:
    return max(minimum, 1 << math.ceil(math.log2(max(1, v))))


__all__ = [
    "FUSED_WIDTHS",
    "MAX_IN_DIM",
    "MAX_OUT_DIM",
    "fused_mlp_unsupported",
    "OUTPUT_ACTIVATIONS",
    "TRUNC_EXP_MAX",
    "fused_mlp_flops",
    "fused_mlp_reference",
    "next_pow2",
    "output_activation_ref",
    "unpack_params",
]
