# Two commands for a fresh CPU machine (Python >= 3.10, no torch needed beforehand):
#   make demo   create .venv, install the CPU torch build and the package, train and evaluate an agent
#   make test   the same set-up, then the test-suite (the command CI runs)
#   make docs   the Sphinx site in docs/_build/html (warnings are errors)
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch. Plain `pip install torch` on Linux pulls several GB of CUDA packages; pin the
# version here and, where your pip does not already find a CPU wheel, add an index serving CPU builds
# with TORCH_PIP_ARGS="--index-url <url>".
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
EXTRAS ?= dev
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -n 2 -q

.PHONY: venv demo test lint type docs check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(PY) -m pip install -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) examples/quickstart.py

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(PY) -m ruff check .

type: venv
	$(PY) -m mypy

docs: venv
	$(PY) -m sphinx -W --keep-going -b html -q docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

check: lint type test docs

clean:
	rm -rf $(VENV) build *.egg-info logs docs/_build
