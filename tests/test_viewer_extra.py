"""The viewer is an optional extra (``pip install "fieldforge[viewer]"``: viser 1.1): nothing of FieldForge imports
viser at import time, the CLI and training work without it, and asking for the viewer without it (or beside
nerfstudio's viser 0.2.7) exits 2 with one line saying what to install, before anything is written."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.test_architecture import module_files

ROOT = Path(__file__).resolve().parents[1]
OTHER_EXTRAS = ("fieldforge.app.integrations.nerfstudio.methods", "fieldforge.app.integrations.nerfstudio.model")
"""Modules of another extra (they import nerfstudio)."""
BLOCK_VISER = "import sys\nsys.modules['viser'] = None  # `import viser` raises ImportError, as without the extra\n"


def _without_viser(code: str, cwd: Path) -> dict:
    """Run ``code`` in a fresh interpreter where viser cannot be imported; it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", BLOCK_VISER + code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_viser_is_the_viewer_extra_not_a_core_dependency():
    from fieldforge.app.viewer.extra import INSTALL, VISER

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("viser") for d in project["dependencies"])
    assert project["optional-dependencies"]["viewer"] == [f"viser>={VISER[0]}.{VISER[1]},<{VISER[0]}.{VISER[1] + 1}"]
    assert INSTALL == 'pip install "fieldforge[viewer]"'


def test_no_module_imports_viser(tmp_path):
    """Every FieldForge module imports where viser cannot (the viewer's server imports it when it starts)."""
    names = sorted(n for n in module_files() if n not in OTHER_EXTRAS)
    assert "fieldforge.app.viewer.server" in names and "fieldforge.app.cli" in names
    code = (
        "import importlib, json\n"
        "failed = {}\n"
        f"for n in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(n)\n"
        "    except Exception as e:\n"
        "        failed[n] = repr(e)\n"
        "print(json.dumps(failed))\n"
    )
    assert _without_viser(code, tmp_path) == {}


def test_cli_and_training_work_without_viser_and_the_viewer_says_what_to_install(tmp_path):
    """Without viser: ``train image`` trains; ``view RUN`` and ``train ... --viewer`` exit 2 with one line naming
    the extra, and ``--viewer`` writes nothing."""
    import imageio.v3 as iio
    import numpy as np

    yy, xx = np.mgrid[0:12, 0:16]
    iio.imwrite(tmp_path / "im.png", (np.stack([xx / 15, yy / 11, 0.5 + 0 * xx], -1) * 255).astype(np.uint8))
    train = ["train", "image", "--data", "im.png", "--method", "ff", "--steps", "2", "--eval-every", "0", "--progress", "False",
             "--output-dir", "runs"]
    code = (
        "import contextlib, io, json\n"
        "from fieldforge.app.cli import main\n"
        "def cli(argv):\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        code = main(argv)\n"
        "    return [code, err.getvalue()]\n"
        f"trained = cli({train + ['--name', 'plain']!r})\n"
        "view = cli(['view', 'runs/plain'])\n"
        f"live = cli({train + ['--name', 'live', '--viewer']!r})\n"
        "print(json.dumps({'trained': trained, 'view': view, 'live': live, 'viser': sys.modules.get('viser') is not None}))\n"
    )
    result = _without_viser(code, tmp_path)
    assert result["trained"][0] == 0 and (tmp_path / "runs" / "plain" / "config.yaml").is_file()
    for name in ("view", "live"):
        code, err = result[name]
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert 'pip install "fieldforge[viewer]"' in err and "viser 1.1" in err and "Traceback" not in err
    assert not (tmp_path / "runs" / "live").exists()
    assert not result["viser"]


def test_nerfstudio_viser_is_refused_with_why(monkeypatch):
    """Beside nerfstudio's viser 0.2.7 the error says the viewer cannot share nerfstudio's environment."""
    import importlib.metadata
    import importlib.util

    from fieldforge.app.viewer import extra
    from fieldforge.data.errors import InputError

    pytest.importorskip("viser")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.2.7" if name == "viser" else "0")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "nerfstudio" else real_find_spec(name, *a))
    with pytest.raises(InputError) as e:
        extra.require_viewer("fieldforge view")
    message = str(e.value)
    assert "viser 0.2.7" in message and "cannot share nerfstudio's environment" in message and extra.INSTALL in message
