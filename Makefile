# FieldForge: `make demo` sets up and runs the demo, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch==2.13.0 resolves to the CPU wheel on CPU-only machines here and to the CUDA build on a CUDA
# machine's default index; any torch>=2.1 already in the venv is kept.
TORCH  ?= torch==2.13.0

.PHONY: demo test bench system-deps venv clean test-nerfstudio

system-deps:
	@$(PYTHON) -c "import ctypes; ctypes.CDLL('libusb-1.0.so.0')" 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing libusb-1.0-0 (needed by open3d)"; \
	    (apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null)); \
	  else echo "open3d needs libusb-1.0: run 'sudo apt-get install libusb-1.0-0' (Debian/Ubuntu)"; exit 1; fi; }

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[dev,gpu,viewer]"
	@touch $@

venv: system-deps $(VENV)/.installed

# The full pipeline on the embedded synthetic capture: render it, train ngp, print test PSNR, write
# test renders, an orbit video, a coloured mesh and a point cloud (`fieldforge demo` alone fits an image).
demo: venv
	$(VENV)/bin/fieldforge demo nerf

test: venv
	$(PY) -m pytest -n 2 -q

bench: venv
	$(PY) scripts/bench_image.py

# nerfstudio interoperability (tests/nerfstudio/) in a venv of its own, with the nerfstudio extra and without the
# viewer extra: nerfstudio 1.1.5 pins viser==0.2.7 (`fieldforge view` needs viser 1.1) and numpy<2.
# torch 2.14.1 + torchvision 0.29.1 first: the pair whose torchvision imports (beside the CPU torch 2.13.0 it does not).
NS_VENV  := .venv-nerfstudio
NS_PY    := $(NS_VENV)/bin/python
NS_TORCH ?= torch==2.14.1 torchvision==0.29.1

$(NS_VENV)/.installed: pyproject.toml
	@test -x $(NS_PY) || $(PYTHON) -m venv $(NS_VENV)
	$(NS_PY) -m pip install -q --upgrade pip
	$(NS_PY) -m pip install -q $(NS_TORCH)
	$(NS_PY) -m pip install -q -e ".[nerfstudio]" $(NS_TORCH) "pytest>=8" "beartype>=0.18"
	@touch $@

test-nerfstudio: system-deps $(NS_VENV)/.installed
	$(NS_PY) -m pytest tests/nerfstudio -q

clean:
	rm -rf $(VENV) $(NS_VENV) outputs .pytest_cache
