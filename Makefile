# Landfall: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser demo up down status test test-unit test-e2e lint bench ha-burst clean

# uv when it is there (fast), plain pip otherwise; constraints.txt pins the set the tests passed with.
$(STAMP): pyproject.toml constraints.txt
	@if command -v uv >/dev/null 2>&1; then \
	  uv venv -q --allow-existing -p $(PYTHON) $(VENV) && uv pip install -q -p $(BIN)/python -c constraints.txt -e ".[test]"; \
	else \
	  $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q -c constraints.txt -e ".[test]"; \
	fi
	@touch $(STAMP)

install: $(STAMP)

# The UI test drives Debian's Chromium (a test tool's own browser download does not work offline):
# install it when it is missing and this user may (root with apt-get); otherwise say how.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test ..."; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  else \
	    echo "The browser test needs Chromium: sudo apt-get install chromium (or set LANDFALL_CHROMIUM)"; \
	  fi; }

demo: $(STAMP)
	$(BIN)/landfall demo

up: $(STAMP)
	$(BIN)/landfall up

down: $(STAMP)
	$(BIN)/landfall down

status: $(STAMP)
	$(BIN)/landfall status

# ruff (style and bugs), Airflow's own deprecation rules on the DAG files, and the layer contracts
# (import-linter): no import in src/landfall points up a layer.
lint: $(STAMP)
	$(BIN)/ruff check src dags tests
	$(BIN)/ruff check --select AIR --preview dags
	$(BIN)/lint-imports

test: $(STAMP) browser lint
	$(BIN)/python -m pytest -v --durations=25 -n 2

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/dags

test-e2e: $(STAMP) browser
	$(BIN)/python -m pytest -v tests/e2e

# Latency, overhead and scale on a fresh stack of its own; writes bench/results.json (see docs/performance.md).
bench: $(STAMP)
	$(BIN)/landfall bench

# The HA burst at full size: 500 files while a triggerer and a scheduler are SIGKILLed (the suite runs 40).
ha-burst: $(STAMP)
	LANDFALL_HA_BURST=500 $(BIN)/python -m pytest -s -q tests/e2e/test_scaleout_e2e.py -k sigkilled

clean:
	-$(BIN)/landfall down
	rm -rf $(VENV) .landfall .pytest_cache .ruff_cache
