"""SAPE: spatially-adaptive progressive encoding (Hertz et al., NeurIPS 2021), over sorted Fourier features.

The network sees ``[x, α(x) ⊙ γ_FF(x)]``: the raw coordinates always, and the Gaussian Fourier features
(sorted by ‖b‖) masked by a spatially varying mask α. The mask lives on a regular grid of ``res^d``
cells; each cell stores only its **integer block count** (how many frequency blocks are unmasked there),
so memory is ``O(res^d)`` whatever the number of features (the dense ``res^d × 2m`` float mask of the
paper's code is never built: a 64³ grid holds 3.4 MB of state instead of a 537 MB float32 mask).

α at a point is the multilinear interpolation of the k×k(×k) box-blurred cell masks (replicate
padding), computed on the fly as a weighted histogram of the block counts of the ``(k+1)^d`` cells in
its support: ``α_j(x) = Σ_i K_i(x)·[count_i > j]``.

Feedback (after each optimizer step, through ``update(progress, coords, per_sample_loss)``): the per-sample
loss is splatted into the cells with the multilinear weights; each time the training progress (step / steps
of the stage) crosses a multiple of ``block_spacing``, a block period closes: the mean loss per cell is formed (cells
not visited take the mean of their visited neighbours, repeatedly, so grids finer than the data still
get values; cells no evidence reaches never freeze), box-blurred, cells whose blurred loss is ≤ ε freeze for good
(``in_progress ← in_progress ∧ L > ε``), and every cell still in progress unmasks its next block (a hard
step, as in the released code; a progress step that crosses several multiples at once, in runs shorter
than ``2·num_blocks`` steps, unmasks as many blocks). The schedule ends at ``num_blocks·block_spacing``
(mid-training by default). All state is fixed-shape registered buffers, including the progress of the last
update, so a resumed run continues exactly; resumed with more steps, the next period closes when the new,
longer schedule's progress crosses its next multiple.
"""

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from fieldforge.fields.encodings.fourier import FourierEncodingConfig, FourierFeatureEncoding

DEFAULT_RESOLUTION = {1: 12, 2: 128, 3: 64}
"""Grid resolution per input dimension when none is configured (the paper's 1D/2D/3D settings)."""
PERIOD_TOLERANCE = 1e-9
"""Slack when counting crossed multiples of ``block_spacing`` (progress = step/steps is rounded)."""
MASK_CHUNK_ENTRIES = 1 << 21
"""Points × support cells evaluated at once when building the mask (bounds its temporary memory)."""


def box_blur(grid: Tensor, k: int) -> Tensor:
    """Mean over a ``k^d`` window with replicate padding; ``grid`` has shape ``(res,)*d``, ``d ∈ {1,2,3}``."""
    d = grid.ndim
    r = k // 2
    x = F.pad(grid[None, None].float(), (r, r) * d, mode="replicate")
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[d - 1]
    return pool(x, k, stride=1)[0, 0]


def fill_unvisited(values: Tensor, known: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Give every unknown cell the mean of its known neighbours (``k^d`` window), repeated until every cell
    is reached from the known ones (at most ``res`` rounds). Returns the filled values and the known mask."""
    values, known = values.clone(), known.clone()
    for _ in range(max(values.shape)):
        if bool(known.all()) or not bool(known.any()):
            break
        weight = box_blur(known.float(), k)
        mean = box_blur(torch.where(known, values, torch.zeros_like(values)), k) / weight.clamp(min=1e-12)
        new = ~known & (weight > 0)
        values = torch.where(new, mean, values)
        known = known | new
    return values, known


class SAPEEncoding(FourierFeatureEncoding):
    """Fourier features with a per-cell progressive mask driven by the local training loss."""

    sync: Any = None
    """Set by data-parallel training: an object with ``sum_(tensor)`` (in-place sum over the processes). The loss
    splats are then each process's partial sums (``partial_sums``), summed over the processes before a block
    period closes, so every process freezes and unmasks the same cells."""

    def __init__(self, in_dim: int, config: "SAPEConfig") -> None:
        super().__init__(in_dim, config)
        if in_dim not in (1, 2, 3):
            raise ValueError(f"SAPE supports 1-3 input dimensions, got {in_dim}")
        m = config.n_features
        self.res = config.grid_resolution or DEFAULT_RESOLUTION[in_dim]
        if self.res < 2:
            raise ValueError(f"SAPE grid_resolution must be ≥ 2, got {self.res}")
        self.n_blocks = config.num_blocks or m  # default: one block per frequency, whatever the run length
        if not 1 <= self.n_blocks <= m:
            raise ValueError(f"SAPE num_blocks must be in [1, {m}], got {self.n_blocks}")
        self.block_spacing = config.block_spacing or 1.0 / (2 * self.n_blocks)
        if not self.block_spacing > 0:
            raise ValueError(f"SAPE block_spacing must be > 0, got {self.block_spacing}")
        self.k = config.blur or (5 if self.res**in_dim > 100 else 3)
        if self.k < 1 or self.k % 2 == 0:
            raise ValueError(f"SAPE blur must be an odd positive window, got {self.k}")
        shape = (self.res,) * in_dim
        self.register_buffer("block_of_feature", (torch.arange(m) * self.n_blocks) // m, persistent=False)
        self.register_buffer("strides", torch.tensor([self.res ** (in_dim - 1 - a) for a in range(in_dim)]), persistent=False)
        # Training state (checkpointed): block counts, the monotone in-progress set, and the loss splats.
        self.register_buffer("blocks", torch.zeros(shape, dtype=torch.int32))
        self.register_buffer("in_progress", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("loss_sum", torch.zeros(shape, dtype=torch.float32))
        self.register_buffer("weight_sum", torch.zeros(shape, dtype=torch.float32))
        self.register_buffer("progress", torch.zeros((), dtype=torch.float64))  # of the last update

    # -- grid geometry ----------------------------------------------------------------------------
    def _axis_corners(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per axis: clamped lower/upper cell index ``(n, d)`` and the upper weight ``f`` (cell-centred grid)."""
        t = x.float() * self.res - 0.5
        i0 = torch.floor(t)
        f = t - i0
        i0 = i0.long()
        c0 = i0.clamp(0, self.res - 1)
        c1 = (i0 + 1).clamp(0, self.res - 1)
        return c0, c1, f

    def corner_weights(self, x: Float[Tensor, "n d"]) -> tuple[Tensor, Tensor]:
        """Flat cell indices ``(n, 2^d)`` and multilinear weights ``(n, 2^d)`` (used to splat the loss)."""
        c0, c1, f = self._axis_corners(x)
        idx, w = [], []
        for corner in itertools.product((0, 1), repeat=self.in_dim):
            sel = torch.tensor(corner, device=x.device, dtype=torch.bool)
            cells = torch.where(sel, c1, c0)
            idx.append((cells * self.strides).sum(-1))
            w.append(torch.where(sel, f, 1.0 - f).prod(-1))
        return torch.stack(idx, 1), torch.stack(w, 1)

    def support_weights(self, x: Float[Tensor, "n d"]) -> tuple[Tensor, Tensor]:
        """Flat indices and weights ``(n, (k+1)^d)`` of box-blur-then-interpolate, with replicate borders."""
        c0, c1, f = self._axis_corners(x)
        k, r = self.k, self.k // 2
        o = torch.arange(k + 1, device=x.device)  # offsets from c0 − r
        delta = (c1 - c0)[..., None]  # 1 inside, 0 where both corners clamp to the border cell
        lo = (o <= k - 1).float() * (1.0 - f)[..., None]
        hi = ((o >= delta) & (o <= k - 1 + delta)).float() * f[..., None]
        weight = (lo + hi) / k  # (n, d, k+1)
        index = (c0[..., None] - r + o).clamp(0, self.res - 1) * self.strides[None, :, None]  # (n, d, k+1)
        idx, w = index[:, 0], weight[:, 0]
        for a in range(1, self.in_dim):
            idx = (idx[:, :, None] + index[:, a, None, :]).reshape(x.shape[0], (k + 1) ** (a + 1))
            w = (w[:, :, None] * weight[:, a, None, :]).reshape(x.shape[0], (k + 1) ** (a + 1))
        return idx, w

    # -- mask -------------------------------------------------------------------------------------
    @torch.no_grad()
    def block_mask(self, x: Float[Tensor, "n d"]) -> Float[Tensor, "n b"]:
        """α per frequency block at ``x``: interpolated, box-blurred cell masks (never a dense grid)."""
        chunk = max(1, MASK_CHUNK_ENTRIES // (self.k + 1) ** self.in_dim)
        if x.shape[0] > chunk:
            return torch.cat([self.block_mask(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)])
        idx, w = self.support_weights(x)
        counts = self.blocks.reshape(-1)[idx].long()  # (n, S)
        hist = torch.zeros(x.shape[0], self.n_blocks + 1, device=x.device, dtype=torch.float32)
        hist.scatter_add_(1, counts, w)
        # Block j is on where count > j: α_j = 1 − (weight of counts ≤ j) / (total weight). Normalizing by the
        # total makes all-on exactly 1 and all-off exactly 0 despite rounding in the weights.
        below = hist[:, :-1].cumsum(1)
        return (1.0 - below / hist.sum(1, keepdim=True)).clamp(0.0, 1.0)

    def feature_weights(self, x: Tensor) -> Tensor:
        return self.block_mask(x)[:, self.block_of_feature]

    def progress_map(self) -> Float[Tensor, "..."]:
        """Fraction of frequency blocks unmasked per cell, shape ``(res,)*d`` (axis a = coordinate a)."""
        return self.blocks.float() / self.n_blocks

    # -- feedback ---------------------------------------------------------------------------------
    @property
    def schedule_end(self) -> float:
        """Progress of the last block update (``num_blocks · block_spacing``; 0.5 by default)."""
        return self.n_blocks * self.block_spacing

    def periods(self, progress: float) -> int:
        """Block periods closed by ``progress``: multiples of ``block_spacing`` reached, at most ``num_blocks``."""
        return min(self.n_blocks, max(0, math.floor(progress / self.block_spacing + PERIOD_TOLERANCE)))

    @torch.no_grad()
    def update(self, progress: float, coords: Tensor | None = None, per_sample_loss: Tensor | None = None) -> None:
        """Splat the step's loss; close a block period for every multiple of ``block_spacing`` crossed since the last update."""
        progress = float(progress)
        previous = float(self.progress)
        self.progress.fill_(progress)
        if progress / self.block_spacing > self.n_blocks + PERIOD_TOLERANCE or not bool(self.in_progress.any()):
            return  # past the schedule's end, or every cell frozen
        if coords is not None and per_sample_loss is not None:
            idx, w = self.corner_weights(coords.detach())
            loss = per_sample_loss.detach().float().reshape(-1, 1)
            self.loss_sum.view(-1).index_add_(0, idx.reshape(-1), (w * loss).reshape(-1))
            self.weight_sum.view(-1).index_add_(0, idx.reshape(-1), w.reshape(-1))
        crossed = self.periods(progress) - self.periods(previous)  # ≤ 0 after a resume onto a longer schedule
        if crossed > 0:
            if self.sync is not None:
                sums = self.sync.sum_(torch.stack(self.partial_sums))
                self.loss_sum.copy_(sums[0])
                self.weight_sum.copy_(sums[1])
            self.advance(crossed)

    @property
    def partial_sums(self) -> tuple[Tensor, Tensor]:
        """The loss splats of the current block period ``(loss_sum, weight_sum)``: per process under data parallelism."""
        return self.loss_sum, self.weight_sum

    @torch.no_grad()
    def advance(self, blocks: int = 1) -> None:
        """Close a block period: freeze cells whose blurred mean loss is ≤ ε, unmask ``blocks`` more blocks elsewhere."""
        visited = self.weight_sum > 0
        mean = torch.where(visited, self.loss_sum / self.weight_sum.clamp(min=1e-30), torch.zeros_like(self.loss_sum))
        mean, known = fill_unvisited(mean, visited, self.k)
        blurred = box_blur(mean, self.k)
        self.in_progress &= (blurred > self.config.epsilon) | ~known  # type: ignore[attr-defined]  # no evidence: no freezing
        self.blocks.copy_(torch.where(self.in_progress, (self.blocks + blocks).clamp(max=self.n_blocks), self.blocks))
        self.loss_sum.zero_()
        self.weight_sum.zero_()


@dataclass(frozen=True)
class SAPEConfig(FourierEncodingConfig):
    """SAPE over sorted Gaussian Fourier features: per-cell masks unmasked where the local loss stays above ε."""

    cli_name: ClassVar[str | None] = "sape"

    include_input: bool = True
    """Prepend the centred raw coordinates (SAPE's always-on first block)."""
    grid_resolution: int | None = None
    """Cells per axis of the mask grid (default: 128 in 2D, 64 in 3D, 12 in 1D, the paper's settings)."""
    epsilon: float = 1e-3
    """Loss threshold ε in per-sample loss units (1e-3: per-pixel MSE on [0,1] colours); cells at or below it freeze."""
    num_blocks: int | None = None
    """Number of frequency blocks, contiguous groups of the sorted frequencies (default: one per frequency).
    The default does not depend on the run's length; a run with fewer than 2·num_blocks steps unmasks several
    blocks per update instead."""
    block_spacing: float | None = None
    """Progress (fraction of training) between block updates (default: 1/(2·num_blocks), so all blocks can open
    by mid-training, whatever the number of steps)."""
    blur: int | None = None
    """Box-blur window k (odd; default 5 when the grid has more than 100 cells, else 3)."""

    def setup(self, in_dim: int) -> SAPEEncoding:
        return SAPEEncoding(in_dim, self)
