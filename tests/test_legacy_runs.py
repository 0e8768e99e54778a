"""Runs written before the package rename still load: ``info``, exports and ``--resume`` on the tiny run
directories in ``tests/data/legacy_runs`` (their config tags name ``app.…``/``fields.…``/``data.…``)."""

import shutil
from pathlib import Path

import pytest
import torch

from fieldforge.app.cli import main
from fieldforge.app.config_io import UnknownTagError, load_yaml, resolve_tag
from fieldforge.app.loader import load_run

LEGACY = Path(__file__).parent / "data" / "legacy_runs"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A copy of the legacy runs whose configs point at the copied inputs."""
    shutil.copytree(LEGACY, tmp_path / "legacy")
    root = tmp_path / "legacy"
    for config in (root / "runs").glob("*/config.yaml"):
        config.write_text(config.read_text().replace("/tmp/legacy/", f"{root / 'inputs'}/"))
    return root


def test_old_tags_map_to_the_new_classes() -> None:
    from fieldforge.app.tasks.image import ImageTrainConfig
    from fieldforge.app.tasks.nerf import NerfTrainConfig
    from fieldforge.app.tasks.sdf import SDFTrainConfig
    from fieldforge.fields.field import FieldConfig

    assert resolve_tag("app.config:ImageTrainConfig") is ImageTrainConfig
    assert resolve_tag("app.config_sdf:SDFTrainConfig") is SDFTrainConfig
    assert resolve_tag("app.config_nerf:NerfTrainConfig") is NerfTrainConfig
    assert resolve_tag("fields.field:FieldConfig") is FieldConfig


@pytest.mark.parametrize("tag", ["os:system", "subprocess:Popen", "fieldforge.app.cli:main", "builtins:eval", "fieldforge.app.train:train"])
def test_tags_outside_the_configs_are_refused(tag: str) -> None:
    with pytest.raises(UnknownTagError):
        resolve_tag(tag)
    with pytest.raises(UnknownTagError):
        load_yaml(f"_type: '{tag}'\n")


@pytest.mark.parametrize(("name", "kind"), [("image-ff", "image"), ("sdf-ff", "sdf"), ("nerf-ff", "nerf")])
def test_legacy_runs_load(legacy: Path, name: str, kind: str) -> None:
    loaded = load_run(legacy / "runs" / name)
    assert loaded.kind == kind and loaded.step == 4
    assert loaded.config.method == "ff"
    assert sum(p.numel() for p in loaded.model.parameters()) > 0
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())


def test_legacy_runs_info_and_export(legacy: Path, capsys: pytest.CaptureFixture) -> None:
    runs = legacy / "runs"
    for name in ("image-ff", "sdf-ff", "nerf-ff"):
        assert main(["info", str(runs / name)]) == 0
    assert "task: nerf" in capsys.readouterr().out
    assert main(["export", "image", "--run", str(runs / "image-ff"), "--scale", "2"]) == 0
    assert (runs / "image-ff" / "exports" / "image-x2.png").is_file()
    assert main(["export", "render", "--run", str(runs / "nerf-ff"), "--device", "cpu"]) == 0
    assert main(["export", "mesh", "--run", str(runs / "sdf-ff"), "--resolution", "16", "--device", "cpu"]) == 0
    assert (runs / "sdf-ff" / "exports" / "mesh-16-step000004.ply").is_file()


@pytest.mark.parametrize("name", ["image-ff", "sdf-ff", "nerf-ff"])
def test_legacy_runs_resume(legacy: Path, name: str) -> None:
    run = legacy / "runs" / name
    assert main(["train", name.split("-")[0], "--resume", str(run), "--steps", "6", "--progress", "False"]) == 0
    steps = sorted(int(p.name[5:11]) for p in (run / "checkpoints").glob("step-*.safetensors"))
    assert steps[-1] == 6


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_hostile_run_directory_runs_no_code(legacy: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A state file with a pickled call, and a config tag naming a function: refused, nothing executed."""
    import io

    run = legacy / "runs" / "image-ff"
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.marker = str(marker)
    state = next((run / "checkpoints").glob("*.state.pt"))
    buf = io.BytesIO()
    torch.save({"step": 4, "evil": payload}, buf)
    state.write_bytes(buf.getvalue())
    assert main(["train", "image", "--resume", str(run), "--steps", "6", "--progress", "False"]) == 2
    assert "corrupt checkpoint state" in capsys.readouterr().err and not marker.exists()
    config = run / "config.yaml"
    lines = config.read_text().splitlines()
    assert lines[0].startswith("_type: ")
    config.write_text("\n".join(["_type: os:system", *lines[1:]]) + "\n")
    assert main(["info", str(run)]) == 2
    assert "does not name a FieldForge config" in capsys.readouterr().err
