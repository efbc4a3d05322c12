# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first: the CPU wheel on disk, so nothing pulls a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'
	touch $@

$(DEVSTAMP): $(STAMP)
	$(PIP) install -q -e '.[all,dev]'
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fusionrec demo

test: $(DEVSTAMP)
	$(PY) -m pytest -q

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
