"""One CLI shape for every task, generated from the registry: ``--help`` lists the methods, marks required
options, shows only the options that apply, documents every option without raw markup; ``--resume``
refuses options it cannot honour; old spellings still work."""

import re
import subprocess
import sys

import pytest

from fieldforge.app.cli import COMMANDS, main
from fieldforge.app.tasks import TASKS, get_task


def help_text(args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # one column: each option's lines follow each other
    with pytest.raises(SystemExit) as e:
        main([*args, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def undocumented(text: str) -> list[str]:
    """Options whose help line is followed directly by their default (no description)."""
    lines = [ln.strip(" │") for ln in text.splitlines()]
    out = []
    metavar = re.compile(r"^(\{[^}]*\}(\|[A-Z]+)?|[A-Z]+( [A-Z]+)*|\[[A-Z .\[\]]*\]|,|-[a-z])$")
    for a, b in zip(lines, lines[1:]):
        if not a.startswith("--"):
            continue
        rest = [tok for tok in a.split()[1:] if not metavar.match(tok)]
        if not rest and (b.startswith("(default:") or b.startswith("(required)")):
            out.append(a.split()[0])
    return out


@pytest.mark.parametrize("task", list(TASKS))
def test_train_help(task: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    text = help_text(["train", task], capsys, monkeypatch)
    definition = get_task(task)
    for name, preset in definition.methods.items():  # every method with its one-line description
        assert re.search(rf"^\s+{re.escape(name)}\s+{re.escape(preset.description[:30])}", text, re.M), name
    assert re.search(r"--data PATH\s+.*\(required\)", text, re.S)
    assert "default: ." not in text
    assert "--field.head" not in text  # the task decides the head
    assert ("--field.radiance" in text) == (task == "nerf")
    assert "``" not in text and ":class:" not in text and ":func:" not in text
    assert undocumented(text) == []
    assert "--resume RUN" in text


@pytest.mark.parametrize("switch", [["--encoding", "sape"], ["--network", "pins"], ["--method", "siren"]])
def test_help_after_a_switch_documents_the_new_component(switch: list[str], capsys, monkeypatch) -> None:
    text = help_text(["train", "image", *switch], capsys, monkeypatch)
    assert undocumented(text) == [] and "``" not in text


@pytest.mark.parametrize("command", [c for c in COMMANDS])
def test_every_command_documents_its_options(command: tuple[str, ...], capsys, monkeypatch) -> None:
    text = help_text(list(command), capsys, monkeypatch)
    assert undocumented(text) == [] and "``" not in text


def test_train_alone_lists_the_tasks(capsys: pytest.CaptureFixture) -> None:
    assert main(["train"]) == 0
    out = capsys.readouterr().out
    for name, entry in TASKS.items():
        assert f"{name}" in out and entry.summary in out
    assert main(["train", "cats"]) == 2
    assert "unknown task 'cats'" in capsys.readouterr().err


def test_top_level_help_lists_train_commands(capsys: pytest.CaptureFixture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"train {name}" in out for name in TASKS)


@pytest.mark.parametrize("task", list(TASKS))
def test_missing_data_is_one_error_line(task: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", task]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--data is required" in lines[0] and get_task(task).data_hint in lines[0]


def test_resume_refuses_options_it_cannot_honour(tmp_path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "image", "--resume", str(tmp_path), "--downscale", "2", "--optim.lr", "0.1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--downscale" in err and "--optim.lr" in err and "--steps" in err


def test_unknown_method_names_the_task_and_choices(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "sdf", "--data", "x.ply", "--method", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "sdf" in err and "ngp" in err and "Config" not in err


def test_old_capture_spelling_is_an_alias(capsys, monkeypatch) -> None:
    """``train nerf --capture.downscale`` (old) and ``--downscale`` (same as train image) set one option."""
    from fieldforge.app.cli_train import parse_train

    task = get_task("nerf")
    old = parse_train(task, ["--data", "cap", "--capture.downscale", "3"], "fieldforge train nerf")
    new = parse_train(task, ["--data", "cap", "--downscale", "3"], "fieldforge train nerf")
    assert old.capture.downscale == new.capture.downscale == 3


def test_default_method_and_sizes_follow_the_device() -> None:
    import torch

    for name in TASKS:
        task = get_task(name)
        cpu = task.default_config(None, torch.device("cpu"))
        cuda = task.default_config(None, torch.device("cuda"))
        assert cpu.method == task.default_method(torch.device("cpu"))
        assert cpu.field.encoding.log2_table_size < cuda.field.encoding.log2_table_size  # CPU-sized tables
        preset = task.default_config(cpu.method)  # --method NAME: the published preset, unsized
        assert preset.method == cpu.method


def test_the_cli_runs_as_a_module() -> None:
    out = subprocess.run([sys.executable, "-m", "fieldforge.app.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("fieldforge ")


def test_undocumented_detector() -> None:
    assert undocumented("│ --optim.betas FLOAT FLOAT │\n│       (default: 0.9 0.99) │") == ["--optim.betas"]
    assert undocumented("│ --bias {True,False} │\n│ (default: True) │") == ["--bias"]
    assert undocumented("│ --loss {mse,l1}   Per-pixel loss. │\n│ (default: mse) │") == []
