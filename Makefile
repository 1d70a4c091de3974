# Landfall: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo up down status test test-unit test-e2e lint clean

# uv when it is there (fast), plain pip otherwise; no Airflow constraint files needed.
$(STAMP): pyproject.toml
	@if command -v uv >/dev/null 2>&1; then \
	  uv venv -q --allow-existing -p $(PYTHON) $(VENV) && uv pip install -q -p $(BIN)/python -e ".[test]"; \
	else \
	  $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -e ".[test]"; \
	fi
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/landfall demo

up: $(STAMP)
	$(BIN)/landfall up

down: $(STAMP)
	$(BIN)/landfall down

status: $(STAMP)
	$(BIN)/landfall status

lint: $(STAMP)
	$(BIN)/ruff check src dags tests

test: $(STAMP)
	$(BIN)/ruff check src dags tests
	$(BIN)/python -m pytest -v --durations=15

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/dags

test-e2e: $(STAMP)
	$(BIN)/python -m pytest -v tests/e2e

clean:
	-$(BIN)/landfall down
	rm -rf $(VENV) .landfall .pytest_cache .ruff_cache
