.PHONY: setup up test test-fast test-timescaledb lint bench

setup:
	@bash deploy/bootstrap.sh

up: setup
	@bash deploy/laptop-hub.sh

lint: setup
	uv run --locked ruff check .
	uv run --locked ruff format --check .
	uv run --locked lint-imports

test:
	@bash deploy/bootstrap.sh --tests
	uv run --locked ruff check .
	uv run --locked ruff format --check .
	uv run --locked lint-imports
	uv run --locked pytest

# The pure tests only (no PostgreSQL, no Mosquitto): the loop to run while editing.
test-fast:
	uv run --locked pytest -m "not services" -q

# The same suite on TimescaleDB: TSDB is the admin DSN of a server that preloads the extension.
test-timescaledb:
	@test -n "$(TSDB)" || { echo "usage: make test-timescaledb TSDB=postgresql://postgres@HOST:PORT/postgres"; exit 2; }
	@bash deploy/bootstrap.sh --tests
	MIMAMORI_TEST_ADMIN_DSN=$(TSDB) MIMAMORI_TEST_TIMESCALEDB=on uv run --locked pytest

bench: setup
	uv run --locked python -m bench.ingest
