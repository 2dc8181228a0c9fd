# Paddock — developer and operator entry points. Everything installs into .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

.PHONY: install run test lint typecheck bench clean-cache clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The whole league on this machine: migrate the SQLite database under instance/, seed the demo
# league once, run the website, the scheduler and the workers; Ctrl-C stops them all.
run: install
	HOST=$(HOST) PORT=$(PORT) $(BIN)/paddock demo

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

# Every benchmark into benchmarks/results.json (docs/PERFORMANCE.md). CarRacing-v3 is measured
# in the same run when gymnasium[box2d] installs; benchmarks/web.py needs wrk (apt-get install wrk).
bench: install
	$(BIN)/python -m pip install --quiet "gymnasium[box2d]" || echo "no box2d: the CarRacing-v3 comparison is skipped"
	$(BIN)/python tools/run_benchmarks.py

# numba caches compiled kernels beside the sources and only notices edits to the file that
# defines a kernel: clear the cache after editing evaluator/_detmath.py or _geometry.py.
clean-cache:
	find evaluator -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-cache
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
