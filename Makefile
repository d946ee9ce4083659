# Two commands: `make demo` (a full sync against the local Microsoft 365 sandbox) and
# `make test`. Both set up the virtual environment first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The store, tables, cache and Dagster instance (DAGSTER_HOME) default to var/, or GLUE_VAR_DIR.

.PHONY: install demo test lint ui screenshots clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/glue-pipeline demo

# The static checks first (ruff; mypy strict outside the sandbox and the tests), then the tests.
lint: $(STAMP)
	$(BIN)/ruff check glue_pipeline glue_pipeline_tests benchmarks
	$(BIN)/mypy glue_pipeline

test: lint
	$(BIN)/python -m pytest -q

ui: $(STAMP)
	$(BIN)/glue-pipeline ui

# The README's pictures of the UI (docs/*.png) from the demo instance; needs Debian's chromium.
screenshots: demo
	$(BIN)/pip install --quiet -e '.[docs]'
	$(BIN)/python docs/screenshots.py

clean:
	rm -rf var
