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

run: install
	@$(BIN)/paddock tracks list
	@echo
	@echo "A demo evaluation: the 'pro' bot against the 'amateur' bot on royal-park"
	@$(BIN)/paddock evaluate evaluator/bots/pro.onnx --opponent evaluator/bots/amateur.onnx \
		--track royal-park --trials 1 --quiet
	@echo
	@echo "The website is not built yet. What runs today: the simulator"
	@echo "('import evaluator; gymnasium.make(\"paddock/TimeTrial-v0\")'), the racer commands"
	@echo "'$(BIN)/paddock tracks|validate|evaluate|pack', and the league's back end:"
	@echo "'$(BIN)/paddock db upgrade|user create|token create|worker|scheduler'. See README.md."

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: install
	$(BIN)/python tools/run_benchmarks.py

# numba caches compiled kernels beside the sources and only notices edits to the file that
# defines a kernel: clear the cache after editing evaluator/_detmath.py or _geometry.py.
clean-cache:
	find evaluator -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-cache
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
