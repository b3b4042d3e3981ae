# Everything runs from a clean clone: the first target that needs it creates .venv and installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

# Node tools (linters, Specmatic, typed clients, bench peers), exactly as package-lock.json pins them.
NODE_STAMP := node_modules/.installed
NODE_BIN := node_modules/.bin
PRISM := $(NODE_BIN)/prism
export REDOCLY_TELEMETRY := off
# Material for MkDocs prints a notice about its successor on every build; the build's own warnings stay.
export NO_MKDOCS_2_WARNING := 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo) DEBIAN_FRONTEND=noninteractive

# $(call apt,COMMAND,PACKAGE): install Debian's PACKAGE when COMMAND is missing (refreshing apt's lists only if needed).
apt = @command -v $(1) >/dev/null 2>&1 || $(SUDO) apt-get install -y $(2) || \
	{ $(SUDO) apt-get update && $(SUDO) apt-get install -y $(2); }

LOCK := requirements.lock
# uv writes the lock for every platform (--universal) from pyproject.toml's ranges, with hashes.
COMPILE = $(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
	--generate-hashes --quiet --output-file $(LOCK)

.PHONY: serve test lint interop check bench soak clean spec-record lock lock-upgrade screenshot docs dist

# Exactly the locked versions (hashes checked), then the package itself without resolving anything.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --requirement $(LOCK)
	$(BIN)/pip install --quiet --no-deps --editable .
	touch $(STAMP)

# npm ci installs exactly package-lock.json; --ignore-scripts so no package runs code at install time.
$(NODE_STAMP): package.json package-lock.json
	npm ci --silent --no-audit --no-fund --ignore-scripts
	touch $(NODE_STAMP)

lock: $(STAMP)  ## after editing pyproject.toml's or package.json's dependencies: rewrite requirements.lock and package-lock.json, keeping the pins that still fit
	$(COMPILE)
	npm install --package-lock-only --no-audit --no-fund --ignore-scripts

lock-upgrade: $(STAMP)  ## take the newest versions pyproject.toml's ranges allow into requirements.lock
	$(COMPILE) --upgrade

STATE ?= .mockserver/state.sqlite

serve: $(STAMP)  ## run the mock on http://$(HOST):$(PORT), keeping its state in $(STATE)
	$(BIN)/mockserver serve --host $(HOST) --port $(PORT) --state $(STATE)

# Where Debian's chromium package puts it; tests/test_docs_page.py launches this one.
CHROMIUM := /usr/bin/chromium
# Debian's PostgreSQL server programs (not on the PATH); tests/postgres.py starts a cluster of its own with them.
INITDB := /usr/lib/postgresql/*/bin/initdb

test: $(STAMP) $(NODE_STAMP)  ## the whole test suite, Schemathesis, the /docs browser test and PostgreSQL included (installs chromium, Java and PostgreSQL if missing)
	$(call apt,$(CHROMIUM),chromium)
	$(call apt,java,openjdk-17-jre-headless)
	$(call apt,$(INITDB),postgresql)
	$(BIN)/pytest -n auto --dist worksteal  # a worker per core (pytest-xdist); no test depends on the order

screenshot: $(STAMP)  ## refresh docs/images/inspector.png from a served mock (Debian's chromium, as make test)
	$(call apt,$(CHROMIUM),chromium)
	$(BIN)/python docs/screenshot.py

lint: $(STAMP) $(NODE_STAMP) docs  ## the docs site (strict), ruff, mypy (strict), the import rules (import-linter), the declared dependencies (deptry), and the spec through Spectral and Redocly
	$(BIN)/ruff check mockserver tests bench docs tools
	$(BIN)/ruff format --check mockserver tests bench docs tools
	$(BIN)/mypy
	$(BIN)/mypy tools
	$(BIN)/lint-imports
	$(BIN)/deptry .
	$(NODE_BIN)/spectral lint --ruleset .spectral.yaml --fail-severity warn openapi/access-profiles.yaml
	$(NODE_BIN)/redocly lint --config redocly.yaml openapi/access-profiles.yaml

# mkdocs.yml sets strict: a broken link or anchor, a missing page or a page left out of the nav fails it.
docs: $(STAMP)  ## the docs site from docs/ (MkDocs + Material) into site/, strictly; the configuration page is generated from the CLI
	$(BIN)/mkdocs build --strict --quiet

# The version comes from mockserver/__init__.py; tests/test_wheel.py installs such a wheel and serves from it.
dist: $(STAMP)  ## the wheel and sdist into dist/ (python -m build), then twine check on both
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/twine check --strict dist/*

interop: $(STAMP) $(NODE_STAMP)  ## Specmatic (Java 17) loads the spec and runs its contract tests against a served mock, then a summary
	$(call apt,java,openjdk-17-jre-headless)
	$(BIN)/python tools/interop.py

check: lint test

# A start skips validating a document whose record is known; tests/test_spec.py fails until this is rerun.
spec-record: $(STAMP)  ## after changing openapi/: validate the bundled spec and record it in openapi/validated.txt
	$(BIN)/python -c 'from mockserver.spec.document import Spec; from mockserver.resources import bundled_spec, bundled_validations; \
	spec = Spec.load(bundled_spec()); spec.validate(); \
	bundled_validations().write_text("# Written by make spec-record, checked by tests/test_spec.py.\n" + spec.validation_record() + "\n")'

bench: $(STAMP) $(NODE_STAMP)  ## the mock beside Prism, WireMock and Mockoon, plus in-process figures and shared state (needs wrk, Java 17 and PostgreSQL; installed if missing)
	$(call apt,wrk,wrk)
	$(call apt,java,openjdk-17-jre-headless)
	$(call apt,$(INITDB),postgresql)
	$(BIN)/python bench/bench.py --prism $(PRISM)

SOAK_SECONDS ?= 180

soak: $(STAMP)  ## mockserver serve --state under a mixed load for SOAK_SECONDS (180): throughput per window, p50/p99, RSS, kill -9 check; then the memory check
	$(BIN)/python bench/soak.py --seconds $(SOAK_SECONDS)
	$(BIN)/python bench/soak.py --memory

clean:
	rm -rf $(VENV) node_modules site dist .bench .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis schemathesis-report
