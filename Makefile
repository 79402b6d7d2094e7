# retail-observability: every command an operator or CI needs.
.DEFAULT_GOAL := help
.PHONY: help setup migrate demo test unit postgres-tier bench serve lint

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) backend/manage.py

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(VENV)/.installed ## Create .venv and install the project with its test tools

migrate: setup ## Create or upgrade the database schema; collect static files for the admin
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput -v0

demo: migrate ## Seed the shop, drive simulated traffic through the real stack, show the CLI
	$(MANAGE) seed_demo
	RETAIL_LOG_STDOUT=off $(MANAGE) simulate_traffic --requests 300
	RETAIL_LOG_STDOUT=off $(MANAGE) demo_breaker
	$(VENV)/bin/retailctl metrics --days 7
	$(VENV)/bin/retailctl scenarios --days 7

test: setup ## Run every test tier (PostgreSQL and Redis ones when their variables are set)
	$(PY) -m pytest
	@$(MAKE) --no-print-directory postgres-tier

unit: setup ## Run every test but the load and browser tiers (no server process, no browser)
	$(PY) -m pytest -m "not load and not browser"

postgres-tier: setup ## Run the database tests again on the PostgreSQL of RETAIL_TEST_POSTGRES_URL
	@if [ -n "$$RETAIL_TEST_POSTGRES_URL" ]; then \
		echo "PostgreSQL tier: database tests on $$RETAIL_TEST_POSTGRES_URL"; \
		DATABASE_URL="$$RETAIL_TEST_POSTGRES_URL" $(PY) -m pytest -m "database and not load"; \
	else \
		echo "SKIPPED PostgreSQL tier: RETAIL_TEST_POSTGRES_URL is not set"; \
	fi

bench: setup ## Run the benchmarks under bench/
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

serve: migrate ## Serve the backend with gunicorn (2 threaded workers) on 127.0.0.1:8000
	$(VENV)/bin/gunicorn -c backend/config/gunicorn.py --chdir backend --workers 2 --bind 127.0.0.1:8000 config.wsgi:application

lint: setup ## Check style with ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
