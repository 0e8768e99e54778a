"""Backend selection shared by every fast path: capability functions, the logged choice, Triton helpers.

Imports neither ``triton`` nor ``tinycudann`` (``has_triton()``/``has_tcnn()`` try them on first call) and
nothing else of the package, so every kernel module and the package ``__init__`` can import it.

Backend names used by the modules (``MLPConfig.backend``, ``HashGridEncodingConfig.backend``):
``"torch"`` (reference, every config, every device), ``"triton"`` (CUDA; on CPU only under
``TRITON_INTERPRET=1``), ``"tcnn"`` (tiny-cuda-nn, CUDA, when it imports and the config fits), ``"auto"``
(tcnn if installed and the config fits, else Triton on CUDA, else torch). The choice is logged once.
"""

import importlib
import importlib.util
import logging
import os
from functools import lru_cache
from typing import Literal

import torch

log = logging.getLogger("fieldforge.fields.kernels")

Backend = Literal["torch", "triton", "tcnn", "auto"]
Impl = Literal["torch", "triton", "tcnn"]

_logged: set[str] = set()
_in_use: dict[str, str] = {}


@lru_cache(maxsize=None)
def has_triton() -> bool:
    """Whether ``triton`` imports (it installs on CPU-only machines too; it runs kernels on CUDA GPUs)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:  # broken installs raise all sorts of errors
        return False
    return True


@lru_cache(maxsize=None)
def has_tcnn() -> bool:
    """Whether ``tinycudann`` (tiny-cuda-nn's PyTorch bindings) imports; it needs a CUDA GPU to import."""
    if importlib.util.find_spec("tinycudann") is None:
        return False
    try:
        import tinycudann  # noqa: F401
    except Exception:  # raises EnvironmentError without CUDA or without a matching compiled extension
        return False
    return True


def triton_interpreting() -> bool:
    """``TRITON_INTERPRET=1``: Triton kernels run on the CPU through its interpreter (tests only: slow)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def log_once(message: str, level: int = logging.INFO) -> None:
    """Log a backend decision once per process (never silent, never repeated every step)."""
    if message not in _logged:
        _logged.add(message)
        log.log(level, message)


def choose_backend(what: str, requested: Backend, device: torch.device, triton_unsupported: str | None,
                   tcnn_unsupported: str | None) -> Impl:
    """Resolve a requested backend for tensors on ``device`` (see ``_resolve``) and remember the decision."""
    impl = _resolve(what, requested, device, triton_unsupported, tcnn_unsupported)
    _in_use[what] = impl
    return impl


def backends_in_use() -> dict[str, Impl]:
    """The backend each kind of module resolved to in this process, most recent decision (for the viewer)."""
    return dict(_in_use)


def _resolve(
    what: str,
    requested: Backend,
    device: torch.device,
    triton_unsupported: str | None,
    tcnn_unsupported: str | None,
) -> Impl:
    """Resolve a requested backend for tensors on ``device``; logs the decision (and any fallback) once.

    ``*_unsupported`` are the reasons the configuration does not fit that backend (``None``: it fits).
    Explicit ``"triton"``/``"tcnn"`` on a configuration that does not fit should be rejected by the caller
    at construction; here they fall back to torch only for environment reasons (no CUDA, not installed),
    with a warning.
    """
    if requested == "torch":
        return "torch"
    cuda = device.type == "cuda"
    if requested == "tcnn":
        if not has_tcnn():
            why = "tinycudann is not installed"
        elif not cuda:
            why = f"tensors are on {device.type}"
        else:
            why = tcnn_unsupported
        if why is None:
            log_once(f"{what}: backend 'tcnn' (tiny-cuda-nn)")
            return "tcnn"
        log_once(f"{what}: backend 'tcnn' unavailable ({why}); using the torch reference", logging.WARNING)
        return "torch"
    if requested == "triton":
        if triton_unsupported is None and has_triton() and (cuda or (device.type == "cpu" and triton_interpreting())):
            log_once(f"{what}: backend 'triton' (fused kernels{', interpreted on CPU' if not cuda else ''})")
            return "triton"
        why = triton_unsupported or ("triton is not installed" if not has_triton() else f"tensors are on {device.type}")
        log_once(f"{what}: backend 'triton' unavailable ({why}); using the torch reference", logging.WARNING)
        return "torch"
    if requested != "auto":
        raise ValueError(f"unknown backend {requested!r}")
    reasons = []
    if not cuda:
        reasons.append(f"tensors are on {device.type}")
    else:
        if not has_tcnn():
            reasons.append("tcnn: not installed")
        elif tcnn_unsupported is not None:
            reasons.append(f"tcnn: {tcnn_unsupported}")
        else:
            log_once(f"{what}: backend auto → 'tcnn' (tiny-cuda-nn installed and the config fits)")
            return "tcnn"
        if not has_triton():
            reasons.append("triton: not installed")
        elif triton_unsupported is not None:
            reasons.append(f"triton: {triton_unsupported}")
        else:
            log_once(f"{what}: backend auto → 'triton' ({'; '.join(reasons)})")
            return "triton"
    log_once(f"{what}: backend auto → 'torch' ({'; '.join(reasons)})")
    return "torch"


def hash_grid_triton_unsupported(table: torch.Tensor, in_dim: int) -> str | None:
    """Why the Triton hash grid cannot run this table (``None`` when it can); imports no Triton."""
    f = table.shape[1]
    if table.dtype != torch.float32:
        return f"table dtype {table.dtype} (the kernel is fp32)"
    if f & (f - 1) or f > 16:
        return f"features per level {f} (a power of two ≤ 16 is needed)"
    if in_dim > 3:
        return f"{in_dim} input dimensions"
    return None


class hopper_mma_v2:
    """Context manager: compile Triton kernels launched inside it without Hopper's wgmma (``DISABLE_MMA_V3``).

    With wgmma, Triton 3.6 miscompiled the fused MLP backward on an H100: compute-sanitizer reported
    out-of-bounds shared-memory reads inside ``tl.dot`` and results were wrong or faulted at some shapes;
    with the mma.sync path every parity case passed (``/work/notes/kernels.md``). The variable is read
    when a kernel compiles (its first launch per config); it has no effect on other GPUs.
    """

    def __enter__(self):
        self._old = os.environ.get("DISABLE_MMA_V3")
        os.environ["DISABLE_MMA_V3"] = "1"

    def __exit__(self, *exc):
        if self._old is None:
            os.environ.pop("DISABLE_MMA_V3", None)
        else:
            os.environ["DISABLE_MMA_V3"] = self._old


__all__ = ["Backend", "Impl", "backends_in_use", "choose_backend", "hash_grid_triton_unsupported", "hopper_mma_v2", "has_tcnn", "has_triton", "log_once", "triton_interpreting"]
