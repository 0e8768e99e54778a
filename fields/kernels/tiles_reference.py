"""KiloNeRF tile banks in pure torch: routing points to tiles and evaluating one tiny MLP per tile.

A tile bank is ``T = prod(resolution)`` independent MLPs, all with the same layer shapes. Layer ``l`` of
every tile is stacked into ``weights[l] (T, in_l, out_l)`` (applied as ``x @ W``) and ``biases[l] (T, out_l)``;
hidden layers use ReLU, the last layer is linear.

Routing (:func:`tile_index`): tile ``k`` along an axis of ``r`` tiles holds the unit coordinates
``k/r ≤ u < (k+1)/r`` (edges computed in the points' dtype, so a point exactly on an inner edge goes to the
upper tile, whatever the rounding of ``u·r``); ``u = 1`` belongs to the last tile. Points outside
``[0,1]^d`` are **clamped** to the nearest tile and flagged (``inside`` is False for them). Tiles are
numbered row-major, axis 0 slowest (as :class:`~fieldforge.fields.rendering.occupancy_grid.OccupancyGrid`).

Evaluation:

- :func:`tile_mlp_per_point`: gathers each point's weights (``n × in × out`` memory): the obvious
  reference, used in tests (in float64).
- :func:`tile_mlp_batched`: sorts points by tile, pads each tile's segment to a multiple of ``block`` rows
  and runs every layer as one ``torch.bmm`` over the blocks (each block belongs to one tile); the waste is
  at most ``block − 1`` rows per occupied tile, whatever the imbalance between tiles (``block`` follows the
  mean points per occupied tile, 8–64). Differentiable.
  :func:`pack_segments` computes the layout; the Triton kernels (``tiles_triton``) use the same one.
- :func:`tile_mlp_folded`: the same layout without gradients, the biases folded into the weights
  (:func:`fold_biases`, built once per set of weights): one weight gather and one ``bmm`` per layer (renderers).
- :func:`tile_chain_folded`: two banks on the same grid in one packed pass without gradients (KiloNeRF's
  position bank, then its colour bank on ``[extra inputs, the first bank's outputs 1:]``), the first bank's
  linear last layer multiplied into the second bank's first layer (:func:`fold_chain`): one layer fewer.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

BLOCK = 64
"""Most rows per block of the padded tile segments (one ``bmm`` batch entry / one Triton program)."""
MIN_BLOCK = 8
"""Fewest rows per block (the Triton kernels use at least 16: ``tl.dot``'s smallest tile)."""


def tile_index(unit: Float[Tensor, "n d"], resolution: tuple[int, ...]) -> tuple[Int[Tensor, " n"], Tensor]:
    """Flat tile id ``(n,)`` of unit-cube points and whether each point lies inside ``[0,1]^d``.

    Tile ``k`` of an axis with ``r`` tiles covers ``[k/r, (k+1)/r)`` (the last one includes 1); points
    outside the cube are clamped to the nearest tile and flagged ``inside = False``.
    """
    if unit.ndim != 2 or unit.shape[1] != len(resolution):
        raise ValueError(f"tile_index: points must be (n, {len(resolution)}), got {tuple(unit.shape)}")
    res = torch.tensor(resolution, device=unit.device)
    rf = res.to(unit.dtype)
    inside = ((unit >= 0) & (unit <= 1)).all(dim=-1)
    ijk = torch.floor(unit * rf).long()
    ijk = torch.minimum(torch.maximum(ijk, torch.zeros_like(ijk)), res - 1)
    # exact edges: a point on k/r (as rounded in this dtype) belongs to tile k whatever u·r rounds to
    lo = ijk.to(unit.dtype) / rf
    hi = (ijk + 1).to(unit.dtype) / rf
    ijk = ijk - ((unit < lo) & (ijk > 0)).long() + ((unit >= hi) & (ijk < res - 1)).long()
    flat = torch.zeros_like(ijk[:, 0])
    for a in range(len(resolution)):
        flat = flat * resolution[a] + ijk[:, a]
    return flat, inside


def tile_centers(resolution: tuple[int, ...]) -> Float[Tensor, "t d"]:
    """Unit-cube centre of every tile ``(T, d)`` in tile-id order."""
    axes = [(torch.arange(r, dtype=torch.float64) + 0.5) / r for r in resolution]
    grid = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grid], dim=-1).float()


@dataclass
class Segments:
    """Points sorted by tile and padded to whole blocks: point ``p`` sits at row ``slot[p]`` of the packed
    ``(n_blocks·block, c)`` layout; block ``b`` belongs to tile ``block_tile[b]``; tile ``t`` owns blocks
    ``tile_blocks[t] .. tile_blocks[t+1]``."""

    slot: Tensor
    block_tile: Tensor
    tile_blocks: Tensor
    block: int

    @property
    def n_blocks(self) -> int:
        return int(self.block_tile.shape[0])

    @property
    def rows(self) -> int:
        return self.n_blocks * self.block

    def pack(self, x: Float[Tensor, "n c"]) -> Float[Tensor, "r c"]:
        """Scatter point rows into the padded layout (padding rows are zero); differentiable."""
        return x.new_zeros(self.rows, x.shape[1]).index_copy(0, self.slot, x)

    def unpack(self, y: Float[Tensor, "r c"]) -> Float[Tensor, "n c"]:
        """Gather the point rows back in the points' order; differentiable."""
        return y.index_select(0, self.slot)


def stable_order(keys: Int[Tensor, " n"], n_keys: int) -> Int[Tensor, " n"]:
    """Indices sorting ``keys`` (in ``[0, n_keys)``) stably. On a CPU with at most 2^16 keys, NumPy's radix sort
    of 16-bit keys (KiloNeRF sorts int16 network ids too): ~20× faster than torch's CPU sort."""
    if keys.device.type == "cpu" and n_keys <= 1 << 16:
        return torch.from_numpy(keys.numpy().astype(np.uint16).argsort(kind="stable")).long()
    return torch.argsort(keys, stable=True)


def pack_segments(tile_ids: Int[Tensor, " n"], n_tiles: int, block: int | None = None, min_block: int = MIN_BLOCK) -> Segments:
    """The padded per-tile layout of ``tile_ids`` (see :class:`Segments`). ``block=None`` picks the power of two
    (in ``[min_block, BLOCK]``) at or below the mean points per occupied tile: padding stays below one block per
    tile, at most about the real rows on average."""
    ids = tile_ids.long()
    counts = torch.bincount(ids, minlength=n_tiles)
    if block is None:
        mean = ids.shape[0] / max(1, int((counts > 0).sum()))
        block = min(BLOCK, max(min_block, 1 << max(0, math.floor(math.log2(max(mean, 1.0))))))
    order = stable_order(ids, n_tiles)
    sorted_ids = ids.index_select(0, order)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(ids.shape[0], device=ids.device) - starts.index_select(0, sorted_ids)
    blocks = (counts + block - 1) // block
    tile_blocks = torch.zeros(n_tiles + 1, dtype=torch.long, device=ids.device)
    tile_blocks[1:] = torch.cumsum(blocks, 0)
    slot = torch.empty_like(ids)
    slot.index_copy_(0, order, tile_blocks.index_select(0, sorted_ids) * block + rank)
    block_tile = torch.repeat_interleave(torch.arange(n_tiles, device=ids.device), blocks)
    return Segments(slot, block_tile, tile_blocks, block)


def tile_mlp_per_point(
    x: Float[Tensor, "n i"], tile_ids: Int[Tensor, " n"], weights: list[Tensor], biases: list[Tensor]
) -> Float[Tensor, "n o"]:
    """Reference: every point through its own tile's MLP, with the weights gathered per point."""
    h = x
    for l, (w, b) in enumerate(zip(weights, biases)):
        h = torch.einsum("ni,nio->no", h, w[tile_ids]) + b[tile_ids]
        if l < len(weights) - 1:
            h = torch.relu(h)
    return h


def tile_mlp_packed(xp: Float[Tensor, "r i"], seg: Segments, weights: list[Tensor], biases: list[Tensor]) -> Float[Tensor, "r o"]:
    """The MLPs on the packed layout: one ``bmm`` per layer over the blocks."""
    h = xp.reshape(seg.n_blocks, seg.block, -1)
    bt = seg.block_tile
    for l, (w, b) in enumerate(zip(weights, biases)):
        h = torch.baddbmm(b.index_select(0, bt)[:, None, :].to(h.dtype), h, w.index_select(0, bt).to(h.dtype))  # index_select: ~4× faster gather
        if l < len(weights) - 1:
            h = torch.relu(h)
    return h.reshape(seg.rows, -1)


@torch.no_grad()
def fold_biases(weights: list[Tensor], biases: list[Tensor]) -> list[Float[Tensor, "t k1 n1"]]:
    """Layer ``l`` as one ``(T, in_l + 1, out_l [+ 1])`` matrix for :func:`tile_mlp_folded`: the weights, then the
    bias as the last row (the input's last column is a constant 1). A hidden layer has one more column that
    writes that constant 1 for the next layer (ReLU keeps it)."""
    out = []
    for l, (w, b) in enumerate(zip(weights, biases)):
        t, k, n = w.shape
        hidden = l < len(weights) - 1
        a = w.new_zeros(t, k + 1, n + hidden)
        a[:, :k, :n] = w
        a[:, k, :n] = b
        if hidden:
            a[:, k, n] = 1.0
        out.append(a)
    return out


def _with_one_packed(x: Float[Tensor, "n k"], seg: "Segments") -> Float[Tensor, "b s k1"]:
    """Point rows in the packed blocks ``(n_blocks, block, k + 1)`` with a constant-1 last column (the input of
    :func:`fold_biases` layers); padding rows are zero."""
    n, k = x.shape
    xp = x.new_zeros(seg.rows, k + 1)
    xp[seg.slot, :k] = x
    xp[seg.slot, k] = 1.0
    return xp.reshape(seg.n_blocks, seg.block, k + 1)


def _folded_layers(h: Float[Tensor, "b s k"], layers: list[Tensor], seg: "Segments", relu_last: bool) -> Float[Tensor, "b s o"]:
    """Folded layers on packed blocks: one weight gather and one ``bmm`` each, ReLU between them (and after the
    last with ``relu_last``)."""
    for l, a in enumerate(layers):
        h = torch.bmm(h, a.index_select(0, seg.block_tile).to(h.dtype))
        if relu_last or l < len(layers) - 1:
            h = torch.relu_(h)
    return h


@torch.no_grad()
def tile_mlp_folded(x: Float[Tensor, "n i"], seg: "Segments", folded: list[Tensor]) -> Float[Tensor, "n o"]:
    """:func:`tile_mlp_batched` without gradients on weights from :func:`fold_biases` (about 15% faster)."""
    h = _folded_layers(_with_one_packed(x, seg), folded, seg, relu_last=False)
    return seg.unpack(h.reshape(seg.rows, h.shape[-1]))


@torch.no_grad()
def fold_chain(first: list[Tensor], second: list[Tensor], n_extra: int) -> list[Tensor]:
    """Folded layers (:func:`fold_biases`) of bank ``first`` (``k → 1 + f``: a passed-through output 0, then
    ``f`` features) followed by bank ``second`` (``n_extra + f → o``, inputs ``[extra, features]``), as one
    chain for :func:`tile_chain_folded`: ``first``'s hidden layers, then one joint layer
    ``(T, h + 1 + n_extra, 1 + h2 + 1)`` from ``[first's last hidden state, extra]`` to ``[output 0, second's
    first hidden layer (pre-ReLU), the constant 1]`` (``first``'s last layer times ``second``'s first: both
    linear), then ``second``'s remaining layers."""
    last, head = first[-1], second[0]
    t, k1, n1 = last.shape  # k1 = h + 1 (the constant-1 row carries the bias)
    f = n1 - 1
    if head.shape[1] != n_extra + f + 1:
        raise ValueError(f"fold_chain: the second bank takes {head.shape[1] - 1} inputs, expected {n_extra} extra + {f} features")
    if len(second) < 2:
        raise ValueError("fold_chain: the second bank needs a hidden layer")
    h2 = head.shape[2]  # the second bank's hidden width + its constant-1 column
    joint = last.new_zeros(t, k1 + n_extra, 1 + h2)
    joint[:, :k1, 0] = last[:, :, 0]
    joint[:, :k1, 1:] = torch.bmm(last[:, :, 1:].double(), head[:, n_extra : n_extra + f].double()).to(last.dtype)
    joint[:, k1 - 1, 1:] += head[:, n_extra + f]  # the second bank's biases and constant-1 column
    joint[:, k1:, 1:] = head[:, :n_extra]
    return [*first[:-1], joint, *second[1:]]


@torch.no_grad()
def tile_chain_folded(
    x: Float[Tensor, "n i"], extra: Float[Tensor, "n e"], seg: "Segments", chain: list[Tensor], n_first_hidden: int
) -> tuple[Float[Tensor, " n"], Float[Tensor, "n o"]]:
    """Evaluate a :func:`fold_chain` chain: ``x`` through the first bank's ``n_first_hidden`` hidden layers,
    ``extra`` joined on the packed layout, then the joint layer and the second bank. Returns the first bank's
    output 0 ``(n,)`` and the second bank's outputs ``(n, o)``."""
    h = _folded_layers(_with_one_packed(x, seg), chain[:n_first_hidden], seg, relu_last=True)
    extra_packed = seg.pack(extra.to(x.dtype)).reshape(seg.n_blocks, seg.block, -1)
    h = _folded_layers(torch.cat([h, extra_packed], dim=-1), chain[n_first_hidden : n_first_hidden + 1], seg, relu_last=False)
    out0 = seg.unpack(h[:, :, :1].reshape(seg.rows, 1))[:, 0]
    h = _folded_layers(torch.relu_(h[:, :, 1:]), chain[n_first_hidden + 1 :], seg, relu_last=False)
    return out0, seg.unpack(h.reshape(seg.rows, h.shape[-1]))


def tile_mlp_batched(
    x: Float[Tensor, "n i"], tile_ids: Int[Tensor, " n"], weights: list[Tensor], biases: list[Tensor], block: int | None = None,
    seg: Segments | None = None,
) -> Float[Tensor, "n o"]:
    """Sort by tile, pad segments to whole blocks, one batched matmul per layer (differentiable); ``seg``: the
    layout of ``tile_ids`` when the caller has it already."""
    n_tiles = weights[0].shape[0]
    if x.shape[0] == 0:
        return x.new_zeros(0, weights[-1].shape[-1])
    if seg is None:
        seg = pack_segments(tile_ids, n_tiles, block)
    return seg.unpack(tile_mlp_packed(seg.pack(x), seg, weights, biases))


__all__ = [
    "BLOCK",
    "MIN_BLOCK",
    "Segments",
    "fold_biases",
    "fold_chain",
    "pack_segments",
    "stable_order",
    "tile_centers",
    "tile_chain_folded",
    "tile_index",
    "tile_mlp_batched",
    "tile_mlp_folded",
    "tile_mlp_packed",
    "tile_mlp_per_point",
]
