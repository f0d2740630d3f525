# Two commands do all set-up on a fresh machine with Python >= 3.10 and make:
#   make demo   creates .venv, installs salbench and runs `salbench quickstart`
#   make test   creates .venv, installs salbench[dev,ray] and runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision pairs that install from this project's machines' local package store
ifeq ($(shell uname -m),aarch64)
TORCH := torch==2.9.1 torchvision==0.24.1
else
TORCH := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: demo test test-all bench lint browser clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	touch $@

$(VENV)/.base: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(BIN)/pip install --quiet -e '.[dev,ray]'
	touch $@ $(VENV)/.base

# Headless Chromium renders the HTML report in the report tests (Debian package; needs root).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the report's browser test will be skipped"; }

demo: $(VENV)/.base
	$(BIN)/salbench quickstart --out runs/quickstart

test: $(VENV)/.dev browser
	$(BIN)/python -m pytest -q

test-all: $(VENV)/.dev browser
	$(BIN)/python -m pytest -q -m ""

# benchmarks/stages.py times one stage of a study it is given (the GPU checks: benchmarks/gpu.sh)
bench: $(VENV)/.dev
	for b in $(filter-out benchmarks/stages.py,$(wildcard benchmarks/*.py)); do \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf runs .pytest_cache

# docs/cli.md is generated from the commands' help texts (tests/test_docs.py checks it is current).
docs: $(VENV)/.base
	$(BIN)/typer salbench.cli utils docs --name salbench --output docs/cli.md
