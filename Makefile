# Everything runs from a clean clone: the first target that needs it creates .venv and installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: serve test lint check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)  ## run the mock on http://$(HOST):$(PORT)
	$(BIN)/mockserver serve --host $(HOST) --port $(PORT)

test: $(STAMP)  ## the whole test suite, Schemathesis included
	$(BIN)/pytest

lint: $(STAMP)  ## ruff and mypy (strict) on the package
	$(BIN)/ruff check mockserver tests
	$(BIN)/ruff format --check mockserver tests
	$(BIN)/mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis schemathesis-report
