# Two promises: `make demo` and `make test` work on a fresh machine with only the system Python.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every install is constrained to the versions in the lock (pip freeze of a tested venv); the
# floors in pyproject.toml say what Cobro needs, the lock what was tested. `make lock` after
# a change of pyproject.toml.
LOCK := requirements.lock

.PHONY: demo test lint format install install-dev lock bench-quick clean browsers

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps: a second `make demo` / `make test` installs nothing unless pyproject.toml or the
# lock changed.
$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -c $(LOCK) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK) | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Refresh the lock from this venv: install what pyproject.toml asks (without the old lock,
# keeping every installed version that still fits), then freeze all but Cobro itself.
lock: | $(BIN)/python
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[dev]'
	{ echo "# pinned versions for every install (pip install -c $(LOCK) ...); refresh: make lock"; \
	  $(BIN)/pip freeze --exclude-editable --disable-pip-version-check; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(VENV)/.installed-dev $(VENV)/.installed

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
