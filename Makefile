.PHONY: setup up test lint bench

setup:
	@bash deploy/bootstrap.sh

up: setup
	@bash deploy/laptop-hub.sh

lint: setup
	uv run --locked ruff check .
	uv run --locked ruff format --check .

test:
	@bash deploy/bootstrap.sh --tests
	uv run --locked ruff check .
	uv run --locked ruff format --check .
	uv run --locked pytest

bench: setup
	uv run --locked python -m bench.ingest
