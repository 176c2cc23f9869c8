"""The process's connection pool: read connections in autocommit, and fast JSON column loading."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from mimamori.db import make_pool, reading
from mimamori.settings import Settings


@pytest.fixture
def one_connection(settings: Settings) -> Iterator[ConnectionPool]:
    # One connection, so every checkout below is provably the same connection.
    pool = make_pool(settings, min_size=1, max_size=1)
    pool.wait()
    yield pool
    pool.close()


def test_a_read_connection_is_in_autocommit_and_goes_back_as_it_came(
    one_connection: ConnectionPool, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS pool_probe (n int)")
    db.execute("TRUNCATE pool_probe")
    with reading(one_connection) as conn:
        assert conn.autocommit
        conn.execute("INSERT INTO pool_probe VALUES (1)")
        # Committed at once: another session sees it before the block ends.
        assert db.execute("SELECT count(*) FROM pool_probe").fetchone() == (1,)
    with one_connection.connection() as conn:
        assert not conn.autocommit  # a writer's implicit transaction is intact
        conn.execute("INSERT INTO pool_probe VALUES (2)")
        assert db.execute("SELECT count(*) FROM pool_probe").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM pool_probe").fetchone() == (2,)
    db.execute("DROP TABLE pool_probe")


def test_a_failed_read_still_hands_the_connection_back_without_autocommit(one_connection: ConnectionPool) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable), reading(one_connection) as conn:
        conn.execute("SELECT * FROM no_such_table")
    with one_connection.connection() as conn:
        assert not conn.autocommit
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_json_columns_load_with_the_standard_parser_where_orjson_refuses(one_connection: ConnectionPool) -> None:
    with reading(one_connection) as conn:
        row = conn.execute(
            'SELECT \'{"a": [1.5, "雨", null, true]}\'::jsonb, \'{"big": 123456789012345678901234567890}\'::json'
        ).fetchone()
    assert row is not None
    assert row[0] == {"a": [1.5, "雨", None, True]}
    assert row[1] == {"big": 123456789012345678901234567890}  # past 64 bits: orjson refuses, json does not
