# Two commands: `make run` (set up and run a node) and `make test` (set up and run the suite).
# Everything installs into .venv; nothing else on the machine is needed for `make run`.
# `make run` installs what the node needs and nothing more; the test and lint tools come with
# `make test` (and lint, format, bench). Each set has its own stamp, redone when the pins change.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
ARGS ?=
TEST_WORKERS ?= 3

.PHONY: run test lint format bench venv clean-venv

# The suite and the benchmarks start hundreds of Python processes (nodes, manage.py commands):
# where the environment says not to write bytecode (some containers set PYTHONDONTWRITEBYTECODE),
# each of them would compile the project's sources again, about 0.6 s of CPU a process. The
# .pyc files stay in __pycache__ (ignored by git).
test bench: export PYTHONDONTWRITEBYTECODE :=

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) -e ".[dev]"
	touch $(RUN_STAMP) $(DEV_STAMP)

venv: $(DEV_STAMP)

run: $(RUN_STAMP)
	scripts/ensure-libsodium
	$(BIN)/python manage.py runnode $(ARGS)

test: $(DEV_STAMP)
	scripts/ensure-libsodium
	scripts/ensure-chromium
	scripts/ensure-test-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# Three workers, a test file each at a time (a module's nodes stay in one worker): most of
	# the suite waits on real nodes, so on the 2-core machine it runs in ~18 min instead of ~50
	# one after another. TEST_WORKERS=0 runs it in one process. A hang must still fail the run
	# long before CI's 90-minute limit.
	# The slowest files are queued first (tests/support/ordering.py), not the ones with most tests.
	timeout --kill-after=60 4200 $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not alone" $(ARGS)
	# Then the few tests that measure time against time (marked "alone"), one after another
	# with nothing beside them (pytest's 5: none of them was selected by ARGS).
	timeout --kill-after=60 600 $(BIN)/pytest -m alone $(ARGS) || [ $$? -eq 5 ]

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(DEV_STAMP)
	$(BIN)/python -m bench $(ARGS)

clean-venv:
	rm -rf $(VENV)
