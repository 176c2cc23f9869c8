"""Database connections: one pool per process, and clear errors when PostgreSQL cannot be reached."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import orjson
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from mimamori.errors import ConfigError, UnreachableError
from mimamori.settings import Settings, redact_url


def _describe(dsn: str) -> str:
    return redact_url(dsn)


def connect(dsn: str, *, autocommit: bool = False, connect_timeout: int = 5) -> psycopg.Connection:
    """Open one connection, or raise UnreachableError / ConfigError with one line saying what was tried."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"bad database URL {_describe(dsn)}: {exc}") from None
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UnreachableError(f"cannot connect to PostgreSQL at {_describe(dsn)}: {reason}") from None


def with_database(dsn: str, dbname: str) -> str:
    """The same connection URL pointed at another database (for creating or dropping databases)."""
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo(**params)


def database_name(dsn: str) -> str:
    return str(conninfo_to_dict(dsn).get("dbname") or "postgres")


def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` when it is missing. True when it was created."""
    name = database_name(dsn)
    try:
        conn = psycopg.connect(dsn, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            reason = str(exc).strip().splitlines()[-1]
            raise UnreachableError(f"cannot connect to PostgreSQL at {_describe(dsn)}: {reason}") from None
    else:
        conn.close()
        return False
    with connect(with_database(dsn, "postgres"), autocommit=True) as admin:
        try:
            admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            return False  # another process created it first
    return True


_LONG_NUMBER = re.compile(rb"\d{19}")  # past 64 bits, orjson would read an integer as a rounded float


def _json_loads(data: bytes | bytearray | memoryview | str) -> object:
    """orjson for json/jsonb columns (several times faster on feature properties), the standard parser for text
    holding a number orjson would round (integers past 64 bits) or a document it refuses."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_NUMBER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(bytes(raw))


def configure_connection(conn: psycopg.Connection) -> None:
    set_json_loads(_json_loads, conn)


def make_pool(settings: Settings, *, min_size: int | None = None, max_size: int | None = None) -> ConnectionPool:
    """A connection pool that has proved it can connect (opening fails fast with a clear line)."""
    pool = ConnectionPool(
        settings.dsn,
        min_size=settings.db_pool_min if min_size is None else min_size,
        max_size=settings.db_pool_max if max_size is None else max_size,
        open=False,
        kwargs={"connect_timeout": 5},
        name="mimamori",
        # Bounded waits while PostgreSQL is away (callers answer 503 or retry), and no dead connection handed
        # out after it comes back: each checkout is probed first (one round trip).
        timeout=settings.db_pool_timeout_s,
        check=ConnectionPool.check_connection,
        configure=configure_connection,
    )
    # Probe with a single connection first so a bad URL is one clear line, not a pool timeout.
    connect(settings.dsn).close()
    pool.open(wait=False)
    return pool


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    with pool.connection() as conn, conn.transaction():
        yield conn


@contextmanager
def reading(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A pooled connection for reads: in autocommit, so handing it back costs no COMMIT round trip.

    A read of several statements that must see one snapshot uses ``conn.transaction()`` inside. The connection
    goes back to the pool as it came (autocommit off), since writers rely on their implicit transaction.
    """
    with pool.connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            with suppress(psycopg.Error):  # a broken connection: the pool discards it
                conn.autocommit = False
