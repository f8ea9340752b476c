# Build, test and run the investigation suite. Everything runs in .venv,
# installed from pyproject.toml (re-installed only when pyproject.toml changes).
#
#   make test      ruff, unit tests, nbval on the golden notebooks, a smoke grid run
#   make run       execute the notebook grid into artifacts/ (RUN_ARGS="--notebook 01 ...")
#   make refresh   re-execute the golden notebooks in place (commit the result)
#   make bench     run every benchmarks/bench_*.py (python -m benchmarks)
#   make lab       Jupyter Lab on notebooks/
#
# The kernel environment that keeps notebook output stable (PYTHONHASHSEED,
# MPLBACKEND, COLUMNS, ...) is set in one place, investigation/suite/config.py
# (KERNEL_ENV); `install` writes it into the venv's python3 kernelspec.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
KERNEL_INSTALLED := $(VENV)/.kernel-installed
LAB_INSTALLED := $(VENV)/.lab-installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
RUN_ARGS ?=
SMOKE_ARGS ?= --profile local-debug --profile staging-e2e --jobs 2

# Kernelspecs of .venv win over user-level ones, so every "python3" kernel is the venv's.
export JUPYTER_PREFER_ENV_PATH := 1

.PHONY: venv install run test smoke bench refresh lab clean

venv install: $(KERNEL_INSTALLED)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# The kernelspec carries KERNEL_ENV: written again whenever the file that pins it changes.
$(KERNEL_INSTALLED): $(INSTALLED) investigation/suite/config.py
	$(BIN)/python -m investigation.suite install-kernel
	touch $@

run: $(KERNEL_INSTALLED)
	$(BIN)/investigation run $(RUN_ARGS)

test: $(KERNEL_INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/pytest -q
ifneq ($(NOTEBOOKS),)
	$(BIN)/pytest -q --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg $(NOTEBOOKS)
endif

ifneq ($(NOTEBOOKS),)
test: smoke
endif

smoke: $(KERNEL_INSTALLED)
	out="$$(mktemp -d)"; trap 'rm -rf "$$out"' EXIT; $(BIN)/investigation run $(SMOKE_ARGS) --out "$$out"

bench: $(INSTALLED)
	$(BIN)/python -m benchmarks

refresh: $(KERNEL_INSTALLED)
	$(BIN)/python -m investigation.suite refresh $(NOTEBOOKS)

$(LAB_INSTALLED): $(KERNEL_INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,lab]'
	touch $@

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(LAB_INSTALLED)
	$(BIN)/jupyter lab $(LAB_ROOT_FLAG) notebooks/

clean:
	rm -rf $(VENV) artifacts build .pytest_cache .hypothesis .coverage *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
