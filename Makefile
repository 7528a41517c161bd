# Task runner. `make demo` and `make test` each set up what they need on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1

.PHONY: setup demo test test-fast ui repro lint bench browser-deps lock

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[test]'
	touch $@

setup: $(VENV)/.installed  ## create .venv and install the pinned dependencies

demo: setup  ## land the sample data and materialise the whole chain with Dagster
	$(VENV)/bin/mlops-assets demo

ui: setup  ## the Dagster UI (webserver + daemon) on http://127.0.0.1:3000
	$(VENV)/bin/dg dev -p 3000

repro: setup  ## the same chain with DVC alone, no Dagster process
	$(PY) -m mlops_assets.cli.main run-params init   # DVC needs the run params file to exist
	$(VENV)/bin/dvc repro

browser-deps:  ## Debian's chromium for the browser tests (never `playwright install`)
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: setup browser-deps  ## the whole test suite
	$(VENV)/bin/ruff check mlops_assets mlops_assets_tests benchmarks
	$(VENV)/bin/pytest -q

test-fast: setup  ## lint + every test that runs no chain, server or browser (<= 3 min)
	$(VENV)/bin/ruff check mlops_assets mlops_assets_tests benchmarks
	$(VENV)/bin/pytest -q -m "not slow"

lint: setup
	$(VENV)/bin/ruff check mlops_assets mlops_assets_tests benchmarks

bench: setup
	$(PY) benchmarks/chain_bench.py
	$(PY) benchmarks/budget_bench.py

lock: setup  ## rebuild dvc.lock from a clean copy of the tracked files (what a fresh clone gets)
	rm -rf /tmp/mlops_assets_lock && mkdir -p /tmp/mlops_assets_lock
	git ls-files --cached --others --exclude-standard | grep -v '^dvc.lock$$' | \
	  xargs -I{} cp --parents {} /tmp/mlops_assets_lock/
	cd /tmp/mlops_assets_lock && git init -q && git add -A && \
	  git -c user.email=lock@local -c user.name=lock commit -qm lock && dvc repro -q
	cp /tmp/mlops_assets_lock/dvc.lock dvc.lock
	@echo "dvc.lock rebuilt from a clean copy"
