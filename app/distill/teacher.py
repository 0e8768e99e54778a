"""The teacher of a distillation: one query, its input record and its frame, behind ``load_teacher``.

A ``Teacher`` is all the distiller sees of the run it learns from: the teacher query
``teacher(points, directions) → FieldOutputs`` (``fieldforge.fields.capabilities.Queryable``; world points
in the run's normalized frame), the signal type (``image``, ``sdf``, ``nerf``), the record of the input it
was trained on (image size; shape normalization; ``capture.json``'s cameras, split and scene box), the
frame back to the user's coordinates, and where it came from (path + step). The distiller never looks
inside the teacher's model.

Extension point: ``TEACHER_LOADERS`` is the ordered list of ``TeacherLoader``s ``load_teacher`` tries; the
first whose ``accepts(path)`` is true loads it. FieldForge run directories are the one built in. A loader
for other tools' checkpoints (e.g. nerfstudio's ``config.yml`` + ``.ckpt``, issue 17) appends a
``TeacherLoader`` returning the same ``Teacher``: a query module in the capture's normalized frame, the
signal type, an ``info`` dict with the keys of our ``capture.json`` (cameras, split, scene_box,
normalization, background) and ``config=None``. Such loaders must refuse pickled checkpoints unless
``trust_checkpoint`` is true (loading a pickle runs code).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from fieldforge.data.errors import InputError
from fieldforge.data.transforms import Similarity
from fieldforge.fields.capabilities import Queryable
from fieldforge.fields.outputs import FieldOutputs
from torch import Tensor, nn

SIGNALS = ("image", "sdf", "nerf")


@dataclass
class Teacher:
    """A trained representation as the distiller uses it (frozen, eval mode)."""

    model: nn.Module
    """``Queryable``: ``model(points (n, d), directions (n, 3) | None) → FieldOutputs``."""
    signal: str
    """``image``, ``sdf`` or ``nerf``: the students it can teach are the method presets of this task."""
    info: dict
    """The record of its input (``data.json`` / ``capture.json`` keys)."""
    frame: Similarity | None
    """User coordinates → the query's coordinates (``None``: identical)."""
    source: Path
    """Where it was loaded from (recorded in the student's config)."""
    step: int
    """Its training step (recorded in the student's config)."""
    method: str = ""
    config: Any = None
    """The run config when the teacher is a FieldForge run (students copy its input settings), else ``None``."""

    def __call__(self, points: Tensor, directions: Tensor | None = None) -> FieldOutputs:
        """The teacher query without gradients to its parameters (gradients to ``points`` flow when enabled)."""
        return self.model(points, directions)

    @torch.no_grad()
    def query(self, points: Tensor, directions: Tensor | None = None, chunk: int = 1 << 16) -> FieldOutputs:
        """Chunked query without any gradients."""
        parts = [self.model(points[i : i + chunk], None if directions is None else directions[i : i + chunk]) for i in range(0, points.shape[0], chunk)]
        return FieldOutputs.cat(parts)


@dataclass(frozen=True)
class TeacherLoader:
    name: str
    accepts: Callable[[Path], bool]
    load: Callable[[Path, torch.device, int | None, bool], Teacher]
    """``load(path, device, step, trust_checkpoint) → Teacher``."""


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file()


def _load_run(path: Path, device: torch.device, step: int | None, trust_checkpoint: bool) -> Teacher:
    from fieldforge.app.loader import load_run

    loaded = load_run(path, step, device)
    model = loaded.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if not isinstance(model, Queryable):
        raise InputError(path, "the run's model has no teacher query")
    return Teacher(model, loaded.kind, loaded.info, loaded.frame, loaded.run.path.resolve(), loaded.step, loaded.config.method, loaded.config)


def _is_nerfstudio_run(path: Path) -> bool:
    from fieldforge.app.integrations.nerfstudio.teacher import is_nerfstudio_run

    return is_nerfstudio_run(path)


def _load_nerfstudio_run(path: Path, device: torch.device, step: int | None, trust_checkpoint: bool) -> Teacher:
    """A nerfstudio ``config.yml`` (issue 17; needs the nerfstudio extra, says how to install it otherwise)."""
    from fieldforge.app.integrations.nerfstudio.teacher import load_nerfstudio_teacher

    return Teacher(**load_nerfstudio_teacher(path, device, step, trust_checkpoint))


TEACHER_LOADERS: list[TeacherLoader] = [
    TeacherLoader("fieldforge run", _is_run, _load_run),
    TeacherLoader("nerfstudio run (config.yml)", _is_nerfstudio_run, _load_nerfstudio_run),
]
"""Tried in order by ``load_teacher`` (append loaders for other tools' checkpoints)."""


def load_teacher(path: str | Path, device: str | torch.device = "cpu", step: int | None = None, trust_checkpoint: bool = False) -> Teacher:
    """The teacher at ``path`` (newest checkpoint, or ``step``) on ``device``; ``InputError`` if no loader accepts it."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "teacher not found")
    for loader in TEACHER_LOADERS:
        if loader.accepts(path):
            teacher = loader.load(path, torch.device(device), step, trust_checkpoint)
            if teacher.signal not in SIGNALS:
                raise InputError(path, f"a {teacher.signal} run cannot be a teacher (signal types: {', '.join(SIGNALS)})")
            return teacher
    raise InputError(path, f"not a teacher: expected a FieldForge run directory (with config.yaml); readable: {', '.join(t.name for t in TEACHER_LOADERS)}")


__all__ = ["SIGNALS", "TEACHER_LOADERS", "Teacher", "TeacherLoader", "load_teacher"]
