# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints.txt
PIP_CONSTRAINT_FLAG := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
PYTEST_ARGS ?=

.PHONY: demo test lint lab bench clean install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q $(PIP_CONSTRAINT_FLAG) -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml constraints.txt
	$(BIN)/pip install -q $(PIP_CONSTRAINT_FLAG) -e '.[dev,ray]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/workbench demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check workbench tests benchmarks
	$(BIN)/mypy

test: $(VENV)/.installed-dev lint
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env $(PYTEST_ARGS)

lab: $(VENV)/.installed-dev
	$(BIN)/jupyter lab --ip 127.0.0.1 --notebook-dir notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

# Every benchmark, one after the other (minutes; run on a quiet machine; the reliability runs are
# `python -m benchmarks.reliability`). Each module's docstring gives
# its options; docs/performance.md holds the figures and the exact commands that made them.
bench: $(VENV)/.installed-dev
	$(BIN)/pip install -q $(PIP_CONSTRAINT_FLAG) -e '.[dev,ray,bench]'
	for b in serving_bench http_bench compression_bench ray_bench tune_bench; do $(BIN)/python -m benchmarks.$$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
