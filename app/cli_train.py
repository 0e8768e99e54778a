"""``fieldforge train <task>``: one command shape for every task in the registry.

The options come from the task's run config (tyro), with the defaults of the chosen method: ``--method``
(and ``--encoding`` / ``--network``) are read before parsing, so ``--help`` after them shows that
preset's values. ``--resume RUN`` takes only the options a resumed run can honour.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import tyro
from fieldforge.app.argv import option_names, peek_option, pop_option
from fieldforge.app.tasks import TASKS, get_task
from fieldforge.app.tasks.base import TaskDefinition
from fieldforge.app.viewer.pacing import DEFAULT_SHARE
from fieldforge.data.errors import InputError

TYRO_CONF = (tyro.conf.AvoidSubcommands, tyro.conf.FlagConversionOff)

def component_names() -> tuple[dict[str, type], dict[str, type]]:
    """``--encoding NAME`` / ``--network NAME`` → config class: every config that declares a ``cli_name``."""
    from fieldforge.fields.encodings import ENCODING_CONFIGS
    from fieldforge.fields.networks import NETWORK_CONFIGS

    def named(configs) -> dict[str, type]:
        return {c.cli_name: c for c in configs if c.cli_name is not None}

    return named(ENCODING_CONFIGS), named(NETWORK_CONFIGS)


RESUME_OPTIONS = ("--resume", "--steps", "--progress")
"""What ``--resume`` honours: the run's saved config is used for everything else."""

ALIASES = {"--capture.": "--"}
"""Old spellings kept: ``train nerf --capture.downscale 2`` is ``--downscale 2`` (same option on every task)."""


def with_aliases(argv: list[str]) -> list[str]:
    out = []
    for arg in argv:
        for old, new in ALIASES.items():
            if arg.startswith(old):
                arg = new + arg[len(old) :]
        out.append(arg)
    return out


def swap_components(argv: list[str], config: Any) -> tuple[list[str], Any]:
    """Pre-read ``--encoding NAME`` / ``--network NAME``: swap that component of the preset's field for the
    named type with its own defaults, so ``--field.encoding.*`` / ``--field.network.*`` (and --help) then
    address the new type."""
    encodings, networks = component_names()
    argv, encoding = pop_option(argv, "--encoding")
    argv, network = pop_option(argv, "--network")
    field = config.field
    for value, names, attr in ((encoding, encodings, "encoding"), (network, networks, "network")):
        if value is None:
            continue
        if value not in names:
            raise InputError(None, f"unknown --{attr} {value!r}; choose one of: {', '.join(names)}")
        cls = names[value]
        current = getattr(field, attr)
        if not isinstance(current, cls):
            field = replace(field, **{attr: carry_mlp(current, cls)})
    return argv, replace(config, field=field)


def carry_mlp(current: Any, cls: type) -> Any:
    """A default ``cls`` that keeps the preset's MLP where both sides have one (e.g. ngp's 2×64 MLP → CAM)."""
    from fieldforge.fields.networks import MLPConfig

    inner = current if isinstance(current, MLPConfig) else getattr(current, "mlp", None)
    if cls is MLPConfig and isinstance(inner, MLPConfig):
        return inner
    if isinstance(inner, MLPConfig) and any(f.name == "mlp" for f in dataclasses.fields(cls)):
        return cls(mlp=inner)
    return cls()


def method_list(task: TaskDefinition, default: str) -> str:
    width = max(len(m) for m in task.methods)
    lines = [f"  {name:<{width}}  {preset.description}" + ("  [default]" if name == default else "") for name, preset in task.methods.items()]
    return "\n".join(lines)


def help_text(task: TaskDefinition, default_method: str) -> str:
    doc = (task.config_type.__doc__ or "").strip()
    encodings, networks = component_names()
    return (
        f"{doc}\n\nMethods (--method NAME; its values become the defaults below):\n{method_list(task, default_method)}\n\n"
        f"--encoding {{{','.join(encodings)}}} and --network {{{','.join(networks)}}} swap that component of the "
        "method for the named type with its defaults (--help after them lists its options).\n"
        f"--resume RUN continues a run with its saved config (only {', '.join(RESUME_OPTIONS[1:])} may be given with it).\n"
        + task.extra_help + VIEWER_HELP + "\n" + PARALLEL_HELP
    )


def usage() -> str:
    lines = ["usage: fieldforge train <task> [options]   (fieldforge train <task> --help for its options)", "", "tasks:"]
    lines += [f"  {name:<8} {entry.summary}" for name, entry in TASKS.items()]
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class ResumeOptions:
    """Continue a run from its newest checkpoint with its saved config."""

    resume: Path
    """Run directory to continue."""
    steps: int | None = None
    """New total number of steps (extends the run; progressive schedules re-time to it)."""
    progress: bool | None = None
    """Show a progress bar (default: as the run was started)."""


def parse_resume(argv: list[str], prog: str) -> ResumeOptions:
    refused = sorted({name for name in option_names(argv) if name not in RESUME_OPTIONS and name not in ("-h", "--help")})
    if refused:
        raise InputError(
            None, f"--resume continues a run with its saved config and cannot change {', '.join(refused)} "
            f"(only {', '.join(RESUME_OPTIONS[1:])} may be given with it; start a new run to change the others)",
        )
    return tyro.cli(ResumeOptions, args=argv, prog=prog, config=TYRO_CONF)


def require_option(argv: Sequence[str], name: str, hint: str) -> None:
    """One clear line instead of tyro's usage box when a required option is missing (``--help`` still works)."""
    if not any(a in ("-h", "--help") for a in argv) and peek_option(argv, name) is None:
        raise InputError(None, f"{name} is required ({hint})")


def parse_train(task: TaskDefinition, argv: list[str], prog: str) -> Any:
    """The run config of ``fieldforge train <task> ARGV`` (``--data`` required)."""
    import torch

    require_option(argv, "--data", task.data_hint)
    from fieldforge.app.trainer import resolve_device

    argv, method = pop_option(with_aliases(argv), "--method")
    device_name = peek_option(argv, "--device") or "auto"
    if device_name not in ("auto", "cpu", "cuda"):
        raise InputError(None, f"--device must be auto, cpu or cuda, got {device_name!r}")
    device = resolve_device(device_name) if device_name != "cuda" else torch.device("cuda")
    default = task.default_config(method, device)
    default = task.adjust_from_argv(default, argv)
    argv, default = swap_components(argv, default)
    description = help_text(task, task.default_method(device))
    config = tyro.cli(task.config_type, default=replace(default, data=tyro.MISSING), args=argv, prog=prog, config=TYRO_CONF,
                      description=description)
    from fieldforge.app.validation import validate_config

    validate_config(config)  # every number range-checked, naming its option, before anything is read or written
    return config


PARALLEL_HELP = (
    "Data-parallel: torchrun --nproc_per_node N $(which fieldforge) train ... trains one model on N processes (one GPU "
    "each, or CPU with gloo); --batch-size is per process (each step uses N × batch samples); rank 0 writes the run."
)

VIEWER_HELP = (
    "--viewer serves the interactive viewer while training (--viewer-host, default 127.0.0.1; --viewer-port, default 8080; "
    f"--viewer-share, the fraction of wall time training keeps while the browser renders, default {DEFAULT_SHARE})."
)


def pop_viewer(argv: list[str]) -> tuple[list[str], Any]:
    """Remove ``--viewer`` (a bare flag, or ``--viewer True|False``) and its ``--viewer-*`` options; returns
    the training callback that serves the viewer, or ``None``."""
    argv, host = pop_option(argv, "--viewer-host")
    argv, port = pop_option(argv, "--viewer-port")
    argv, share = pop_option(argv, "--viewer-share")
    out, enabled, i = [], False, 0
    while i < len(argv):
        if argv[i] == "--viewer":
            value = argv[i + 1] if i + 1 < len(argv) else None
            if value in ("True", "False", "true", "false"):
                enabled, i = value.lower() == "true", i + 2
                continue
            enabled = True
        elif argv[i].startswith("--viewer="):
            enabled = argv[i].split("=", 1)[1].lower() == "true"
        else:
            out.append(argv[i])
        i += 1
    if not enabled:
        if host is not None or port is not None or share is not None:
            raise InputError(None, "--viewer-host/--viewer-port/--viewer-share need --viewer")
        return out, None
    try:
        port_n, share_f = int(port or 8080), float(share or DEFAULT_SHARE)
    except ValueError as e:
        raise InputError(None, f"bad --viewer option: {e}") from None
    if not 0 < share_f <= 1:
        raise InputError(None, f"--viewer-share must be in (0, 1], got {share_f}")
    import sys

    from fieldforge.app.viewer.extra import require_viewer
    from fieldforge.app.viewer.live import LiveViewer

    require_viewer("--viewer")  # before anything is written
    return out, LiveViewer(host or "127.0.0.1", port_n, share_f, keep_open=sys.stdin.isatty())


def train_command(task_name: str, argv: list[str], prog: str) -> int:
    from fieldforge.app.capture_process import process_argv
    from fieldforge.app.distributed import LaunchEnv, launched
    from fieldforge.app.runs import RunDir
    from fieldforge.app.train import ResumeOverrides, resume, train
    from fieldforge.app.trainer import resolve_device

    task = get_task(task_name)
    env = LaunchEnv.from_environ()  # started by torchrun: one rank of a data-parallel run
    main_rank = env is None or env.rank == 0
    argv, viewer = pop_viewer(argv)
    argv = process_argv(argv)  # --process True: photos or a video are posed first (capture process)
    callbacks = [viewer] if viewer is not None and main_rank else []  # the viewer runs beside rank 0
    if peek_option(argv, "--resume") is not None:
        options = parse_resume(argv, prog)
        device = resolve_device(RunDir.open(options.resume).read_config().trainer.device)
        with launched(device) as (rank, world_size):
            run, metrics = resume(options.resume, ResumeOverrides(options.steps, options.progress), callbacks, rank, world_size)
    else:
        config = parse_train(task, argv, prog)
        with launched(resolve_device(config.trainer.device)) as (rank, world_size):
            run, metrics = train(config, callbacks=callbacks, rank=rank, world_size=world_size)
    if rank == 0:
        print(task.summary_line(run.read_config(), metrics, run.path))
    return 0
