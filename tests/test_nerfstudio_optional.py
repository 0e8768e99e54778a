"""nerfstudio is an optional extra: nothing of FieldForge imports it unless the integration is asked for, and
asking for it without the extra says how to install it (exit 2, one line)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_architecture import module_files

NEEDS_NERFSTUDIO = ("fieldforge.app.integrations.nerfstudio.methods", "fieldforge.app.integrations.nerfstudio.model")
"""The only modules that import nerfstudio (the plugin nerfstudio itself loads through entry points)."""


def test_no_module_imports_nerfstudio():
    """Import every other FieldForge module in a fresh interpreter: ``nerfstudio`` is never loaded."""
    names = sorted(n for n in module_files() if n not in NEEDS_NERFSTUDIO)
    assert "fieldforge.app.integrations.nerfstudio.teacher" in names and "fieldforge.app.cli" in names
    code = (
        "import importlib, json, sys\n"
        f"names = {names!r}\n"
        "failed = {}\n"
        "for n in names:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as e:\n"
        "        failed[n] = repr(e)\n"
        "print(json.dumps({'failed': failed, 'nerfstudio': sorted(m for m in sys.modules if m.split('.')[0] == 'nerfstudio')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nerfstudio"] == []
    # modules that need another optional extra may fail to import here; none of them may be ours to skip silently
    assert all("nerfstudio" not in err for err in result["failed"].values()), result["failed"]


def test_plugin_modules_are_the_ones_registered():
    """The entry points in pyproject.toml name the plugin module's method specifications."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    eps = project["entry-points"]["nerfstudio.method_configs"]
    assert {"fieldforge-ngp", "fieldforge-cam", "fieldforge-rbf", "fieldforge-sape", "fieldforge-kilonerf"} <= set(eps)
    for name, target in eps.items():
        module, attr = target.split(":")
        assert module == NEEDS_NERFSTUDIO[0] and name == f"fieldforge-{attr}"
    assert project["optional-dependencies"]["nerfstudio"] == ["nerfstudio>=1.1.5"]


@pytest.mark.skipif(importlib.util.find_spec("nerfstudio") is not None, reason="nerfstudio is installed here: the hint is for installs without it")
def test_require_says_how_to_install(tmp_path):
    from fieldforge.app.integrations import require
    from fieldforge.data.errors import InputError

    with pytest.raises(InputError, match=r'pip install "fieldforge\[nerfstudio\]"') as e:
        require("nerfstudio", tmp_path / "config.yml", "a nerfstudio teacher")
    assert str(tmp_path / "config.yml") in str(e.value)


NS_CONFIG_HEAD = "!!python/object:nerfstudio.engine.trainer.TrainerConfig\n_target: !!python/name:nerfstudio.engine.trainer.Trainer ''\n"
"""The first lines nerfstudio writes into a run's config.yml."""


@pytest.mark.skipif(importlib.util.find_spec("nerfstudio") is not None, reason="nerfstudio is installed here: the hint is for installs without it")
def test_distill_from_a_nerfstudio_run_says_how_to_install(capsys, tmp_path):
    """`fieldforge distill --teacher RUN/config.yml` without the extra: exit 2, one line, nothing written."""
    from fieldforge.app.cli import main

    run = tmp_path / "ns-run"
    run.mkdir()
    (run / "config.yml").write_text(NS_CONFIG_HEAD)
    out = tmp_path / "outputs"
    code = main(["distill", "--teacher", str(run / "config.yml"), "--method", "ngp", "--trust-checkpoint", "True", "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(run / "config.yml") in err and 'pip install "fieldforge[nerfstudio]"' in err
    assert not out.exists()


def test_nerfstudio_runs_are_recognised_without_importing_nerfstudio(tmp_path):
    from fieldforge.app.integrations.nerfstudio.teacher import is_nerfstudio_run

    (tmp_path / "config.yml").write_text(NS_CONFIG_HEAD)
    assert is_nerfstudio_run(tmp_path) and is_nerfstudio_run(tmp_path / "config.yml")
    (tmp_path / "config.yaml").write_text("a FieldForge run\n")  # a FieldForge run folder is not a nerfstudio run
    assert not is_nerfstudio_run(tmp_path)
    (tmp_path / "other.yml").write_text("key: value\n")
    assert not is_nerfstudio_run(tmp_path / "other.yml")
