# Two entry points (see README.md): `make demo` runs the main job, `make test` runs the tests.
# Both create or reuse a local virtual environment in .venv. PyTorch is installed first, as
# the CPU wheel pinned in ci/constraints.txt, so no multi-GB CUDA build is ever pulled in.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cfmd-installed
CONSTRAINTS := ci/constraints.txt

.PHONY: demo test lint docs bench clean-venv

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) torch
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,doc]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cfmd demo --overwrite

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/conf.py
	$(BIN)/python -m pytest -q

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean-venv:
	rm -rf $(VENV)
