"""Data-parallel training on CPU with gloo: ranks are forked processes (``torch.multiprocessing``), the CLI ones
see the environment ``torchrun`` sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

- exact: after a few steps on fixed batches, 2 ranks (each half of the batch) hold the weights and SAPE block
  counts of 1 process on the union batch (float tolerance); a sharded occupancy-grid update equals the
  single-process update bit for bit on every rank;
- end to end through ``fieldforge train``: 2 ranks reach the PSNR of 1 process with twice the batch (image and
  NeRF, within 0.5 dB / 1 dB), write one run directory with the files of a 1-process run, record the world size,
  keep the occupancy grid identical on both ranks, and resume bit-exactly under 2 ranks.
"""

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from fieldforge.app.cli import main
from fieldforge.app.config import OptimizerConfig, TrainerConfig
from fieldforge.app.distributed import DataParallel, LaunchEnv, rank_task_state
from fieldforge.app.runs import RunDir
from fieldforge.app.trainer import StepContext, StepResult, Trainer
from fieldforge.data.errors import InputError
from fieldforge.data.images import encode_image, srgb_to_linear
from fieldforge.data.synthetic import test_image as make_test_image
from fieldforge.fields.encodings.sape import SAPEConfig
from fieldforge.fields.field import FieldConfig, make_field
from fieldforge.fields.networks import MLPConfig
from fieldforge.fields.rendering.occupancy_grid import OccupancyGrid

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is not available")

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, *args) -> None:
    """Run ``fn(rank, port, *args)`` in WORLD forked processes (a failure in any raises here)."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo (seconds): once, before forking
    mp.start_processes(fn, args=(free_port(), *args), nprocs=WORLD, start_method="fork")


def join_group(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)


# -- exact equivalence on fixed batches -------------------------------------------------------------

STEPS = 4


def sape_field() -> torch.nn.Module:
    torch.manual_seed(0)
    enc = SAPEConfig(sigma=6.0, n_features=16, num_blocks=4, grid_resolution=8, epsilon=0.2, blur=1)
    return make_field(FieldConfig(encoding=enc, network=MLPConfig(width=32, n_hidden_layers=2)), in_dim=2, out_dim=3)


def union_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's 512 fixed points of a 2D colour map (sharp on the right half: SAPE keeps those cells open)."""
    g = torch.Generator().manual_seed(step)
    x = torch.rand(512, 2, generator=g)
    y = torch.stack([torch.sin(3 * x[:, 0]), torch.where(x[:, 0] > 0.5, torch.sin(40 * x[:, 1]), 0.2), x[:, 1]], -1)
    return x, y


class FixedBatchTask:
    """Regress the step's union batch, or rank ``r``'s half of it (``r::world``)."""

    def __init__(self, model: torch.nn.Module, rank: int = 0, world: int = 1) -> None:
        self.model, self.rank, self.world = model, rank, world

    def param_groups(self, lr: float) -> list[dict]:
        return self.model.param_groups(lr)

    def train_step(self, ctx: StepContext) -> StepResult:
        x, y = union_batch(ctx.step)
        x, y = x[self.rank :: self.world], y[self.rank :: self.world]
        psl = ((self.model(x).values - y) ** 2).mean(-1)
        return StepResult(loss=psl.mean(), coords=x, per_sample_loss=psl.detach())

    def evaluate(self, step: int, final: bool, track) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def fixed_batch_trainer(tmp: Path, rank: int, world: int, parallel=None) -> Trainer:
    model = sape_field()
    config = TrainerConfig(steps=STEPS, checkpoint_every=0, progress=False)
    task = FixedBatchTask(model, rank, world)
    trainer = Trainer(config, OptimizerConfig(lr=1e-2), task, RunDir(tmp), torch.device("cpu"), rank=rank, world_size=world, parallel=parallel)
    if parallel is not None:
        parallel.attach(model)
    return trainer


def _fixed_batch_worker(rank: int, port: int, tmp: Path) -> None:
    join_group(rank, port)
    trainer = fixed_batch_trainer(tmp / f"rank{rank}", rank, WORLD, DataParallel(rank, WORLD))
    for _ in range(STEPS):
        trainer.train_step()
    torch.save({k: v.clone() for k, v in trainer.task.model.state_dict().items()}, tmp / f"state{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_equal_one_process_on_the_union_batch(tmp_path: Path) -> None:
    spawn(_fixed_batch_worker, tmp_path)
    single = fixed_batch_trainer(tmp_path / "single", 0, 1)
    for _ in range(STEPS):
        single.train_step()
    reference = single.task.model.state_dict()
    blocks = reference["encoding.blocks"]
    assert int(blocks.min()) < int(blocks.max()) == 4  # SAPE froze the smooth half and opened the sharp half: a real check
    for rank in range(WORLD):
        state = torch.load(tmp_path / f"state{rank}.pt")
        for key, ref in reference.items():
            if key in ("encoding.loss_sum", "encoding.weight_sum"):
                continue  # per-rank partial sums of the open period (zeroed by the last period here)
            if ref.is_floating_point():
                torch.testing.assert_close(state[key], ref, rtol=1e-5, atol=1e-6, msg=f"rank {rank}: {key}")
            else:
                assert torch.equal(state[key], ref), f"rank {rank}: {key}"


def _grid_worker(rank: int, port: int, tmp: Path) -> None:
    join_group(rank, port)
    grid = sphere_grid()
    grid.sync = DataParallel(rank, WORLD)
    calls: list[int] = []
    for step in (0, 40):  # a warm-up update (every cell) and a partial one (random + occupied cells)
        grid.update(step, lambda p: calls.append(len(p)) or sphere_density(p), step_size=0.05, warmup_steps=10, seed=5, chunk=1000)
    torch.save({"occs": grid.occs, "binary": grid.binary, "evaluated": sum(calls)}, tmp / f"grid{rank}.pt")
    dist.destroy_process_group()


def sphere_grid() -> OccupancyGrid:
    return OccupancyGrid(torch.tensor([[-1.0, -1, -1], [1, 1, 1]]), resolution=16)


def sphere_density(p: torch.Tensor) -> torch.Tensor:
    return 50.0 * (p.norm(dim=-1) < 0.5).float() + 0.01 * p[:, 0].abs()


def test_occupancy_grid_update_is_sharded_and_identical_on_every_rank(tmp_path: Path) -> None:
    spawn(_grid_worker, tmp_path)
    single = sphere_grid()
    for step in (0, 40):
        single.update(step, sphere_density, step_size=0.05, warmup_steps=10, seed=5, chunk=1000)
    evaluated = 0
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"grid{rank}.pt")
        assert torch.equal(got["occs"], single.occs) and torch.equal(got["binary"], single.binary), rank
        evaluated += got["evaluated"]
    assert 0.01 < single.occupancy_fraction() < 0.5  # the sphere, not everything
    assert evaluated == 16**3 + 2 * (16**3 // 4)  # each rank evaluated its share, no cell twice


# -- end to end through the CLI (the environment torchrun sets) -------------------------------------


def _cli_worker(rank: int, port: int, argv: list[str], tmp: Path) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    grids: list[dict] = []
    original = Trainer.train

    def train_and_keep(self):  # keep each rank's occupancy grid for the comparison across ranks
        metrics = original(self)
        grid = getattr(self.unwrap(), "grid", None)
        if grid is not None:
            grids.append({"occs": grid.occs.clone(), "binary": grid.binary.clone()})
        return metrics

    Trainer.train = train_and_keep  # this forked process only
    assert main(argv) == 0
    torch.save(grids, tmp / f"grid-rank{rank}.pt")


def image_file(tmp: Path) -> Path:
    """The procedural test image, 64×48 (smooth gradients and texture)."""
    path = tmp / "pattern.png"
    path.write_bytes(encode_image(srgb_to_linear(make_test_image(48, 64, texture_cycles=6.0)), "png"))
    return path


def final_psnr(run: Path) -> float:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return next(r["psnr"] for r in reversed(records) if r["kind"] == "eval" and r.get("final"))


def files_of(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}


IMAGE = ["--steps", "40", "--eval-every", "0", "--checkpoint-every", "20", "--keep-checkpoints", "5", "--progress", "False",
         "--field.encoding.log2-table-size", "12", "--field.encoding.max-resolution", "64", "--seed", "1", "--device", "cpu"]


def test_image_two_ranks_match_one_rank_with_twice_the_batch_and_resume_exactly(tmp_path: Path) -> None:
    data = image_file(tmp_path)
    base = ["train", "image", "--data", str(data), *IMAGE]
    spawn(_cli_worker, [*base, "--batch-size", "512", "--output-dir", str(tmp_path / "ddp"), "--name", "r"], tmp_path)
    assert main([*base, "--batch-size", "1024", "--output-dir", str(tmp_path / "one"), "--name", "r"]) == 0
    ddp, one = tmp_path / "ddp" / "r", tmp_path / "one" / "r"
    assert [p.name for p in (tmp_path / "ddp").iterdir()] == ["r"]  # one run directory, named by rank 0
    assert files_of(ddp) == files_of(one)  # nothing written by rank 1 (no second metrics log, no stray files)
    p_ddp, p_one = final_psnr(ddp), final_psnr(one)
    assert p_one > 20.0 and abs(p_ddp - p_one) < 0.5, (p_ddp, p_one)
    launch = json.loads((ddp / "metrics.jsonl").read_text().splitlines()[0])
    assert launch == {"step": 0, "kind": "parallel", "world_size": 2, "batch_per_rank": 512, "batch_total": 1024, "backend": "gloo", "nodes": 1}
    state = torch.load(ddp / "checkpoints" / "step-000040.state.pt", weights_only=True)
    assert len(state["task_ranks"]) == 2 and not torch.equal(state["task_ranks"][0]["sampler"]["generator"], state["task_ranks"][1]["sampler"]["generator"])

    # resume under 2 ranks from step 20: every rank continues its own samples, so the weights are bit-exact
    final = ddp / "checkpoints" / "step-000040.safetensors"
    reference = load_file(str(final))
    final.unlink()
    final.with_suffix(".state.pt").unlink()
    spawn(_cli_worker, ["train", "image", "--resume", str(ddp)], tmp_path)
    resumed = load_file(str(final))
    assert reference.keys() == resumed.keys()
    for k in reference:
        assert torch.equal(reference[k], resumed[k]), k


NERF = [
    "--field.encoding.n-levels", "6", "--field.encoding.log2-table-size", "12", "--field.encoding.max-resolution", "64",
    "--render.grid-resolution", "16", "--render.steps-per-ray", "64", "--render.grid-warmup-steps", "16",
    "--render.grid-update-every", "8", "--render.target-samples", "4096", "--optim.warmup-steps", "5", "--optim.lr", "3e-2", "--eval-views", "1",
    "--seed", "3", "--progress", "False", "--steps", "60", "--eval-every", "30", "--checkpoint-every", "0", "--device", "cpu",
]


def test_nerf_two_ranks_match_one_rank_with_twice_the_batch_and_share_the_grid(tmp_path: Path) -> None:
    from tests.test_captures_nerfstudio import write_capture

    cap = write_capture(tmp_path / "cap", n_views=16, width=24, height=20)
    base = ["train", "nerf", "--data", str(cap), *NERF]
    spawn(_cli_worker, [*base, "--batch-size", "256", "--output-dir", str(tmp_path / "ddp"), "--name", "r"], tmp_path)
    assert main([*base, "--batch-size", "512", "--output-dir", str(tmp_path / "one"), "--name", "r"]) == 0
    ddp, one = tmp_path / "ddp" / "r", tmp_path / "one" / "r"
    assert files_of(ddp) == files_of(one)
    p_ddp, p_one = final_psnr(ddp), final_psnr(one)
    from fieldforge.data.captures import load_capture

    c = load_capture(cap)  # the best constant image (the background) is the floor to beat
    white = float(np.mean([10 * np.log10(1 / float(((c.composited(i) - 1) ** 2).mean())) for i in c.split["test"]]))
    assert p_one > white + 3 and abs(p_ddp - p_one) < 1.0, (p_ddp, p_one, white)
    g0, g1 = (torch.load(tmp_path / f"grid-rank{r}.pt") for r in range(WORLD))
    assert torch.equal(g0[0]["occs"], g1[0]["occs"]) and torch.equal(g0[0]["binary"], g1[0]["binary"])
    occs = g0[0]["occs"]
    assert bool((occs >= 0).all()) and float(occs.max()) > 10 * float(occs.min()) + 1e-6  # updated with real densities


# -- small pieces ---------------------------------------------------------------------------------


def _from_main_worker(rank: int, port: int, tmp: Path) -> None:
    join_group(rank, port)
    parallel = DataParallel(rank, WORLD)
    got = [parallel.from_main(lambda: f"made by rank {rank}")]

    def refuse() -> None:
        raise InputError(tmp / "out", "is a regular file")

    try:
        parallel.from_main(refuse)
    except InputError as e:  # every rank gets rank 0's error (no rank left waiting)
        got.append(str(e))
    try:
        parallel.same_on_every_rank(rank * 10, "the step resumed from")
    except InputError as e:
        got.append(str(e))
    field = sape_field()  # as after loading rank 0's checkpoint: every rank holds rank 0's open-period splats
    field.encoding.loss_sum.fill_(1.0)
    hooked = parallel.attach(field)
    got.append([type(m).__name__ for m in hooked] + [float(field.encoding.loss_sum.sum())])
    (tmp / f"from-main{rank}.json").write_text(json.dumps(got))
    dist.destroy_process_group()


def test_rank_zero_results_and_errors_reach_every_rank(tmp_path: Path) -> None:
    spawn(_from_main_worker, tmp_path)
    for rank in range(WORLD):
        got = json.loads((tmp_path / f"from-main{rank}.json").read_text())
        assert got == ["made by rank 0", f"{tmp_path / 'out'}: is a regular file",
                       "the ranks disagree on the step resumed from: rank 0: 0, rank 1: 10",
                       ["SAPEEncoding", 64.0 if rank == 0 else 0.0]], rank  # rank 0's splats count once in the sum



def test_launch_environment_is_read_and_checked() -> None:
    assert LaunchEnv.from_environ({}) is None
    assert LaunchEnv.from_environ({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == LaunchEnv(3, 8, 1)
    with pytest.raises(InputError, match="RANK=4, WORLD_SIZE=4"):
        LaunchEnv.from_environ({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(InputError, match="integers"):
        LaunchEnv.from_environ({"RANK": "a", "WORLD_SIZE": "2"})


def test_each_rank_resumes_its_own_sampler_state() -> None:
    state = {"task": {"g": 0}, "task_ranks": [{"g": 0}, {"g": 1}]}
    assert [rank_task_state(state, r) for r in range(3)] == [{"g": 0}, {"g": 1}, None]  # rank 2: a new rank keeps its seed
    assert rank_task_state({"task": {"g": 0}}, 0) == {"g": 0} and rank_task_state({"task": {"g": 0}}, 1) is None


def test_world_size_above_one_needs_a_process_group() -> None:
    with pytest.raises(ValueError, match="torchrun"):
        DataParallel(0, 2)
