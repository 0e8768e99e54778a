"""Fast paths: fused Triton kernels and the tiny-cuda-nn bridge. Optional and lazy.

Importing this package imports neither ``triton`` nor ``tinycudann`` and compiles nothing; the kernel
modules (``fused_mlp``, ``hashgrid_triton``, ``tcnn_backend``) are imported on first use, and Triton compiles
a kernel on its first launch for a given configuration. Every kernel has a pure-torch reference in this
package (``fused_mlp_reference``, ``hashgrid_reference``) and parity tests (``tests/test_kernels_*.py``).

Dependencies point one way: ``backends`` (capabilities, the logged choice) and the references import
nothing of the package; kernels and dispatchers import those, never this ``__init__``; the encodings and
networks import the kernels package, never the reverse.

Backend names used by the modules (``MLPConfig.backend``, ``HashGridEncodingConfig.backend``):
``"torch"`` (reference, every config, every device), ``"triton"`` (CUDA; on CPU only under
``TRITON_INTERPRET=1``), ``"tcnn"`` (tiny-cuda-nn, CUDA, when it imports and the config fits), ``"auto"``
(tcnn if installed and the config fits, else Triton on CUDA, else torch). The choice is logged once.
"""

import importlib

from fieldforge.fields.kernels.backends import (
    Backend,
    Impl,
    choose_backend,
    has_tcnn,
    has_triton,
    hash_grid_triton_unsupported,
    hopper_mma_v2,
    log,
    log_once,
    triton_interpreting,
)
from fieldforge.fields.kernels.hashgrid_backend import hash_grid_encode_backend

_LAZY_MODULES = ("fused_mlp", "fused_mlp_reference", "hashgrid_reference", "hashgrid_triton", "tcnn_backend")


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"fieldforge.fields.kernels.{name}")
    raise AttributeError(f"module 'fieldforge.fields.kernels' has no attribute {name!r}")


__all__ = [
    "Backend",
    "Impl",
    "choose_backend",
    "hash_grid_encode_backend",
    "hash_grid_triton_unsupported",
    "hopper_mma_v2",
    "has_tcnn",
    "has_triton",
    "log",
    "log_once",
    "triton_interpreting",
]
