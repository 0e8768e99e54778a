"""FreSh in a run: the task ranks its candidates (``TaskDefinition.select_fresh``), this module prints the
ranking, writes ``fresh.json`` and the chosen field into the run's config, so a resumed run keeps it."""

import json
from dataclasses import replace
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from fieldforge.app.atomic import atomic_write_text
from fieldforge.app.runs import RunDir
from fieldforge.data.errors import InputError
from fieldforge.fields.fresh import FreshResult, FreshSearch, candidate_configs

console = Console(stderr=True)


def candidates(field_config: Any, search: FreshSearch) -> tuple[str, list[tuple[str, float, Any]]]:
    """``(parameter name, [(label, value, field config)])`` of a field's tunable hyperparameter."""
    try:
        parameter, configs = candidate_configs(field_config, search.values)
    except LookupError as e:
        raise InputError(None, f"--fresh: {e}") from None
    return parameter.name, configs


def ranking_table(result: FreshResult, title: str = "FreSh ranking") -> Table:
    table = Table(title=f"{title} of {result.parameter}", caption=f"{result.seeds} seeds, K={result.crop}, {result.seconds:.1f} s")
    for col in ("rank", "candidate", "W1 distance", "± s.e."):
        table.add_column(col, justify="right")
    for i, s in enumerate(result.ranking, 1):
        table.add_row(str(i), s.label, f"{s.distance:.3f}", f"{s.stderr:.3f}")
    return table


def record_fresh(result: FreshResult, run: RunDir, what: str = "") -> None:
    """Print the ranking and the pick, and write ``fresh.json`` into the run."""
    console.print(ranking_table(result, f"FreSh ranking ({what})" if what else "FreSh ranking"))
    console.print(f"FreSh picked {result.best.label} (selection took {result.seconds:.1f} s)")
    atomic_write_text(run.path / "fresh.json", json.dumps(result.to_dict(), indent=1))


def apply_fresh(task: Any, config: Any, prepared: Any, info: dict, run: RunDir, device: torch.device) -> Any:
    """Select the field with FreSh, record the ranking, write the updated ``config.yaml``; returns the config."""
    chosen, result, what = task.select_fresh(config, prepared, info, device)
    record_fresh(result, run, what)
    config = replace(config, field=chosen)
    run.write_config(config)
    return config
