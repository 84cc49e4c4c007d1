# Two entry points (see README.md): `make demo` runs the main job, `make test` runs the tests (what CI runs).
# Both create or reuse the virtual environment .venv, installed from the lock file ci/constraints.txt: every
# dependency at the exact version CI tested. PyTorch is installed first, pinned by the same file.
#
# PyTorch on an ordinary Linux machine: PyPI's torch wheel is the CUDA build (several GB of nvidia-* wheels).
# For the CPU wheel add PyTorch's CPU index, e.g. `make test TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# (pip then prefers the pinned version's `+cpu` build). Without it, whatever torch build the registry offers first
# for the pinned version is installed; on machines with a local CPU wheel (find-links) that one wins.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
LATEST_VENV ?= .venv-latest
LOCK_VENV ?= .venv-lock
TORCH_INDEX ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.cfmd-installed
LOCK := ci/constraints.txt
TORCH_PIN := ci/torch.txt
PIP_TORCH_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
PYTEST_OPTS ?=
# Test processes (pytest-xdist): one per CPU core, at most 4 (each holds torch + scvi-tools, ~1 GB);
# PYTEST_WORKERS=0 runs everything in one process (e.g. for --pdb).
PYTEST_WORKERS ?= $(shell $(PYTHON) -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(); print(min(4, n or 1))")
PYTEST := -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: demo test test-fast test-latest lint docs bench lock clean-venv

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) $(PIP_TORCH_INDEX) torch
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[test,doc]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cfmd demo --overwrite

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/conf.py

# The whole suite (CI): at most 5 minutes on 2 quiet CPU cores.
test: lint
	$(BIN)/python $(PYTEST) $(PYTEST_OPTS)

# The edit-run loop: everything but the training-heavy tests (@pytest.mark.slow), under a minute.
test-fast: lint
	$(BIN)/python $(PYTEST) -m "not slow" $(PYTEST_OPTS)

# The newest releases allowed by pyproject.toml (torch still pinned): shows dependency drift before a user meets it.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet -c $(TORCH_PIN) $(PIP_TORCH_INDEX) torch
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade -c $(TORCH_PIN) -e ".[test,doc]"
	$(LATEST_VENV)/bin/python -m pip freeze --exclude-editable > $(LATEST_VENV)/resolved.txt
	diff <(grep -v '^#' $(LOCK)) <(sed 's/+cpu$$//' $(LATEST_VENV)/resolved.txt) || true
	$(LATEST_VENV)/bin/python $(PYTEST) $(PYTEST_OPTS)

# Refresh the lock file from today's newest releases (then run `make test` and commit ci/constraints.txt).
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -c $(TORCH_PIN) $(PIP_TORCH_INDEX) torch
	$(LOCK_VENV)/bin/python -m pip install --quiet -c $(TORCH_PIN) -e ".[test,doc]"
	{ echo "# Lock file: every dependency at the version CI tests (make test, .ci/run). Refresh: make lock."; \
	  echo "# Generated $$(date -u +%Y-%m-%d) by 'make lock' with $$($(LOCK_VENV)/bin/python --version)."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > $(LOCK)
	rm -rf $(LOCK_VENV)

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean-venv:
	rm -rf $(VENV) $(LATEST_VENV) $(LOCK_VENV)
