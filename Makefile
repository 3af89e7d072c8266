# Two commands a new user needs: `make demo` and `make test`. Each sets up everything itself:
# the virtualenv, the pinned Python packages, and the node binaries (cached in .nodes/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup nodes browser demo demo-serve test unit lint bench clean

$(STAMP): pyproject.toml verifier/pyproject.toml requirements.lock
	@echo "== Creating $(VENV) and installing pinned packages (requirements.lock)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ./verifier -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

nodes: setup
	$(BIN)/treasury devnet install

browser:
	bash scripts/install-browser.sh
	bash scripts/install-console-js.sh

demo: nodes
	$(BIN)/treasury demo

# The same story, then left running: the officers' console and the site on loopback, spends
# waiting for approval, and a login for each officer printed; Ctrl-C stops it all.
demo-serve: nodes
	bash scripts/install-console-js.sh
	$(BIN)/treasury demo --serve

# The suite runs on one worker more than there are cores (pytest-xdist): its tests spend much of
# their time waiting on nodes, PostgreSQL and subprocesses (measured on 2 cores: 344 integration
# tests took 385 s of CPU in 438 s with 3 workers). Each test file stays on one worker, so a
# file's module-scoped chain world is built once, and the longest files start first
# (tests/file_weights.json). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

test: lint nodes browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

unit: setup
	$(BIN)/pytest tests/unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

bench: nodes
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .nodes var artifacts .pytest_cache .mypy_cache .ruff_cache
