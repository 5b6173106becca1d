# Two entry points for a newcomer: `make run` and `make test`. Each creates the
# virtual environment on first use (and again whenever pyproject.toml changes).
VENV ?= .venv
PY := $(VENV)/bin/python
MODEL ?=

.PHONY: run test lint format checkpoint package check-package clean

$(VENV)/.app-installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

# The dev extra adds the reference stack (CPU torch, transformers), the clients extra
# the client packages the server is tested with. PyPI's torchvision wheels are CUDA
# builds; we only need its pure-tensor transforms (transformers' image processors import
# it), so it goes in without its deps; instructor too (it pins an older jiter than openai).
$(VENV)/.dev-installed: $(VENV)/.app-installed
	$(PY) -m pip install --quiet -e '.[dev,clients]'
	$(PY) -m pip install --quiet --no-deps torchvision==0.29.1
	$(PY) -m pip install --quiet --no-deps instructor==1.17.0
	touch $@

$(VENV)/.packaging-installed: $(VENV)/.app-installed
	$(PY) -m pip install --quiet -e '.[packaging]'
	touch $@

run: $(VENV)/.app-installed
	$(PY) -m app $(if $(MODEL),--model "$(MODEL)")

test: $(VENV)/.dev-installed
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: $(VENV)/.dev-installed
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

# A tiny random checkpoint in the real Hugging Face layout, for trying the app offline.
checkpoint: $(VENV)/.app-installed
	$(PY) -m app make-test-checkpoint $(or $(OUT),tiny-gemma4)

# The frozen app for this machine, from packaging/gemma_desk.spec: on Linux dist/gemma-desk/
# and dist/gemma-desk-VERSION-linux-ARCH.tar.gz; on a Mac dist/Gemma Desk.app and
# dist/GemmaDesk-VERSION.dmg (docs/PACKAGING.md: signing and notarization).
package: $(VENV)/.packaging-installed
	PY=$(PY) bash packaging/build_$(if $(filter Darwin,$(shell uname -s)),macos,linux).sh

# Run the built Linux app from outside the source tree without the venv: --version, the
# window under Xvfb, a turn with an image and audio, the API server (as CI does).
check-package: $(VENV)/.app-installed
	$(PY) packaging/check_frozen.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
