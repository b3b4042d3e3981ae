# Everything runs from a clean clone: the first target that needs it creates .venv and installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

PRISM := .bench/node_modules/.bin/prism
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo) DEBIAN_FRONTEND=noninteractive

.PHONY: serve test lint check bench clean spec-record

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

STATE ?= .mockserver/state.sqlite

serve: $(STAMP)  ## run the mock on http://$(HOST):$(PORT), keeping its state in $(STATE)
	$(BIN)/mockserver serve --host $(HOST) --port $(PORT) --state $(STATE)

# Where Debian's chromium package puts it; tests/test_docs_page.py launches this one.
CHROMIUM := /usr/bin/chromium

test: $(STAMP)  ## the whole test suite, Schemathesis and the /docs browser test included (installs chromium if missing)
	@[ -x $(CHROMIUM) ] || $(SUDO) apt-get install -y chromium || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	$(BIN)/pytest

lint: $(STAMP)  ## ruff and mypy (strict) on the package
	$(BIN)/ruff check mockserver tests bench
	$(BIN)/ruff format --check mockserver tests bench
	$(BIN)/mypy

check: lint test

# A start skips validating a document whose record is known; tests/test_spec.py fails until this is rerun.
spec-record: $(STAMP)  ## after changing openapi/: validate the bundled spec and record it in openapi/validated.txt
	$(BIN)/python -c 'from mockserver.spec import Spec; from mockserver.resources import bundled_spec, bundled_validations; \
	spec = Spec.load(bundled_spec()); spec.validate(); \
	bundled_validations().write_text("# Written by make spec-record, checked by tests/test_spec.py.\n" + spec.validation_record() + "\n")'

$(PRISM):
	npm install --silent --no-audit --no-fund --prefix .bench @stoplight/prism-cli@5.14

bench: $(STAMP) $(PRISM)  ## the mock against Prism, plus in-process figures (needs wrk; installed if missing)
	@command -v wrk >/dev/null 2>&1 || $(SUDO) apt-get install -y wrk || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk; }
	$(BIN)/python bench/bench.py --prism $(PRISM)

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache .hypothesis schemathesis-report
