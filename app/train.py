"""The composition root of every task: input → run directory → model → task → trainer → renders.

``train(config)`` runs a new run (or continues ``run``); ``resume(path)`` continues a run from its
directory alone. Which task a config belongs to comes from the task registry.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from fieldforge.app.atomic import atomic_write_text
from fieldforge.app.callbacks import standard_callbacks
from fieldforge.app.distributed import DataParallel, on_main
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks import task_for_config
from fieldforge.app.tasks.base import TaskContext
from fieldforge.app.trainer import Callback, Trainer, resolve_device
from fieldforge.app.validation import validate_config
from fieldforge.data.errors import InputError

console = Console(stderr=True)


@dataclass(frozen=True)
class ResumeOverrides:
    """What a resumed run may change: its length and how it reports (everything else is the saved config)."""

    steps: int | None = None
    progress: bool | None = None


def train(
    config: Any, run: RunDir | None = None, callbacks: Sequence[Callback] = (), rank: int = 0, world_size: int = 1,
) -> tuple[RunDir, dict[str, float]]:
    """Train a run of any task; writes the run directory (rank 0) and returns its final metrics.

    ``world_size > 1``: this process is one rank of a data-parallel run over an initialized ``torch.distributed``
    process group (``fieldforge.app.distributed``); rank 0 creates the run directory and every rank trains into it."""
    task_def = task_for_config(config)
    validate_config(config)  # options in range (the CLI checked them already; API callers too)
    resuming = run is not None
    if not resuming:
        config = with_absolute_data(config)  # --resume from any working directory finds the input
    parallel = DataParallel(rank, world_size) if world_size > 1 else None
    prepared = task_def.prepare(config)  # bad input fails here, before anything is written
    info = task_def.run_info(config, prepared)
    # built before anything is written: options only the model's constructor checks fail as input errors
    model = seeded_model(task_def, config, info)
    if run is None:
        if rank != 0 and parallel is None:
            raise ValueError("ranks other than 0 train into the run directory rank 0 created: pass run=")
        output_dir, name, prefix = config.trainer.output_dir, config.trainer.name, f"{task_def.name}-{config.method}"
        run = on_main(parallel, lambda: RunDir.create(output_dir, name, prefix=prefix))  # one directory, named by rank 0
    if rank == 0 and not resuming:
        run.write_config(config)
        atomic_write_text(run.path / task_def.info_file, json.dumps(info, indent=1))
    device = resolve_device(config.trainer.device)
    if parallel is not None:
        device = parallel.device(device)
    if getattr(config, "fresh", False):
        from fieldforge.app.fresh import apply_fresh

        def fresh_config(config=config, run=run):  # FreSh runs on rank 0; the others take its pick
            return config if (run.path / "fresh.json").is_file() else apply_fresh(task_def, config, prepared, info, run, device)

        config = on_main(parallel, fresh_config)
        model = seeded_model(task_def, config, info)  # FreSh's pick changes the field
    model = model.to(device)
    ctx = TaskContext(device, rank, world_size)
    task = task_def.build_task(config, model, prepared, ctx)
    trainer = Trainer(
        config.trainer, config.optim, task, run, device, stages=task_def.stages(config),
        callbacks=[*standard_callbacks(config.trainer), *callbacks], rank=rank, world_size=world_size, parallel=parallel,
    )
    start = trainer.resume()
    if rank == 0 and resuming:  # written only once the checkpoint loaded: a failed resume changes nothing
        run.remove_stale_temp_files()
        run.write_config(config)
        atomic_write_text(run.path / task_def.info_file, json.dumps(info, indent=1))
    if parallel is not None:  # every rank starts from rank 0's weights; update hooks sync over the ranks
        parallel.same_on_every_rank(start, f"the checkpoint step resumed from in {run.path} (every rank must see the run "
                                           "directory: on several machines, a shared filesystem)")
        parallel.broadcast_module(model)
        parallel.attach(model)
        if rank == 0:
            run.append_metrics(parallel.launch_record(start, config.trainer.batch_size))
    if start and rank == 0:
        console.print(f"resuming {run.path} from step {start}")
    if rank == 0:
        console.print(task_def.describe(config, prepared, model, device)
                      + (f"; {world_size} processes × {config.trainer.batch_size} samples per step" if parallel else ""))
    metrics = trainer.train()
    if rank == 0:
        task_def.finish(run, task, config, prepared, metrics)
    return run, metrics


def seeded_model(task_def: Any, config: Any, info: dict) -> torch.nn.Module:
    """The task's model initialized from the run's seed; options that only the model's constructor can check
    (e.g. a tile grid with the wrong number of axes) are an input error."""
    torch.manual_seed(config.trainer.seed)
    try:
        return task_def.build_model(config, info)
    except (ValueError, TypeError, AssertionError) as e:
        raise InputError(None, f"the model cannot be built from these options: {e}") from None


def with_absolute_data(config: Any) -> Any:
    """``config.data`` made absolute when it names an existing relative path (config.yaml stores it)."""
    from dataclasses import replace

    data = getattr(config, "data", None)
    if isinstance(data, Path) and not data.is_absolute() and data.exists():
        return replace(config, data=data.absolute())
    return config


def resume(
    path: str | Path, overrides: ResumeOverrides = ResumeOverrides(), callbacks: Sequence[Callback] = (), rank: int = 0, world_size: int = 1,
) -> tuple[RunDir, dict[str, float]]:
    """Continue a run from its newest checkpoint with its saved config (``steps`` extends it); every rank of a
    data-parallel run loads the same checkpoint."""
    from dataclasses import replace

    run = RunDir.open(path)
    config = run.read_config()
    task_def = task_for_config(config)
    if overrides.steps is not None:
        if overrides.steps < 1:
            raise InputError(None, f"--steps must be positive, got {overrides.steps}")
        config = task_def.with_steps(config, overrides.steps)
    if overrides.progress is not None:
        config = replace(config, trainer=replace(config.trainer, progress=overrides.progress))
    return train(config, run, callbacks, rank=rank, world_size=world_size)
