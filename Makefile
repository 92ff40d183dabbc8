# Two promises: `make demo` and `make test` work on a fresh machine with only the system Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format install install-dev bench-quick clean browsers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: a second `make demo` / `make test` installs nothing unless pyproject.toml changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/cobro dev --demo

# Browser tests drive Debian's Chromium (never a downloaded browser): installed here if missing.
browsers:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; } || \
	  { echo "install Debian's chromium and chromium-driver (as root) for the browser tests"; exit 1; }

# Most tests run on 3 processes (they wait on servers more than they compute); the kill and
# outage tests run alone afterwards, so no other test's load changes when their kills land.
# Either part collecting no test fails (pytest exit code 5).
PYTEST_WORKERS ?= 3
test: install-dev browsers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not serial"
	$(BIN)/python -m pytest -m serial

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-quick: install-dev
	for b in bench/*_bench.py; do $(BIN)/python $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
