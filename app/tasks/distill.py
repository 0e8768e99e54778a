"""Distillation as a variant of every task: a run of the student's own task that learns from a teacher run.

A distilled run is a normal run of its signal type (``image``, ``sdf``, ``nerf``): its config is the
student task's run config extended by one ``distill`` section (``DistilledImageConfig`` …, subclasses of
the task configs), which records the teacher (path + step) and the stages. ``task_for_config`` of the
registry finds this module's ``DistillTaskDefinition`` for such a config; it delegates everything to the
student's task definition (input, record, model, evaluation, renders, frame) except the training task and
its stages. So ``load_run``, ``export``, ``info``, ``view`` and ``train <task> --resume`` treat a distilled run
exactly as a trained one, and a distilled run can teach again (chains).
"""

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import torch
import tyro
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks import get_task
from fieldforge.app.tasks.base import TaskContext, TaskDefinition
from fieldforge.app.tasks.image import ImageTrainConfig
from fieldforge.app.tasks.nerf import NerfTrainConfig
from fieldforge.app.tasks.sdf import SDFTrainConfig
from fieldforge.app.trainer import Stage, Task
from fieldforge.data.errors import InputError
from torch import nn


@dataclass(frozen=True)
class DistillOptions:
    """The teacher and the distillation stages (defaults finish in minutes on a 2-core CPU)."""

    teacher: Path = Path("")
    """Teacher: a finished run directory of the same signal type (a distilled run too)."""
    teacher_step: int | None = None
    """Teacher checkpoint step (default: its newest; the step used is recorded)."""
    teacher_method: Annotated[str, tyro.conf.Suppress] = ""
    """The teacher's method (recorded)."""
    trust_checkpoint: bool = False
    """Load a teacher stored as a pickle (a nerfstudio config.yml and checkpoint): loading it runs code from it."""
    image_steps: int = 1000
    """Images: steps regressing the teacher at uniform + jittered sub-pixel coordinates."""
    sdf_steps: int = 600
    """SDF/occupancy: steps regressing the teacher's values (and normals) near and away from its surface."""
    feature_steps: int = 100
    """NeRF stage 1: intermediate features (only when teacher and student features have the same size)."""
    point_steps: int = 300
    """NeRF stage 2: per-point clamped log-density and colour at the teacher's sample points."""
    render_steps: int = 600
    """NeRF stage 3: rendered colour on teacher renderings along the same samples (+ the point losses)."""
    tile_steps: int = 600
    """KiloNeRF: per-tile distillation of α and colour at uniform points in each tile."""
    finetune_steps: int = 200
    """KiloNeRF: fine-tuning on the training images (L2 on the view-dependent layers)."""
    tile_density_weight: float = 1.0
    """KiloNeRF tiles: weight of PVD's clamped log-density loss beside the α/RGB MSE (α at the renderer's small
    marching step is ≪ 1 through most of a surface, so the α loss alone barely moves the density; 0: α/RGB only)."""
    occupancy_threshold: float = 10.0
    """KiloNeRF: a grid cell is occupied when any of its 3×3×3 sub-samples has teacher σ above this (KiloNeRF's τ)."""
    occupancy_rays: int = 1 << 16
    """KiloNeRF: training and virtual rays rendered with the teacher before distilling; a cell is also occupied
    where one of them takes at least --occupancy-weight of its colour from it (thin or soft parts under τ;
    0: τ alone)."""
    occupancy_weight: float = 0.01
    """KiloNeRF: the share of a teacher ray's colour that makes the cells it comes from occupied (with --occupancy-rays)."""
    tile_ray_fraction: float = 0.0
    """KiloNeRF tiles: fraction of the points taken from the teacher's samples along training and virtual rays
    (with their view directions); the rest uniform in occupied cells. 0 by default: on the procedural capture
    0.5 ended 0.8 dB lower after 130 steps, and the ray marching costs ~50% more time per step."""
    student_lr: float = 0.0
    """Student peak learning rate (0: the preset's for images and SDFs; radiance students at least 2e-3, KiloNeRF
    5e-3: the presets' rates are for thousands of steps, these stages are hundreds)."""
    batch_size: int = 8192
    """Pixels (image), points (SDF) or samples (NeRF) per step."""
    tile_points: int = 1 << 15
    """KiloNeRF tiles: points per step (a CPU step's cost is mostly the Adam update of every tile's weights: 8× the
    points of 4096 take 1.6× the time per step on lego_half)."""
    virtual_views: float = 0.5
    """NeRF: fraction of the rays of a step from random virtual views around the training cameras (PVD-AL)."""
    virtual_angle: float = 20.0
    """NeRF: most degrees a virtual view is rotated about the scene centre from a training camera."""
    hard_rays: float = 0.25
    """NeRF stage 3: fraction of each batch replayed from the pool of highest-error rays (PVD-AL)."""
    hard_pool: int = 8192
    """NeRF: rays kept in the hard-ray pool."""
    density_range: tuple[float, float] = (-2.0, 7.0)
    """NeRF: log σ is clamped to this range on both sides (PVD's raw-density clip)."""
    point_weight: float = 0.01
    """NeRF stage 3: weight of the point losses beside the rendered colour (PVD: 0.002 on unnormalized norms)."""
    near_fraction: float = 0.6
    """SDF: fraction of the points drawn near the teacher's surface (the rest uniform in the box)."""
    normal_weight: float = 0.1
    """SDF: weight of 1 − cos(∇f_student, ∇f_teacher) at the near-surface points."""
    supersample: int = 2
    """Images: the fidelity to the teacher (teacher_psnr) is measured on a grid this many times finer than the image."""


@dataclass(frozen=True)
class DistilledImageConfig(ImageTrainConfig):
    """An image field distilled from a teacher run (fieldforge distill)."""

    distill: DistillOptions = dataclasses.field(default_factory=DistillOptions)


@dataclass(frozen=True)
class DistilledSDFConfig(SDFTrainConfig):
    """A shape field distilled from a teacher run (fieldforge distill)."""

    distill: DistillOptions = dataclasses.field(default_factory=DistillOptions)


@dataclass(frozen=True)
class DistilledNerfConfig(NerfTrainConfig):
    """A radiance field distilled from a teacher run (fieldforge distill)."""

    distill: DistillOptions = dataclasses.field(default_factory=DistillOptions)


DISTILLED: dict[str, type] = {"image": DistilledImageConfig, "sdf": DistilledSDFConfig, "nerf": DistilledNerfConfig}
"""Signal type → the config of its distilled runs."""


FINETUNE_LR_SCALE = 0.1
"""KiloNeRF fine-tuning's peak lr relative to the tiles stage's (KiloNeRF: 1e-3 after the tiles' 1e-3 had decayed;
restarting at the tiles' 5e-3 cost lego_half ×⅛ 2.1 dB in 100 steps)."""


def is_kilonerf(config: Any) -> bool:
    return getattr(getattr(config.field, "network", None), "cli_name", None) == "kilonerf" or config.method == "kilonerf"


def distill_stages(config: Any, signal: str) -> list[Stage]:
    """The stages of a distilled run, from its ``distill`` section."""
    o: DistillOptions = config.distill
    if signal == "image":
        return [Stage("distill", o.image_steps)]
    if signal == "sdf":
        return [Stage("distill", o.sdf_steps)]
    if is_kilonerf(config):
        return [Stage("tiles", o.tile_steps), Stage("finetune", o.finetune_steps, lr_scale=FINETUNE_LR_SCALE)]
    stages = []
    if o.feature_steps:
        stages.append(Stage("features", o.feature_steps, {"features": 1.0, "density": 0.0, "colour": 0.0, "rgb": 0.0}))
    stages.append(Stage("points", o.point_steps, {"features": 1.0, "density": 1.0, "colour": 1.0, "rgb": 0.0}))
    stages.append(Stage("render", o.render_steps, {"features": o.point_weight, "density": o.point_weight, "colour": o.point_weight, "rgb": 1.0}))
    return [s for s in stages if s.steps > 0]


LAST_STAGE_FIELD = {"image": "image_steps", "sdf": "sdf_steps"}


def with_total_steps(config: Any, signal: str, steps: int) -> Any:
    """The config with ``steps`` in all: the last stage absorbs the difference (``--resume --steps``)."""
    stages = distill_stages(config, signal)
    others = sum(s.steps for s in stages[:-1])
    if steps <= others:
        raise InputError(None, f"--steps {steps}: the stages before the last already take {others} steps")
    last = LAST_STAGE_FIELD.get(signal) or ("finetune_steps" if is_kilonerf(config) else "render_steps")
    options = replace(config.distill, **{last: steps - others})
    return replace(config, distill=options, trainer=replace(config.trainer, steps=steps))


@dataclass
class PreparedDistill:
    data: Any
    """What the student's task prepared (the real input: evaluation is against it)."""
    teacher: Any
    """The ``Teacher`` (``fieldforge.app.distill.teacher``)."""


class DistillTaskDefinition(TaskDefinition):
    """The student's task definition with distillation as its training task."""

    def __init__(self, student: TaskDefinition) -> None:
        self.student = student
        self.name = student.name  # type: ignore[misc]
        self.config_type = DISTILLED[student.name]  # type: ignore[misc]
        self.methods = student.methods  # type: ignore[misc]
        self.default = student.default  # type: ignore[misc]
        self.data_hint = student.data_hint  # type: ignore[misc]
        self.info_file = student.info_file  # type: ignore[misc]

    def preset_config(self, method: str) -> Any:
        return self.student.preset_config(method)

    def with_steps(self, config: Any, steps: int) -> Any:
        return with_total_steps(config, self.name, steps)

    def stages(self, config: Any) -> list[Stage]:
        return distill_stages(config, self.name)

    def prepare(self, config: Any) -> PreparedDistill:
        from fieldforge.app.distill.teacher import load_teacher
        from fieldforge.app.trainer import resolve_device

        teacher = load_teacher(config.distill.teacher, resolve_device(config.trainer.device), config.distill.teacher_step,
                               config.distill.trust_checkpoint)
        if teacher.signal != self.name:
            raise InputError(config.distill.teacher, f"the teacher is a {teacher.signal} run; a {self.name} student needs a {self.name} teacher")
        return PreparedDistill(self.student.prepare(config), teacher)

    def run_info(self, config: Any, prepared: PreparedDistill) -> dict:
        return self.student.run_info(config, prepared.data)

    def build_model(self, config: Any, info: dict) -> nn.Module:
        return self.student.build_model(config, info)

    def build_task(self, config: Any, model: nn.Module, prepared: PreparedDistill, ctx: TaskContext) -> Task:
        student_task = self.student.build_task(config, model, prepared.data, ctx)
        if self.name == "image":
            from fieldforge.app.distill.image import ImageDistillTask

            return ImageDistillTask(model, prepared.teacher, student_task, config, ctx)
        if self.name == "sdf":
            from fieldforge.app.distill.sdf import SDFDistillTask

            return SDFDistillTask(model, prepared.teacher, student_task, config, ctx)
        if is_kilonerf(config):
            from fieldforge.app.distill.kilonerf import KiloNerfDistillTask

            return KiloNerfDistillTask(model, prepared.teacher, student_task, config, ctx)
        from fieldforge.app.distill.nerf import NerfDistillTask

        return NerfDistillTask(model, prepared.teacher, student_task, config, ctx)

    def describe(self, config: Any, prepared: PreparedDistill, model: nn.Module, device: torch.device) -> str:
        t = prepared.teacher
        stages = ", ".join(f"{s.name} {s.steps}" for s in self.stages(config))
        head = f"distilling {t.method or t.signal} (step {t.step} of {t.source}) → {config.method}: stages {stages} (steps)"
        return head + "\n" + self.student.describe(config, prepared.data, model, device)

    def finish(self, run: RunDir, task: Any, config: Any, prepared: PreparedDistill, metrics: dict) -> None:
        self.student.finish(run, task.student, config, prepared.data, metrics)

    def summary_line(self, config: Any, metrics: dict, path: Path) -> str:
        line = self.student.summary_line(config, metrics, path)
        fidelity = f", teacher PSNR {metrics['teacher_psnr']:.2f} dB" if "teacher_psnr" in metrics else ""
        line = line.replace(" → ", fidelity + " → ", 1)
        return "distilled" + line[len("trained"):] if line.startswith("trained") else "distilled: " + line

    def read_info(self, run: RunDir) -> dict:
        return self.student.read_info(run)

    def reference_surface(self, config: Any, info: dict) -> Any:
        return self.student.reference_surface(config, info)

    def frame(self, info: dict) -> Any:
        return self.student.frame(info)


def task_for_config(config: Any) -> DistillTaskDefinition | None:
    """The task definition of a distilled run's config (``None`` for any other config)."""
    for name, cls in DISTILLED.items():
        if type(config) is cls:
            return DistillTaskDefinition(get_task(name))
    return None


KILONERF_DISTILL_LR = 5e-3
"""Peak learning rate of KiloNeRF radiance students (tile distillation and fine-tuning)."""
RADIANCE_DISTILL_MIN_LR = 2e-3
"""Least peak learning rate of the other radiance students (MLP presets train at 5e-4 / 1e-3 for thousands of
steps from photographs; against the teacher's clean per-point targets in stages of hundreds of steps that
leaves a NeRF student's density range compressed and its PSNR ~2.4 dB lower after 120 steps; hash grids keep
their 1e-2)."""

STUDENT_KEEPS_OWN = ("method", "field", "optim", "trainer", "fresh", "fresh_search", "target")
"""Student config fields that come from the student's preset, not from the teacher's run."""


def distill_config(teacher: Any, method: str, options: DistillOptions, **trainer: Any) -> Any:
    """The run config of a student ``method`` distilled from ``teacher`` (a ``Teacher``): the teacher's input
    settings, the student preset's field and optimizer, ``options`` with the teacher recorded."""
    task = get_task(teacher.signal)
    if method not in task.methods:
        others = [n for n in ("image", "sdf", "nerf") if n != teacher.signal and method in get_task(n).methods]
        hint = f" ({method!r} is a {' / '.join(others)} method)" if others else ""
        raise InputError(None, f"--method {method!r} is not a {teacher.signal} method{hint} (the teacher is a {teacher.signal} run): choose one of {', '.join(task.methods)}")
    base = task.preset_config(method)
    from fieldforge.app.trainer import resolve_device

    device = resolve_device(trainer.get("device", "auto"))
    if method == task.default_method(device):
        base = task.sized_for(base, device)  # the default method with its device sizes, as `train` gives it
    if teacher.config is not None:
        names = {f.name for f in dataclasses.fields(task.config_type)} - set(STUDENT_KEEPS_OWN)
        base = replace(base, **{n: getattr(teacher.config, n) for n in names})
        if teacher.signal == "sdf":
            from fieldforge.app.tasks.sdf import with_target

            base = with_target(base, teacher.config.target)
            base = replace(base, sampling=replace(base.sampling, pool_size=1000))  # the student's own sample pool is never drawn from
    else:
        raise InputError(teacher.source, "teachers without a FieldForge run config need their input given (not supported yet)")
    if teacher.signal == "nerf" and is_kilonerf(base):
        from fieldforge.fields.kilonerf import kilonerf_render_config

        base = replace(base, render=kilonerf_render_config(base.render))  # recorded: exports render as the distiller evaluated
        # tiles regress the teacher's log-density: with an exponential activation a tiny tile reaches σ in the
        # hundreds in a few steps (softplus needs raw values in the hundreds from a 32-wide layer: ~never)
        base = replace(base, field=replace(base.field, radiance=replace(base.field.radiance, density_activation="trunc_exp")))
        if not options.student_lr:
            options = replace(options, student_lr=KILONERF_DISTILL_LR)
    if teacher.signal == "nerf" and not options.student_lr:
        options = replace(options, student_lr=max(base.optim.lr, RADIANCE_DISTILL_MIN_LR))
    if options.student_lr:
        base = replace(base, optim=replace(base.optim, lr=options.student_lr))
    options = replace(options, teacher=teacher.source, teacher_step=teacher.step, teacher_method=teacher.method)
    cls = DISTILLED[teacher.signal]
    config = cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(task.config_type)}, distill=options)
    steps = sum(s.steps for s in distill_stages(config, teacher.signal))
    if steps < 1:
        raise InputError(None, "every distillation stage has 0 steps")
    return replace(config, trainer=replace(config.trainer, steps=steps, **trainer))


__all__ = [
    "DISTILLED", "DistillOptions", "DistillTaskDefinition", "DistilledImageConfig", "DistilledNerfConfig", "DistilledSDFConfig",
    "distill_config", "distill_stages", "task_for_config",
]
