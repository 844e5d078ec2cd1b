# commlearn — two commands: `make demo` and `make test`. Both build their own virtual environment.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install test test-all lint demo bench bench-quick clean

install: $(STAMP)

# torch is installed first and pinned: on this machine that is the CPU wheel (a bare `torch` pulls CUDA).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -n 2
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy src

test-all: install
	$(PY) -m pytest -q -m ''

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m mypy src

demo: install
	$(VENV)/bin/commlearn experiment trifeature --preset cpu --output runs/demo

bench: install
	$(PY) benchmarks/run.py

bench-quick: install
	$(PY) benchmarks/run.py --quick

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
