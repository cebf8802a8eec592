# One-command set-up on a fresh Debian/Ubuntu machine: `make test` and `make demo` install
# what is missing (Debian packages, then .venv with the project), then run.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build on machines without a GPU; a pinned version never pulls the multi-GB CUDA wheel.
TORCH ?= torch==2.13.0
DEB_PACKAGES := python3-qgis qgis-providers python3-gdal gdal-bin xvfb xauth python3-venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export QT_QPA_PLATFORM ?= offscreen
export GDAL_PAM_ENABLED ?= NO

.PHONY: all setup sysdeps test test-fast lint bandit demo plugin bench bench-quick quality quality-quick uncertainty clear-scenes detector-context overcast mask-files clean

all: test

sysdeps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml Makefile | sysdeps
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,masks]"
	touch $@

setup: sysdeps $(VENV)/.installed

test: setup
	$(PY) -m ruff check $(wildcard library qgis_plugin tests benchmarks scripts)
	$(PY) -m bandit -q -c pyproject.toml -r $(wildcard library qgis_plugin) --severity-level medium
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(PY) -m ruff check $(wildcard library qgis_plugin tests benchmarks scripts)

demo: setup
	$(PY) scripts/demo.py

plugin: setup
	$(PY) scripts/build_plugin.py

bench: setup
	$(PY) benchmarks/run_all.py

bench-quick: setup
	$(PY) benchmarks/run_all.py --quick

# Reconstruction quality on held-out real scenes (../shared/data; see docs/DATA.md): writes
# docs/QUALITY.md and docs/quality/. Extra arguments: make quality ARGS="--model NAME=PATH".
quality: setup
	$(PY) benchmarks/quality.py $(ARGS)

# Is the default model's uncertainty map honest (held-out places, real scene)? docs/quality/uncertainty.md
uncertainty: setup
	$(PY) benchmarks/uncertainty.py $(ARGS)
	$(PY) benchmarks/uncertainty.py --model resources/models/sarclear-fill-guided.safetensors $(ARGS)

# Every real clear scene in ../shared/data, every split, whole, through default decloud (the CNN
# detector runs on those at least 2.4 km across): docs/quality/clear_scenes.md
clear-scenes: setup
	$(PY) benchmarks/clear_scenes.py $(ARGS)
	$(PY) benchmarks/clear_scenes.py --model resources/models/sarclear-fill-guided.safetensors $(ARGS)

# Which cloud detector from which area size: false detections on clear crops, missed clouds on
# real cloudy scenes: docs/quality/detector_context.md
detector-context: setup
	$(PY) benchmarks/detector_context.py $(ARGS)

overcast: setup
	$(PY) benchmarks/overcast.py $(ARGS)

# The real cloudy scene under masks that were not grown, given as mask files, at each fill
# buffer: how far past a mask file's edge the fill draws from: docs/quality/mask_files.md
mask-files: setup
	$(PY) benchmarks/mask_files.py $(ARGS)

quality-quick: setup
	$(PY) benchmarks/quality.py --quick --out out/quality-quick $(ARGS)

clean:
	rm -rf build dist out .pytest_cache .ruff_cache
