"""Data-parallel training across processes: ``torchrun`` + ``torch.distributed`` (gloo on CPU, NCCL on CUDA).

Every process (rank) holds the whole model, draws its own samples (``TaskContext.seed``) and computes the
gradient of its own batch; the gradients are then **averaged** over the ranks (one all-reduce of a flat
buffer per step) before every rank takes the same optimizer step, so the weights stay identical.

Why not ``DistributedDataParallel``: DDP prepares its gradient reduction in ``module.forward``, but a NeRF step
renders through ``NerfModel.render_rays`` (not ``forward``); stages freeze and unfreeze parameter groups
mid-run, while DDP fixes its parameter set at construction; ``find_unused_parameters`` would walk the graph
every step. One explicit all-reduce per step is exact (the mean of the ranks' gradients, what DDP computes),
works for every model, and costs one collective; what it gives up, overlapping the reduction with the
backward pass, matters little for models of a few million parameters.

State that the models' training hooks change is synchronized explicitly (never left to a buffer broadcast):
modules that declare a ``sync`` attribute (the occupancy grid, SAPE) get this object; the grid then evaluates
its share of the cells on each rank and sums the densities (every rank's grid is identical), SAPE sums its
per-cell loss splats over the ranks before a block period closes.

Only rank 0 writes (run directory, config, logs, checkpoints, renders, exports) and evaluates; the run
directory is created by rank 0 and its path broadcast; a checkpoint holds every rank's sampler state, so a
resume under the same world size continues every rank's samples exactly.
"""

import datetime
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from fieldforge.data.errors import InputError

T = TypeVar("T")

TIMEOUT = datetime.timedelta(minutes=30)
"""How long a rank waits for the others at a collective (rank 0's periodic evaluation included)."""


@dataclass(frozen=True)
class LaunchEnv:
    """What ``torchrun`` (or ``python -m torch.distributed.run``) tells each process it starts."""

    rank: int
    world_size: int
    local_rank: int

    @staticmethod
    def from_environ(environ: Mapping[str, str] = os.environ) -> "LaunchEnv | None":
        """The launch of this process, or ``None`` when it was not started by torchrun."""
        if "RANK" not in environ or "WORLD_SIZE" not in environ:
            return None
        try:
            rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
            local = int(environ.get("LOCAL_RANK", rank))
        except ValueError:
            raise InputError(None, "RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun)") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise InputError(None, f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local}")
        return LaunchEnv(rank, world, local)


class DataParallel:
    """One rank's view of a data-parallel run over an initialized default process group."""

    def __init__(self, rank: int, world_size: int, local_rank: int | None = None) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise ValueError("world_size > 1 needs an initialized torch.distributed process group (launch with torchrun)")
        if dist.get_world_size() != world_size or dist.get_rank() != rank:
            raise ValueError(f"rank {rank} of {world_size} disagrees with the process group ({dist.get_rank()} of {dist.get_world_size()})")
        self.rank, self.world_size = rank, world_size
        self.local_rank = int(os.environ.get("LOCAL_RANK", rank)) if local_rank is None else local_rank
        self.backend = str(dist.get_backend())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: ``cuda:LOCAL_RANK`` on CUDA (one GPU per process), else ``device``."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" else device

    # -- collectives -------------------------------------------------------------------------------
    def _comm(self, t: Tensor) -> Tensor:
        """``t`` on a device the backend reduces on (NCCL: this rank's GPU; gloo: the CPU)."""
        if self.backend == "nccl":
            return t if t.is_cuda else t.to(torch.device("cuda", self.local_rank))
        return t if t.device.type == "cpu" else t.cpu()

    def sum_(self, t: Tensor) -> Tensor:
        """In-place sum of ``t`` over the ranks (what the models' ``sync`` hooks call)."""
        c = self._comm(t)
        dist.all_reduce(c, op=dist.ReduceOp.SUM)
        if c is not t:
            t.copy_(c)
        return t

    def average_gradients(self, params: Iterable[Tensor], loss: Tensor) -> Tensor:
        """Replace each gradient by its mean over the ranks (one all-reduce); returns the mean ``loss``.

        A parameter without a gradient on one rank counts as a zero gradient there (DDP's rule); one without a
        gradient on every rank keeps none, so Adam skips it as it would in a single process."""
        params = [p for p in params if p.requires_grad]
        dtype = loss.dtype if loss.is_floating_point() else torch.float32
        for p in params:
            dtype = torch.promote_types(dtype, p.dtype)
        device = params[0].device if params else loss.device
        parts = [(p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=device)).to(device, dtype) for p in params]
        present = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=device)
        flat = torch.cat([*parts, present, loss.detach().reshape(1).to(device, dtype)])
        self.sum_(flat)
        flat /= self.world_size
        offset = 0
        for p, has in zip(params, flat[-1 - len(params) : -1].tolist(), strict=True):
            n = p.numel()
            if has > 0:
                if p.grad is None:
                    p.grad = torch.empty_like(p)
                p.grad.copy_(flat[offset : offset + n].view_as(p))
            offset += n
        return flat[-1].to(loss.dtype)

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers onto every rank (same start, whatever each rank loaded)."""
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                wire = t.data if t.dtype != torch.bool else t.data.to(torch.uint8)
                c = self._comm(wire)
                dist.broadcast(c, src=0)
                if c is not t.data:
                    t.data.copy_(c)

    def barrier(self) -> None:
        dist.barrier()

    def all_gather_object(self, obj: T) -> list[T]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def same_on_every_rank(self, value: Any, what: str) -> None:
        """``InputError`` on every rank unless each rank holds the same ``value`` (e.g. the step it resumed from)."""
        values = self.all_gather_object(value)
        if any(v != values[0] for v in values):
            raise InputError(None, f"the ranks disagree on {what}: {', '.join(f'rank {r}: {v}' for r, v in enumerate(values))}")

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result broadcast to every rank. An ``InputError`` (or any other error)
        on rank 0 is raised on every rank, so no rank is left waiting for a rank that stopped."""
        payload: Any = None
        error: BaseException | None = None
        if self.is_main:
            try:
                payload = ("ok", fn())
            except InputError as e:
                error, payload = e, ("input", None if e.path is None else str(e.path), e.problem)
            except Exception as e:  # noqa: BLE001 - reported to the other ranks, re-raised here
                error, payload = e, ("failed", f"{type(e).__name__}: {e}")
        box = [payload]
        dist.broadcast_object_list(box, src=0)
        kind, *rest = box[0]
        if error is not None:
            raise error
        if kind == "input":
            raise InputError(rest[0], rest[1])
        if kind == "failed":
            raise RuntimeError(f"rank 0 failed: {rest[0]}")
        return rest[0]

    # -- models ------------------------------------------------------------------------------------
    def attach(self, model: nn.Module) -> list[nn.Module]:
        """Give every module that declares a ``sync`` hook this object; returns those modules. Call after loading
        and broadcasting the weights: ranks other than 0 then zero the modules' ``partial_sums`` (per-rank
        accumulators summed over the ranks when used), so rank 0's checkpointed values count once."""
        hooked = [m for m in model.modules() if hasattr(type(m), "sync")]
        for m in hooked:
            m.sync = self
            if not self.is_main:
                for t in getattr(m, "partial_sums", ()):
                    t.zero_()
        return hooked

    def launch_record(self, step: int, batch_size: int) -> dict:
        """The ``metrics.jsonl`` record of this session's parallel layout (written by rank 0)."""
        return {
            "step": step, "kind": "parallel", "world_size": self.world_size, "batch_per_rank": batch_size,
            "batch_total": batch_size * self.world_size, "backend": self.backend,
            "nodes": max(1, self.world_size // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", self.world_size)))),
        }


def on_main(parallel: DataParallel | None, fn: Callable[[], T]) -> T:
    """``fn()`` in a single process; rank 0's ``fn()`` broadcast to every rank in a data-parallel run."""
    return fn() if parallel is None else parallel.from_main(fn)


def rank_task_state(state: Mapping[str, Any], rank: int) -> dict | None:
    """The task state (sampler generators) this rank resumes from: its own when the checkpoint holds one per
    rank, rank 0's for rank 0, else ``None`` (the rank keeps its freshly seeded samplers: a run resumed with
    more ranks than it was saved with)."""
    ranks = state.get("task_ranks")
    if ranks and rank < len(ranks):
        return ranks[rank]
    return state["task"] if rank == 0 else None


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@contextmanager
def launched(device: torch.device) -> Iterator[tuple[int, int]]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` when not started by torchrun; under torchrun the default
    process group is initialized (NCCL on CUDA with one GPU per local rank, gloo on CPU) and torn down after."""
    env = LaunchEnv.from_environ()
    if env is None or env.world_size == 1:
        yield (0, 1)
        return
    if device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise InputError(None, f"LOCAL_RANK {env.local_rank} but this node has {torch.cuda.device_count()} GPUs: "
                                   "use --nproc_per_node ≤ the GPU count (or --device cpu)")
        torch.cuda.set_device(env.local_rank)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend_for(device), timeout=TIMEOUT)
    try:
        yield (env.rank, env.world_size)
    finally:
        if created:
            dist.destroy_process_group()
