# Two commands: `make run` (set up and run a node) and `make test` (set up and run the suite).
# Everything installs into .venv; nothing else on the machine is needed for `make run`.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test lint format bench venv clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python manage.py runnode $(ARGS)

test: $(STAMP)
	scripts/ensure-chromium
	scripts/ensure-test-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# The whole suite takes ~8 min; a hang must fail the run long before CI's limit.
	timeout --kill-after=60 1800 $(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

clean-venv:
	rm -rf $(VENV)
