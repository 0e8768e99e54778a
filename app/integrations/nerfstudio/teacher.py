"""nerfstudio checkpoints as distillation teachers: ``fieldforge distill --teacher RUN/config.yml
--trust-checkpoint``.

A nerfstudio run is ``config.yml`` (a YAML dump of Python objects) + ``nerfstudio_models/step-*.ckpt``
(a pickle) + ``dataparser_transforms.json``. Loading either runs code from the file, so this loader refuses
unless ``trust_checkpoint`` is true.

Frames: nerfstudio trains in its dataparser frame, ``p_ns = s·(R p + t)`` of the capture's world
(``dataparser_transforms.json``); FieldForge trains in its own normalized frame of the same capture
(``capture.json``'s normalization). The teacher query takes FieldForge-frame points and directions, maps them
into nerfstudio's frame and scales density by the ratio of the two frames' scales (σ is per unit length),
so a student trained on it — and everything exported from the student — lands in the capture's coordinates.

The query uses the model's FieldForge ``NerfModel`` directly for the ``fieldforge-*`` methods (with its
features), and ``model.field`` through nerfstudio's ``RaySamples`` for other models (nerfacto, instant-ngp).
"""

import json
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor, nn

from fieldforge.data.errors import InputError
from fieldforge.data.transforms import Similarity
from fieldforge.fields.outputs import FieldOutputs

UNTRUSTED = (
    "a nerfstudio run is pickled Python (config.yml and its .ckpt): loading it runs code from those files; "
    "pass --trust-checkpoint if you trust whoever wrote them"
)


class NerfstudioFieldQuery(nn.Module):
    """``(points, directions) → FieldOutputs`` of a nerfstudio model's ``field`` (nerfstudio frame): each
    point is a zero-length frustum at the point, looking along its direction (camera 0's embedding)."""

    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field = field

    def forward(self, points: Tensor, directions: Tensor | None = None) -> FieldOutputs:
        from nerfstudio.cameras.rays import Frustums, RaySamples
        from nerfstudio.field_components.field_heads import FieldHeadNames

        n = points.shape[0]
        if directions is None:
            directions = torch.zeros_like(points)
            directions[:, 2] = 1.0
        zeros = points.new_zeros(n, 1)
        frustums = Frustums(origins=points, directions=directions, starts=zeros, ends=zeros, pixel_area=torch.ones_like(zeros))
        samples = RaySamples(frustums=frustums, camera_indices=torch.zeros(n, 1, dtype=torch.long, device=points.device))
        out = self.field(samples)
        density = out[FieldHeadNames.DENSITY].reshape(n)
        return FieldOutputs(rgb=out[FieldHeadNames.RGB].reshape(n, 3), density=density)


class FrameMappedQuery(nn.Module):
    """A teacher query in another frame: ``ours → theirs`` (a ``Similarity``); densities scale by its scale."""

    def __init__(self, inner: nn.Module, ours_to_theirs: Similarity) -> None:
        super().__init__()
        self.inner = inner
        self.map = ours_to_theirs

    def forward(self, points: Tensor, directions: Tensor | None = None) -> FieldOutputs:
        p = self.map.apply(points)
        d = None if directions is None else self.map.rotate(directions)
        out = self.inner(p, d)
        scale = self.map.scale
        density = None if out.density is None else out.density * scale
        # a raw (pre-activation) density means nothing after rescaling: only σ is handed on
        return FieldOutputs(values=out.values, rgb=out.rgb, density=density, features=out.features)


def is_nerfstudio_run(path: Path) -> bool:
    """``config.yml`` written by nerfstudio (``path`` is the file or its folder); does not import nerfstudio."""
    if path.is_dir() and (path / "config.yaml").is_file():
        return False  # a FieldForge run
    config = path / "config.yml" if path.is_dir() else path
    if config.suffix not in (".yml", ".yaml") or not config.is_file():
        return False
    with config.open("rb") as f:
        return b"nerfstudio" in f.read(4096)


def dataparser_similarity(run_dir: Path, pipeline) -> Similarity:
    """Capture world → nerfstudio's dataparser frame: ``dataparser_transforms.json`` of the run, else the
    data manager's dataparser outputs."""
    path = run_dir / "dataparser_transforms.json"
    if path.is_file():
        try:
            d = json.loads(path.read_text())
            transform, scale = d["transform"], float(d["scale"])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(path, f"not a nerfstudio dataparser transform ({e})") from None
    else:
        outputs = pipeline.datamanager.train_dataparser_outputs
        transform, scale = outputs.dataparser_transform.tolist(), float(outputs.dataparser_scale)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :4] = torch.tensor(transform, dtype=torch.float64)
    return Similarity.from_matrix(m.numpy()).then(Similarity(None, None, scale))


def _checkpoint(model_dir: Path, step: int | None) -> tuple[Path, int]:
    ckpts = sorted(model_dir.glob("step-*.ckpt")) if model_dir.is_dir() else []
    steps = {int(p.stem.split("-")[1]): p for p in ckpts if p.stem.split("-")[1].isdigit()}
    if not steps:
        raise InputError(model_dir, "no nerfstudio checkpoint (step-*.ckpt) here")
    if step is None:
        step = max(steps)
    if step not in steps:
        raise InputError(model_dir, f"no checkpoint of step {step}; steps: {', '.join(map(str, sorted(steps)))}")
    return steps[step], step


def _data_path(config, run_dir: Path) -> Path:
    data = config.data or config.pipeline.datamanager.data or getattr(config.pipeline.datamanager.dataparser, "data", None)
    if data is None:
        raise InputError(run_dir / "config.yml", "the nerfstudio config names no data (capture) path")
    data = Path(data)
    if not data.is_absolute() and not data.exists():
        # runs are written relative to the folder ns-train ran in: outputs/<exp>/<method>/<time>/config.yml
        for base in run_dir.parents:
            if (base / data).exists():
                return base / data
    if not data.exists():
        raise InputError(data, "the teacher's capture (named in its config.yml) does not exist")
    return data


def load_nerfstudio_teacher(path: Path, device: torch.device, step: int | None, trust_checkpoint: bool) -> dict:
    """The nerfstudio run at ``path`` (``config.yml`` or its folder) as a teacher in FieldForge's frame of its
    capture: the keyword arguments of ``fieldforge.app.distill.teacher.Teacher`` (built there: no import cycle).
    Its ``config`` is a FieldForge NeRF run config of the teacher's capture (what a student copies its input from)."""
    from fieldforge.app.integrations import require

    require("nerfstudio", path, "a nerfstudio teacher")
    config_path = path / "config.yml" if path.is_dir() else path
    if not trust_checkpoint:
        raise InputError(config_path, UNTRUSTED)
    import yaml
    from nerfstudio.engine.trainer import TrainerConfig

    from fieldforge.app.tasks.nerf import TASK as NERF, capture_metadata
    from fieldforge.data.captures.capture import CaptureOptions

    run_dir = config_path.parent
    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    if not isinstance(config, TrainerConfig):
        raise InputError(config_path, "not a nerfstudio trainer config")
    data = _data_path(config, run_dir)
    config.pipeline.datamanager.data = data
    ckpt_path, step = _checkpoint(run_dir / config.relative_model_dir, step)
    model_config = config.pipeline.model
    if getattr(model_config, "sizes", None) == "auto":  # FieldForge methods: the sizes of the device it trained on
        model_config.sizes = "cuda" if config.machine.device_type == "cuda" else "cpu"
    pipeline = config.pipeline.setup(device=device, test_mode="inference")
    state = torch.load(ckpt_path, map_location=device, weights_only=False)
    pipeline.load_pipeline(state["pipeline"], state["step"])
    model = pipeline.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    # the student reads the same capture as the teacher did: its input settings are a FieldForge NeRF config's,
    # rendering as the teacher's model did (fieldforge-* methods: their steps per ray, grid and contraction)
    downscale = int(getattr(config.pipeline.datamanager.dataparser, "downscale_factor", None) or 1)
    student_input = replace(NERF.preset_config(NERF.default), data=data, capture=CaptureOptions(downscale=downscale))
    if hasattr(model, "run_config"):
        student_input = replace(student_input, render=model.run_config.render)
    capture = NERF.prepare(student_input)
    info = capture_metadata(capture)
    ours = capture.normalization  # capture world → FieldForge's normalized frame
    theirs = dataparser_similarity(run_dir, pipeline)  # capture world → nerfstudio's frame
    inner = model.nerf if hasattr(model, "nerf") else NerfstudioFieldQuery(model.field)
    query = FrameMappedQuery(inner, ours.inverse().then(theirs)).to(device).eval()
    return {"model": query, "signal": NERF.name, "info": info, "frame": ours, "source": run_dir.resolve(), "step": step,
            "method": config.method_name, "config": student_input}


__all__ = ["FrameMappedQuery", "NerfstudioFieldQuery", "UNTRUSTED", "dataparser_similarity", "is_nerfstudio_run",
           "load_nerfstudio_teacher"]
