"""Every named activation, in one table: a name means one function everywhere (networks, density, kernels).

=====================  ====================================================================================
name                   function
=====================  ====================================================================================
``none``               identity
``relu``               ``max(x, 0)``
``silu``               ``x·sigmoid(x)``
``tanh``               ``tanh(x)``
``sigmoid``            ``1 / (1 + exp(−x))``
``exp``                ``exp(x)``
``trunc_exp``          ``exp(x)`` whose gradient is ``exp(min(x, 15))`` (instant-ngp's density activation)
``softplus``           ``log(1 + exp(x))`` (β = 1, ``torch.nn.functional.softplus``'s default; NeRF's density)
``softplus_beta100``   ``log(1 + exp(100·x)) / 100`` (β = 100: the sharp softplus of IGR / DeepSDF / SAL SDF
                       networks, close to ReLU but smooth, so eikonal gradients exist everywhere)
=====================  ====================================================================================

Before this table existed, networks called the β = 100 function ``softplus`` while the radiance density
called the β = 1 function ``softplus``. Networks now reject the bare name (``check_activation``) rather
than silently change a saved config's function: write ``softplus_beta100`` for the former network meaning.
"""

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

TRUNC_EXP_MAX = 15.0
"""``trunc_exp``'s gradient is ``exp(min(x, TRUNC_EXP_MAX))``."""
SHARP_SOFTPLUS_BETA = 100.0
"""β of ``softplus_beta100``."""


class _TruncExp(torch.autograd.Function):
    """exp with the gradient clamped at exp(15) (instant-ngp); the backward is torch ops, so twice differentiable."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=TRUNC_EXP_MAX))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


def _identity(x: Tensor) -> Tensor:
    return x


def softplus(x: Tensor) -> Tensor:
    """β = 1 softplus."""
    return F.softplus(x)


def softplus_beta100(x: Tensor) -> Tensor:
    """β = 100 softplus (SDF networks)."""
    return F.softplus(x, beta=SHARP_SOFTPLUS_BETA)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "none": _identity,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "exp": torch.exp,
    "trunc_exp": trunc_exp,
    "softplus": softplus,
    "softplus_beta100": softplus_beta100,
}
"""The one activation table (see the module docstring)."""

HiddenActivation = Literal["relu", "softplus_beta100", "silu", "tanh", "none"]
"""Hidden-layer activations of networks."""
OutputActivation = Literal["none", "sigmoid", "relu", "exp", "trunc_exp", "softplus_beta100"]
"""Last-layer activations of networks (fields usually apply their own head activation instead)."""
DensityActivation = Literal["trunc_exp", "softplus", "relu"]
"""σ = act(raw) of the radiance head: 'trunc_exp' (instant-ngp), 'softplus' (β = 1) or 'relu' (NeRF)."""

HIDDEN_ACTIVATIONS: tuple[str, ...] = get_args(HiddenActivation)
OUTPUT_ACTIVATIONS: tuple[str, ...] = get_args(OutputActivation)
DENSITY_ACTIVATIONS: tuple[str, ...] = get_args(DensityActivation)


def activation_fn(name: str, x: Tensor) -> Tensor:
    """Apply the named activation of :data:`ACTIVATIONS`."""
    fn = ACTIVATIONS.get(name)
    if fn is None:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return fn(x)


def check_activation(name: str, allowed: tuple[str, ...], what: str) -> None:
    """Reject an activation ``name`` not in ``allowed`` for ``what`` (with the rename note for networks)."""
    if name in allowed:
        return
    hint = ""
    if name == "softplus" and "softplus_beta100" in allowed:
        hint = " (networks used to call the β=100 softplus 'softplus'; it is 'softplus_beta100' now, 'softplus' is β=1)"
    raise ValueError(f"{what} {name!r} is not one of {allowed}{hint}")


__all__ = [
    "ACTIVATIONS",
    "DENSITY_ACTIVATIONS",
    "DensityActivation",
    "HIDDEN_ACTIVATIONS",
    "HiddenActivation",
    "OUTPUT_ACTIVATIONS",
    "OutputActivation",
    "SHARP_SOFTPLUS_BETA",
    "TRUNC_EXP_MAX",
    "activation_fn",
    "check_activation",
    "softplus",
    "softplus_beta100",
    "trunc_exp",
]
