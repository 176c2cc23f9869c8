"""Scratch databases on the server that ``MIMAMORI_TEST_ADMIN_DSN`` reaches, made and dropped whole."""

from __future__ import annotations

import os
import uuid

import psycopg

from mimamori.migrate import timescaledb_available

ADMIN_DSN = os.environ.get("MIMAMORI_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# The storage mode of the run's databases: off (plain PostgreSQL, as CI runs), on (TimescaleDB: ADMIN_DSN must reach
# a server that preloads it) or auto. `make test-timescaledb` sets both.
TEST_TIMESCALEDB = os.environ.get("MIMAMORI_TEST_TIMESCALEDB", "off")


def create_scratch_database(prefix: str = "mimamori_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_has_timescaledb() -> bool:
    """Whether the test server can make TimescaleDB databases (installed and preloaded), whatever the run's mode."""
    try:
        with psycopg.connect(ADMIN_DSN) as conn:
            return timescaledb_available(conn)
    except psycopg.Error:
        return False
