# The README's verbs. Every target installs what it needs first (uv from PyPI if missing).
UV := $(shell sh scripts/ensure-uv.sh)
VENV := .venv/bin

.PHONY: help install dev demo test lint up migrate bench bench-ingest bench-collect bench-detect bench-alert bench-api

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install:  ## create .venv with every package (locked versions)
	$(UV) sync --all-packages --frozen

dev: install  ## run the whole stack locally: nats-server, PostgreSQL, migrations, services
	$(VENV)/spendwatch dev

demo: install  ## the local stack fed by a simulated Cursor team (no Cursor key needed)
	$(VENV)/spendwatch dev --demo

test: install  ## run every test; starts its own nats-server and PostgreSQL
	$(VENV)/pytest

lint: install  ## ruff and mypy (strict on libs/, services/ and benchmarks/)
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy libs services benchmarks
	$(VENV)/lint-imports

up:  ## run the production stack with Docker Compose
	docker compose up --build

migrate: install  ## apply database migrations to DATABASE_URL
	$(VENV)/spendwatch migrate

bench: bench-ingest bench-collect bench-detect bench-alert bench-api  ## run every benchmark

bench-ingest: install  ## sink throughput and latency vs the raw NATS/COPY limits
	$(VENV)/python -m benchmarks.bench_ingest

bench-collect: install  ## a first Cursor pass for 500 developers x 30 days against the simulator
	$(VENV)/python -m benchmarks.bench_collect

bench-detect: install  ## detection quality vs the peer on a labelled 200-developer, 90-day scenario
	$(VENV)/python -m benchmarks.bench_detect

bench-alert: install  ## usage event -> Slack post latency under 5,000 events/s of background traffic
	$(VENV)/python -m benchmarks.bench_alert

bench-api: install  ## REST and Grafana read latency on 500 developers x 90 days (~13 M events)
	$(VENV)/python -m benchmarks.bench_api
