"""KiloNeRF tile bank (Reiser et al. 2021): a regular grid of independent tiny MLPs over the field's box.

A point is routed by its unit-cube coordinates (the ``coords`` every network receives) to the MLP of its
tile (:func:`~fieldforge.fields.kernels.tiles_reference.tile_index`: tile ``k`` covers ``[k/r, (k+1)/r)``;
points outside the box are clamped to the nearest tile). Each tile maps the encoded point ``(n, in_dim)``
through ``n_hidden_layers × width`` ReLU layers to ``out_dim`` linear outputs; every tile starts from the
same (PyTorch-default, Kaiming-uniform) initialization, as in KiloNeRF.

The grid is ``longest_axis`` tiles along the longest axis of the field's box and proportionally fewer on
the others (KiloNeRF's Lego: 9×16×10), resolved when the field is built (``for_box``); ``resolution`` sets
it explicitly. Works in any dimension: 2D tiles for images, 3D for SDFs and radiance fields (where the
radiance head's colour branch is a second bank on the same grid, so the view-dependent layers are per
tile too).

Backends: ``torch`` (sort by tile, one ``bmm`` per layer over padded blocks, biases folded into the weights
when no gradients are needed; any device; a radiance field's position and colour banks then run as one
packed chain, :meth:`TileBank.chain`), ``triton``
(grouped kernels, CUDA), ``auto`` (Triton on CUDA when installed, else torch; logged once).
"""

import math
import weakref
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from fieldforge.fields.kernels.tiles_reference import (
    Segments,
    fold_biases,
    fold_chain,
    pack_segments,
    tile_chain_folded,
    tile_index,
    tile_mlp_batched,
    tile_mlp_folded,
)
from fieldforge.fields.networks.base import Network, NetworkConfig


def tiles_for_box(extent: Float[Tensor, " d"], longest_axis: int) -> tuple[int, ...]:
    """Tiles per axis: ``longest_axis`` along the longest extent, proportional (rounded, ≥ 1) on the others."""
    ext = [float(e) for e in extent]
    top = max(ext)
    return tuple(max(1, round(longest_axis * e / top)) for e in ext)


class TileBank(Network):
    """``T`` tiny MLPs; ``weights[l]`` is ``(T, in_l, out_l)`` (applied as ``x @ W``), ``biases[l]`` ``(T, out_l)``."""

    def __init__(self, in_dim: int, out_dim: int, config: "TileBankConfig", coord_dim: int) -> None:
        super().__init__(in_dim, out_dim)
        self.config = config
        self.resolution = config.resolution or (config.longest_axis,) * coord_dim
        if len(self.resolution) != coord_dim or min(self.resolution) < 1:
            raise ValueError(f"--field.network.resolution {list(self.resolution)} (kilonerf tiles per axis) must have {coord_dim} positive entries (one per axis)")
        self.n_tiles = math.prod(self.resolution)
        dims = [in_dim] + [config.width] * config.n_hidden_layers + [out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layer = nn.Linear(d_in, d_out)  # one initialization, shared by every tile (KiloNeRF)
            self.weights.append(nn.Parameter(layer.weight.detach().T.expand(self.n_tiles, d_in, d_out).clone()))
            self.biases.append(nn.Parameter(layer.bias.detach().expand(self.n_tiles, d_out).clone()))
        self._impl: dict[str, str] = {}
        self._folded: tuple = ()
        self._chained: tuple = ()

    def tile_ids(self, coords: Float[Tensor, "n d"]) -> Int[Tensor, " n"]:
        """Tile of each unit-cube point ``(n,)`` (clamped to the grid)."""
        return tile_index(coords, self.resolution)[0]

    def backend_for(self, device: torch.device) -> str:
        impl = self._impl.get(device.type)
        if impl is None:
            from fieldforge.fields.kernels.backends import choose_backend

            what = f"KiloNeRF tile bank {'×'.join(map(str, self.resolution))} of {self.in_dim}→{self.config.width}×{self.config.n_hidden_layers}→{self.out_dim}"
            impl = choose_backend(what, self.config.backend, device, None, "tiny-cuda-nn has no grouped MLP")
            self._impl[device.type] = impl
        return impl

    def forward(self, h: Float[Tensor, "n i"], coords: Float[Tensor, "n d"] | None = None) -> Float[Tensor, "n o"]:
        if coords is None:
            raise ValueError("a KiloNeRF tile bank routes points by their unit-cube coordinates: call it with coords")
        weights, biases = list(self.weights), list(self.biases)
        if self.config.backend != "torch" and self.backend_for(h.device) == "triton":
            from fieldforge.fields.kernels.tiles_triton import tile_mlp_triton

            return tile_mlp_triton(h, self.tile_ids(coords), weights, biases)
        ids, seg = _route(coords, self.resolution, self.n_tiles)
        if torch.is_grad_enabled():
            return tile_mlp_batched(h, ids, weights, biases, seg=seg)
        return tile_mlp_folded(h, seg, self.folded())

    def folded(self) -> list[Tensor]:
        """:func:`fold_biases` of the current parameters (rebuilt after any of them changed: an optimizer step,
        a checkpoint load, a device move)."""
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if not self._folded or self._folded[0] != key:
            self._folded = (key, fold_biases(list(self.weights), list(self.biases)))
        return self._folded[1]

    def can_chain(self, head: nn.Module, device: torch.device) -> bool:
        """Whether :meth:`chain` applies: ``head`` is a tile bank on this grid with a hidden layer, and both
        evaluate with the torch backend on ``device``."""
        return (
            isinstance(head, TileBank) and head.resolution == self.resolution and head.config.n_hidden_layers > 0
            and self.config.n_hidden_layers > 0 and self.backend_for(device) == "torch" and head.backend_for(device) == "torch"
        )

    @torch.no_grad()
    def chain(
        self, h: Float[Tensor, "n i"], coords: Float[Tensor, "n d"], head: "TileBank", extra: Float[Tensor, "n e"]
    ) -> tuple[Float[Tensor, " n"], Float[Tensor, "n o"]]:
        """This bank, then ``head`` on ``[extra, this bank's outputs 1:]``, without gradients, in one packed pass
        (:func:`tile_chain_folded`; KiloNeRF's position and colour banks). Returns this bank's output 0
        ``(n,)`` and ``head``'s outputs ``(n, o)``: what ``self(h, coords)`` and ``head(cat([extra,
        out[:, 1:]]), coords)`` give, up to rounding. Check :meth:`can_chain` first."""
        if h.shape[0] == 0:
            return h.new_zeros(0), h.new_zeros(0, head.out_dim)
        first, second, n_extra = self.folded(), head.folded(), extra.shape[1]
        cached = self._chained  # rebuilt whenever either bank's folded copy was
        if not cached or cached[0] is not first or cached[1] is not second or cached[2] != n_extra:
            self._chained = cached = (first, second, n_extra, fold_chain(first, second, n_extra))
        _, seg = _route(coords, self.resolution, self.n_tiles)
        return tile_chain_folded(h, extra, seg, cached[3], self.config.n_hidden_layers)


_last_route: tuple = ()


def _route(coords: Float[Tensor, "n d"], resolution: tuple[int, ...], n_tiles: int) -> tuple[Tensor, Segments]:
    """Tile ids and packed layout of ``coords``. A radiance field's position and colour banks route the same
    coordinate tensor one after the other: the second reuses the first's sort (same tensor object, unchanged)."""
    global _last_route
    memo = _last_route
    if memo and memo[0]() is coords and memo[1] == (coords._version, resolution):
        return memo[2], memo[3]
    ids = tile_index(coords, resolution)[0]
    seg = pack_segments(ids, n_tiles)
    _last_route = (weakref.ref(coords), (coords._version, resolution), ids, seg)
    return ids, seg


@dataclass(frozen=True)
class TileBankConfig(NetworkConfig):
    """KiloNeRF: a grid of tiny ReLU MLPs over the box, each point evaluated by the MLP of its tile."""

    cli_name: ClassVar[str | None] = "kilonerf"

    resolution: tuple[int, ...] = ()
    """Tiles per axis (empty: longest-axis tiles along the box's longest axis, proportional on the others)."""
    longest_axis: int = 16
    """Tiles along the longest axis of the field's box (KiloNeRF: 16), when resolution is empty."""
    width: int = 32
    """Hidden width of every tile's MLP."""
    n_hidden_layers: int = 2
    """Hidden ReLU layers per tile (KiloNeRF: 2 before the density/feature heads, 1 in the colour branch)."""
    backend: Literal["torch", "triton", "auto"] = "auto"
    """'torch' (sorted, padded batched matmul), 'triton' (grouped kernels on CUDA), 'auto' (Triton on CUDA if installed)."""

    def for_box(self, extent: Float[Tensor, " d"]) -> "TileBankConfig":
        """This config with the tile resolution fixed for a box of this extent (unchanged when set explicitly)."""
        if self.resolution:
            return self
        return replace(self, resolution=tiles_for_box(extent, self.longest_axis))

    def setup(self, in_dim: int, out_dim: int, coord_dim: int) -> TileBank:
        return TileBank(in_dim, out_dim, self, coord_dim)


__all__ = ["TileBank", "TileBankConfig", "tiles_for_box"]
