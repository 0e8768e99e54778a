"""``fieldforge distill --teacher RUN --method NAME``: any trained run into any method preset of its signal type.

The result is a normal run directory of the teacher's task (``export``, ``info``, ``view`` and
``--resume`` work on it); its ``config.yaml`` records the teacher (path + step) and the stages.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro
from fieldforge.app.argv import peek_option
from fieldforge.app.cli_train import TYRO_CONF, parse_resume
from fieldforge.app.tasks.distill import DistillOptions
from fieldforge.data.errors import InputError


@dataclass(frozen=True)
class DistillCommand:
    """Distill a trained run (the teacher: any image, SDF or NeRF run, a distilled one too) into any method
    preset of the same signal type (the student). Images: the student regresses the teacher at uniform and
    jittered sub-pixel coordinates. SDF: values near and away from the surface + the teacher's normals.
    NeRF: PVD's stages (features, per-point clamped density and colour, rendered colour on teacher
    renderings from training and virtual views, hard-ray replay); KiloNeRF: per-tile distillation, then
    fine-tuning on the training images. The student is evaluated against the real data like any run, with
    its fidelity to the teacher (teacher_psnr) logged beside. --resume RUN continues a distilled run."""

    method: str = ""
    """Student method preset (a method of the teacher's task: fieldforge train <task> --help lists them)."""
    options: Annotated[DistillOptions, tyro.conf.OmitArgPrefixes] = dataclasses.field(default_factory=DistillOptions)
    output_dir: Path = Path("outputs")
    """Where the run directory is created."""
    name: str | None = None
    """Run directory name (default: <task>-<method>-<timestamp>)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """'auto' uses CUDA when present."""
    seed: int = 0
    """Seed of the student's initialization and of the sampling."""
    eval_every: int = 500
    """Evaluate against the real data and the teacher every N steps (0: only at the end)."""
    checkpoint_every: int = 500
    """Write a checkpoint every N steps (and always at the end)."""
    progress: bool = True
    """Show a progress bar."""


def distill(argv: list[str], prog: str) -> int:
    from fieldforge.app.distill.teacher import load_teacher
    from fieldforge.app.tasks import task_for_config
    from fieldforge.app.tasks.distill import distill_config
    from fieldforge.app.train import ResumeOverrides, resume, train
    from fieldforge.app.trainer import resolve_device
    from fieldforge.app.validation import validate_config

    if peek_option(argv, "--resume") is not None:
        options = parse_resume(argv, prog)
        run, metrics = resume(options.resume, ResumeOverrides(options.steps, options.progress))
    else:
        if not any(a in ("-h", "--help") for a in argv):
            for option, hint in (("--teacher", "a trained run directory"), ("--method", "the student's method preset")):
                if peek_option(argv, option) is None:
                    raise InputError(None, f"{option} is required ({hint})")
        default = DistillCommand(method=tyro.MISSING, options=dataclasses.replace(DistillOptions(), teacher=tyro.MISSING))  # type: ignore[arg-type]
        c = tyro.cli(DistillCommand, default=default, args=argv, prog=prog, config=TYRO_CONF)
        validate_config(c.options, paths=False)  # named as this command spells them (no "distill." prefix)
        if c.options.student_lr < 0:
            raise InputError(None, f"--student-lr must be ≥ 0 (0: the default), got {c.options.student_lr}")
        if not (0.0 <= c.options.virtual_views <= 1.0 and 0.0 <= c.options.hard_rays < 1.0):
            raise InputError(None, "--virtual-views must be in [0, 1] and --hard-rays in [0, 1)")
        teacher = load_teacher(c.options.teacher, resolve_device(c.device), c.options.teacher_step, c.options.trust_checkpoint)
        config = distill_config(
            teacher, c.method, c.options, output_dir=c.output_dir, name=c.name, device=c.device, seed=c.seed,
            eval_every=c.eval_every, checkpoint_every=c.checkpoint_every, progress=c.progress,
        )
        run, metrics = train(config)
    config = run.read_config()
    print(task_for_config(config).summary_line(config, metrics, run.path))
    return 0
