# Helpdesk: `make run` to try it, `make test` to prove it. `make` alone lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
VENV := .venv
PY := $(VENV)/bin/python
# What scripts/services.sh provides; the tests run in production mode against them.
TEST_DATABASE_URL ?= postgis://postgres:postgres@127.0.0.1:5432/helpdesk
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
# `make run` is the embedded mode whatever the shell has exported.
EMBEDDED := env -u DATABASE_URL -u REDIS_URL

.PHONY: help run test lint services bootstrap

help: ## List the targets
	@echo "Usage: make TARGET [HOST=127.0.0.1] [PORT=8000] [PYTEST_ARGS=...]"
	@echo
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-10s %s\n", $$1, $$2 }' \
		$(MAKEFILE_LIST)

run: ## Try it: install what is missing, migrate, seed the demo, serve on http://HOST:PORT/
	@bash scripts/bootstrap.sh
	$(EMBEDDED) $(PY) manage.py migrate --noinput
	$(EMBEDDED) $(PY) manage.py collectstatic --noinput -v 0
	$(EMBEDDED) $(PY) manage.py seed_demo --base-url http://$(HOST):$(PORT)
	@echo "==> serving on http://$(HOST):$(PORT)/ (Ctrl-C to stop)"
	exec $(EMBEDDED) $(VENV)/bin/daphne -b $(HOST) -p $(PORT) helpdesk.asgi:application

test: ## Prove it: install what is missing, start PostgreSQL/PostGIS and Redis, run pytest
	@bash scripts/bootstrap.sh --dev --browser
	@bash scripts/services.sh
	@$(PY) bench/run.py --requirements-only
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: ## ruff check, ruff format --check, makemigrations --check (runs all, fails if any fails)
	@bash scripts/bootstrap.sh --dev
	@status=0; \
	echo "==> ruff check"; $(VENV)/bin/ruff check . || status=1; \
	echo "==> ruff format --check"; $(VENV)/bin/ruff format --check . || status=1; \
	echo "==> makemigrations --check"; \
	$(EMBEDDED) $(PY) manage.py makemigrations --check --dry-run || status=1; \
	exit $$status

services: ## Start PostgreSQL/PostGIS and Redis for the tests (installing them when missing)
	@bash scripts/services.sh

bootstrap: ## Install packages and build .venv with the dev requirements, without running anything
	@bash scripts/bootstrap.sh --dev --browser

.PHONY: bench
bench: ## Benchmark ours against the two baselines (QUICK=1: < 2 min; BENCH_ARGS=--server uvicorn)
	@bash scripts/bootstrap.sh
	@bash scripts/services.sh
	$(PY) bench/run.py $(if $(filter 1 true yes,$(QUICK)),--quick,) $(BENCH_ARGS)

.PHONY: kb-eval
kb-eval: ## Knowledge-base search quality on knowledge/eval/ (PostgreSQL, like the tests)
	@bash scripts/bootstrap.sh
	@bash scripts/services.sh
	DATABASE_URL=$(TEST_DATABASE_URL) DJANGO_SECRET_KEY=kb-eval-only $(PY) manage.py migrate --noinput -v 0
	DATABASE_URL=$(TEST_DATABASE_URL) DJANGO_SECRET_KEY=kb-eval-only $(PY) manage.py kb_eval
