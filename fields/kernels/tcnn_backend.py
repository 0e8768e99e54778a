"""tiny-cuda-nn backend: run our MLP configs on tcnn's ``FullyFusedMLP`` when ``tinycudann`` imports.

Our modules keep their own parameters (``layers.N.weight``, fp32; checkpoints do not change with the
backend). Every forward packs them into tcnn's flat fp16 parameter vector and calls the native module,
so gradients flow back to our parameters through the packing.

tcnn's constraints, and how they are mapped:

* hidden width ∈ {16, 32, 64, 128}; no biases (tcnn's MLPs have none: a config with ``bias=True`` does
  not fit); no skip connections; hidden activation ∈ {relu, tanh, none} and output activation ∈ {none,
  relu, sigmoid, exp} (our ``softplus_beta100`` has β = 100, tcnn's Softplus β = 1; our ``trunc_exp`` clamps its gradient:
  neither maps, so such configs do not fit);
* parameters: fp16, layer matrices row-major ``(out, in)`` one after the other, the first layer's input
  padded with zero columns to a multiple of 16 and the last layer's output padded with zero rows to a
  multiple of 16 (:func:`pack_tcnn_mlp_params`);
* batch: padded with zero rows to a multiple of 256 (``BATCH_GRANULARITY``), outputs sliced back;
* precision: fp16 throughout (inputs are passed as fp32 as the bindings expect; outputs are fp16);
  the backward scales the loss gradient by 128 (as tcnn's own ``Module`` does) to avoid fp16 underflow;
* double backward: tcnn's FullyFusedMLP has none; a differentiable first backward (``create_graph``)
  is recomputed through the pure-torch reference at fp16, logged once.

The hash grid is NOT mapped onto tcnn's ``HashGrid``: tcnn positions a point at ``x·scale + 0.5`` with
``scale = N_min·b^l − 1`` and sizes levels differently, so the same table would encode a different
function (see ``/work/notes/kernels.md``). ``hash_grid_tcnn_unsupported`` says so, and ``auto`` then
uses Triton.
"""

import math

import torch
from torch import Tensor

from fieldforge.fields.kernels.backends import log_once
from fieldforge.fields.kernels.fused_mlp_reference import FUSED_WIDTHS, fused_mlp_reference

BATCH_GRANULARITY = 256
LOSS_SCALE = 128.0
TCNN_HIDDEN_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "none": "None"}
TCNN_OUTPUT_ACTIVATIONS = {"none": "None", "relu": "ReLU", "sigmoid": "Sigmoid", "exp": "Exponential"}


def ceil_to(v: int, m: int) -> int:
    return (v + m - 1) // m * m


def tcnn_mlp_unsupported(
    in_dim: int, out_dim: int, width: int, n_hidden: int, activation: str, output_activation: str, bias: bool, skips: tuple
) -> str | None:
    """Why an MLP config does not fit tcnn's FullyFusedMLP (``None`` when it does)."""
    if width not in FUSED_WIDTHS:
        return f"width {width} not in {FUSED_WIDTHS}"
    if bias:
        return "tcnn MLPs have no biases (set bias=False)"
    if skips:
        return "tcnn MLPs have no skip connections"
    if n_hidden < 1:
        return "needs at least one hidden layer"
    if activation not in TCNN_HIDDEN_ACTIVATIONS:
        return f"hidden activation {activation!r} has no tcnn equivalent"
    if output_activation not in TCNN_OUTPUT_ACTIVATIONS:
        return f"output activation {output_activation!r} has no tcnn equivalent"
    return None


def tcnn_network_config(width: int, n_hidden: int, activation: str, output_activation: str) -> dict:
    return {
        "otype": "FullyFusedMLP",
        "activation": TCNN_HIDDEN_ACTIVATIONS[activation],
        "output_activation": TCNN_OUTPUT_ACTIVATIONS[output_activation],
        "n_neurons": width,
        "n_hidden_layers": n_hidden,
    }


def pack_tcnn_mlp_params(weights: list[Tensor], dtype: torch.dtype = torch.float16) -> Tensor:
    """Our ``(out, in)`` layer weights → tcnn's flat parameter vector (differentiable)."""
    in_dim, out_dim = weights[0].shape[1], weights[-1].shape[0]
    in_pad, out_pad = ceil_to(in_dim, 16), ceil_to(out_dim, 16)
    first = torch.nn.functional.pad(weights[0], (0, in_pad - in_dim))
    last = torch.nn.functional.pad(weights[-1], (0, 0, 0, out_pad - out_dim))
    return torch.cat([first.reshape(-1)] + [w.reshape(-1) for w in weights[1:-1]] + [last.reshape(-1)]).to(dtype)


def unpack_tcnn_mlp_params(params: Tensor, in_dim: int, out_dim: int, width: int, n_hidden: int) -> list[Tensor]:
    """Inverse of :func:`pack_tcnn_mlp_params` (drops the padding)."""
    in_pad, out_pad = ceil_to(in_dim, 16), ceil_to(out_dim, 16)
    sizes = [width * in_pad] + [width * width] * (n_hidden - 1) + [out_pad * width]
    chunks = torch.split(params, sizes)
    ws = [chunks[0].view(width, in_pad)[:, :in_dim]]
    ws += [c.view(width, width) for c in chunks[1:-1]]
    ws.append(chunks[-1].view(out_pad, width)[:out_dim])
    return ws


def n_tcnn_mlp_params(in_dim: int, out_dim: int, width: int, n_hidden: int) -> int:
    return width * ceil_to(in_dim, 16) + (n_hidden - 1) * width * width + ceil_to(out_dim, 16) * width


class _TcnnMLPFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, params: Tensor, runner: "TcnnMLP"):  # type: ignore[override]
        n = x.shape[0]
        n_pad = max(BATCH_GRANULARITY, ceil_to(n, BATCH_GRANULARITY))
        xp = torch.nn.functional.pad(x.float(), (0, 0, 0, n_pad - n)).contiguous()
        native_ctx, out = runner.native.fwd(xp, params)
        ctx.save_for_backward(x, params, xp, out)
        ctx.native_ctx, ctx.runner, ctx.n = native_ctx, runner, n
        return out[:n, : runner.out_dim]

    @staticmethod
    def backward(ctx, gy: Tensor):  # type: ignore[override]
        x, params, xp, out = ctx.saved_tensors
        runner: TcnnMLP = ctx.runner
        if torch.is_grad_enabled():
            log_once("tcnn MLP: double backward (create_graph=True) runs through the pure-torch reference (fp16)")
            ws = unpack_tcnn_mlp_params(params, runner.in_dim, runner.out_dim, runner.width, runner.n_hidden)
            need = ctx.needs_input_grad[:2]
            inputs = [t for t, nd in zip((x, params), need) if nd]
            y = fused_mlp_reference(x, ws, None, runner.output_activation, torch.float16)
            grads = iter(torch.autograd.grad(y, inputs, gy, create_graph=True, allow_unused=True))
            gx, gp = [next(grads) if nd else None for nd in need]
            return gx, gp, None
        g = torch.zeros_like(out)
        g[: ctx.n, : runner.out_dim] = gy.to(out.dtype) * LOSS_SCALE
        gx, gp = runner.native.bwd(ctx.native_ctx, xp, params, out, g)
        gx = None if gx is None or not ctx.needs_input_grad[0] else (gx[: ctx.n] / LOSS_SCALE).to(x.dtype)
        gp = None if gp is None or not ctx.needs_input_grad[1] else gp / LOSS_SCALE
        return gx, gp, None


class TcnnMLP:
    """Holds a native tcnn FullyFusedMLP (not an ``nn.Module``: parameters stay in our MLP)."""

    def __init__(self, in_dim: int, out_dim: int, width: int, n_hidden: int, activation: str, output_activation: str):
        import tinycudann as tcnn

        self.in_dim, self.out_dim, self.width, self.n_hidden = in_dim, out_dim, width, n_hidden
        self.output_activation = output_activation
        net = tcnn.Network(in_dim, out_dim, tcnn_network_config(width, n_hidden, activation, output_activation))
        expected = n_tcnn_mlp_params(in_dim, out_dim, width, n_hidden)
        if net.params.numel() != expected:
            raise RuntimeError(f"unexpected tcnn parameter layout: {net.params.numel()} parameters, expected {expected}")
        self.native = net.native_tcnn_module
        self._keepalive = net

    def __call__(self, x: Tensor, weights: list[Tensor]) -> Tensor:
        params = pack_tcnn_mlp_params(weights, torch.float16).contiguous()
        return _TcnnMLPFunction.apply(x, params, self)


def hash_grid_tcnn_unsupported() -> str:
    return "tcnn's HashGrid uses another vertex convention (x·scale + 0.5), so the same table encodes a different function"


def native_batch_size(n: int) -> int:
    """The batch tcnn actually runs for ``n`` samples."""
    return max(BATCH_GRANULARITY, math.ceil(n / BATCH_GRANULARITY) * BATCH_GRANULARITY)


__all__ = [
    "BATCH_GRANULARITY",
    "TcnnMLP",
    "hash_grid_tcnn_unsupported",
    "n_tcnn_mlp_params",
    "native_batch_size",
    "pack_tcnn_mlp_params",
    "tcnn_mlp_unsupported",
    "tcnn_network_config",
    "unpack_tcnn_mlp_params",
]
