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
