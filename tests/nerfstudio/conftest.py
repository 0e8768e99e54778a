"""Tests of the nerfstudio extra, run by ``make test-nerfstudio`` in ``.venv-nerfstudio``. Where nerfstudio is not
installed (the main ``make test``) nothing here is collected."""

import importlib.util

if importlib.util.find_spec("nerfstudio") is None:
    collect_ignore_glob = ["test_*.py"]
