"""Hash grid encoding through the chosen backend: the pure-torch reference or the Triton kernel (lazy)."""

import torch

from fieldforge.fields.kernels.backends import Backend, choose_backend, hash_grid_triton_unsupported
from fieldforge.fields.kernels.hashgrid_reference import HashGridLayout, hash_grid_encode


def hash_grid_encode_backend(x: torch.Tensor, table: torch.Tensor, layout: HashGridLayout, backend: Backend = "auto") -> torch.Tensor:
    """Hash grid encoding through the chosen backend (``fields.kernels.hashgrid_reference.hash_grid_encode`` is the
    reference). tcnn's HashGrid is never used: its vertex convention differs (see ``tcnn_backend``)."""
    impl = "torch"
    if backend != "torch":
        tcnn_why = "tcnn's HashGrid uses another vertex convention (x·scale + 0.5): not the same function"
        impl = choose_backend(
            f"hash grid {layout.in_dim}D×{layout.n_levels}", backend, x.device, hash_grid_triton_unsupported(table, layout.in_dim), tcnn_why
        )
    if impl == "triton":
        from fieldforge.fields.kernels.hashgrid_triton import hash_grid_encode_triton

        return hash_grid_encode_triton(x, table, layout)
    return hash_grid_encode(x, table, layout)


__all__ = ["hash_grid_encode_backend"]
