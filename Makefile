# Two commands: `make run` (the main job) and `make test` (everything, then the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# axe-core (the npm package): the accessibility engine of the family pages' browser test
AXE_VERSION := 4.14.1
AXE := $(VENV)/axe/node_modules/axe-core/axe.min.js

.PHONY: run test lint bench docs system axe install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

# System packages the tests need: Debian's chromium for the browser tests (never `playwright install`),
# Debian's postgresql for the store's tests on PostgreSQL and redis-server for the cluster's tests
# (tests/support/postgres.py and redis_server.py start their own servers in temporary folders; the
# packages' own services are not needed).
system:
	@{ command -v chromium >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  && command -v redis-server >/dev/null 2>&1; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium postgresql redis-server >/dev/null; }

# axe-core from the npm registry into .venv/axe (about 3.4 MB, a few seconds); Node and npm from
# Debian when the machine has none.
$(AXE): | $(STAMP)
	@command -v npm >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	npm install --prefix $(VENV)/axe --no-audit --no-fund --no-package-lock --silent axe-core@$(AXE_VERSION)
	@test -f $@

axe: $(AXE)

run: $(STAMP)
	$(VENV)/bin/monitor serve --demo

lint: $(STAMP)
	$(VENV)/bin/ruff check policies monitor signalling tests bench fixtures tools conftest.py
	$(VENV)/bin/ruff format --check policies monitor signalling tests bench fixtures tools conftest.py
	$(VENV)/bin/mypy

test: $(STAMP) system $(AXE) lint
	$(PY) -m pytest tests/policies -q -p no:cacheprovider --cov=policies --cov-branch \
	  --cov-report=term-missing:skip-covered --cov-fail-under=100
	$(PY) -m pytest tests -q -p no:cacheprovider --ignore=tests/policies

bench: $(STAMP)
	$(PY) -m bench

# Pages written from the code (docs/policy.md); tests/tools/test_policy_doc.py fails while one is stale.
docs: $(STAMP)
	$(PY) -m tools.policy_doc

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
