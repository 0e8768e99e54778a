"""A run directory from someone else never runs code and never redirects writes: pickled payloads in state
files, hostile type tags and YAML tags in config.yaml, symbolic links out of the run. Also: a failed resume
changes nothing, stale temp files are removed on the next start, and --resume works from another directory."""

import shutil
import sys
from pathlib import Path

import pytest

from fieldforge.app.cli import main
from tests.test_bad_inputs import edit_config, latest, pickled_state, png, train_image, tree_digest

PAYLOAD_MODULE = "ff_payload_module"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("payload-run")
    png(root / "input.png", 16, 16)
    argv = train_image(root / "input.png", root, "--name", "run", "--batch-size", "64", "--checkpoint-every", "1",
                       "--field.encoding.log2-table-size", "10", "--field.encoding.n-levels", "4")
    assert main(argv) == 0
    return root / "runs" / "run"


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def planted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module whose import writes ``marker`` (what a hostile tag would run)."""
    marker = tmp_path / "imported"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / f"{PAYLOAD_MODULE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\nfrom dataclasses import dataclass\n@dataclass\nclass EvilConfig:\n    x: int = 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    monkeypatch.delitem(sys.modules, PAYLOAD_MODULE, raising=False)
    return marker


COMMANDS = {
    "info": lambda run: ["info", str(run)],
    "export": lambda run: ["export", "image", "--run", str(run)],
    "resume": lambda run: ["train", "image", "--resume", str(run), "--steps", "4", "--progress", "False"],
}


def one_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("fieldforge: error: ") and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command", list(COMMANDS))
def test_pickled_state_payload_never_runs(command: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    pickled_state(run, marker)
    before = (run / "config.yaml").read_bytes()
    code = main(COMMANDS[command](run))
    assert not marker.exists(), "the pickled payload ran"
    if command == "resume":  # the only command that reads trainer state
        assert code == 2 and "holds pickled objects or code, which are never loaded" in one_error(capsys)
        assert (run / "config.yaml").read_bytes() == before, "a failed resume rewrote config.yaml"
    else:
        assert code == 0


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    "where, tag",
    [
        ("top", f"{PAYLOAD_MODULE}:EvilConfig"),
        ("nested", f"{PAYLOAD_MODULE}:EvilConfig"),
        ("top", "fieldforge.app.cli:main"),
        ("nested", "fieldforge.app.trainer:Stage"),
        ("nested", "fieldforge.no_such_module:EvilConfig"),
    ],
)
def test_hostile_type_tags_import_nothing(command: str, where: str, tag: str, run: Path, planted_module: Path, capsys: pytest.CaptureFixture) -> None:
    old = "_type: fieldforge.app.tasks.image:ImageTrainConfig" if where == "top" else "_type: fieldforge.fields.networks.mlp:MLPConfig"
    edit_config(run, old, f"_type: {tag}")
    digest = tree_digest(run)
    assert main(COMMANDS[command](run)) == 2
    err = one_error(capsys)
    assert "config.yaml" in err and ("does not name a FieldForge config" in err or "names no FieldForge config" in err)
    assert not planted_module.exists(), "a module named by a tag was imported"
    assert tree_digest(run) == digest


@pytest.mark.parametrize("command", list(COMMANDS))
def test_yaml_python_tags_are_refused(command: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    edit_config(run, "method: ngp", f"method: !!python/object/apply:os.system ['touch {marker}']")
    assert main(COMMANDS[command](run)) == 2
    assert "unreadable run config" in one_error(capsys) and not marker.exists()


@pytest.mark.parametrize("name", ["checkpoints", "metrics.jsonl", "config.yaml"])
def test_writes_never_follow_a_symlink_out_of_the_run(name: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(str(run / name), outside / name)
    (run / name).symlink_to(outside / name)
    digest = tree_digest(outside)
    assert main(COMMANDS["resume"](run)) == 2
    assert "symbolic link" in one_error(capsys)
    assert tree_digest(outside) == digest, "a write followed the link"


def test_exports_refuse_a_symlinked_exports_folder(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "outside").mkdir()
    (run / "exports").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert main(COMMANDS["export"](run)) == 2
    assert "symbolic link" in one_error(capsys) and not any((tmp_path / "outside").iterdir())


def test_failed_resume_changes_nothing(run: Path, capsys: pytest.CaptureFixture) -> None:
    path = latest(run)
    path.write_bytes(path.read_bytes()[:100])
    digest = tree_digest(run)
    assert main(COMMANDS["resume"](run)) == 2
    assert "corrupt checkpoint" in one_error(capsys)
    assert tree_digest(run) == digest


def test_stale_temp_files_are_removed_on_the_next_start(run: Path) -> None:
    stale = [run / ".config.yaml.k2j3h4.tmp", run / "checkpoints" / ".step-000003.safetensors.x8y7.tmp", run / "renders" / ".reconstruction.ab12.tmp.png"]
    for p in stale:
        p.write_bytes(b"half-written")
    keep = run / "notes.tmp"  # not one of ours (no leading dot): left alone
    keep.write_text("mine")
    assert main(COMMANDS["resume"](run)) == 0
    assert not any(p.exists() for p in stale) and keep.exists()


def test_data_path_is_stored_absolute_and_resume_works_from_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work").mkdir()
    png(tmp_path / "work" / "in.png", 12, 12)
    monkeypatch.chdir(tmp_path / "work")
    argv = ["train", "image", "--data", "in.png", "--output-dir", "runs", "--name", "r", "--steps", "2", "--batch-size", "32",
            "--progress", "False", "--field.encoding.log2-table-size", "10", "--field.encoding.n-levels", "4"]
    assert main(argv) == 0
    assert f"_path: {tmp_path / 'work' / 'in.png'}" in (tmp_path / "work" / "runs" / "r" / "config.yaml").read_text()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "image", "--resume", "work/runs/r", "--steps", "3", "--progress", "False"]) == 0
