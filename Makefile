# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint typecheck pytest migrate clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Baton needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/baton serve

migrate: $(STAMP_RUN)
	$(BIN)/baton migrate

lint: $(STAMP_TEST)
	$(BIN)/ruff check app tests
	$(BIN)/ruff format --check app tests

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

pytest: $(STAMP_TEST)
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache

# Benchmarks are not part of `make test`: they take minutes and report figures, not pass/fail.
# Peers (DBOS, Temporal) and matplotlib go into bench/.venv-peers, never into Baton's .venv.
# If they cannot be installed, `make bench` still runs and reports them as not run.
PEERS_VENV := bench/.venv-peers
STAMP_PEERS := $(PEERS_VENV)/.installed
BENCH_ARGS ?= --n 500 --n-w2 2000 --n-w3 500
.PHONY: bench bench-setup
bench-setup: $(STAMP_PEERS)

$(STAMP_PEERS): bench/requirements.txt
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@

bench: $(STAMP_TEST)
	@$(MAKE) --no-print-directory bench-setup || echo "bench: peers could not be installed; they will be reported as not run"
	$(BIN)/python -m bench all $(BENCH_ARGS)
