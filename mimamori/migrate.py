"""Ordered SQL migrations applied by the hub itself.

Files are ``NNNN_name.sql`` (every mode) or ``NNNN_name.plain.sql`` / ``NNNN_name.timescaledb.sql``
(one per storage mode). Each is applied once, in its own transaction, under an advisory lock so two
processes migrating at once are safe; its checksum is recorded so an edited migration is caught.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from mimamori.db import connect, ensure_database
from mimamori.errors import ConfigError, MimamoriError
from mimamori.settings import Settings, TimescaleMode

# Any fixed 64-bit number: the lock key every migrating process agrees on.
_LOCK_KEY = 0x6D696D616D6F7269  # "mimamori"
_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<mode>plain|timescaledb))?\.sql$")

PLAIN = "plain"
TIMESCALEDB = "timescaledb"


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    mode: str | None  # None: applies in every mode
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationReport:
    mode: str
    applied: list[str]
    already: int
    created_database: bool


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in resources.files("mimamori.migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(match["version"], match["name"], match["mode"], entry.read_text("utf-8")))
        elif entry.name.endswith(".sql"):
            raise MimamoriError(f"migration file {entry.name!r} does not follow NNNN_name[.mode].sql")
    return sorted(found, key=lambda m: (m.version, m.mode or ""))


def plan(migrations: list[Migration], mode: str) -> list[Migration]:
    """The migrations for one storage mode, one per version, in order."""
    chosen: dict[str, Migration] = {}
    for m in migrations:
        if m.mode in (None, mode):
            if m.version in chosen:
                raise MimamoriError(f"two migrations for version {m.version} in mode {mode}")
            chosen[m.version] = m
    return [chosen[v] for v in sorted(chosen)]


def timescaledb_available(conn: psycopg.Connection) -> bool:
    """True when CREATE EXTENSION timescaledb would work: installed and preloaded."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'),"
        " current_setting('shared_preload_libraries')"
    ).fetchone()
    assert row is not None
    return bool(row[0]) and "timescaledb" in (row[1] or "")


def _choose_mode(conn: psycopg.Connection, wanted: TimescaleMode) -> str:
    recorded = conn.execute("SELECT value FROM hub_meta WHERE key = 'storage_mode'").fetchone()
    if recorded:
        mode = str(recorded[0])
        if wanted is TimescaleMode.on and mode != TIMESCALEDB:
            raise ConfigError("MIMAMORI_TIMESCALEDB=on, but this database was created in plain PostgreSQL mode")
        return mode
    available = timescaledb_available(conn)
    if wanted is TimescaleMode.on and not available:
        raise ConfigError("MIMAMORI_TIMESCALEDB=on, but the timescaledb extension is not installed and preloaded")
    mode = TIMESCALEDB if (available and wanted is not TimescaleMode.off) else PLAIN
    conn.execute("INSERT INTO hub_meta (key, value) VALUES ('storage_mode', %s)", (mode,))
    return mode


def migrate(settings: Settings, *, until: str | None = None) -> MigrationReport:
    """Apply every migration not applied yet, then (TimescaleDB) the policies from settings.

    ``until`` stops after that version, policies left out: for tests of a migration that moves existing data.
    """
    created = ensure_database(settings.dsn)
    with connect(settings.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, mode text, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS hub_meta (key text PRIMARY KEY, value text NOT NULL)")
            mode = _choose_mode(conn, settings.timescaledb)
            done = {row[0]: row[1] for row in conn.execute("SELECT version, checksum FROM schema_migrations")}
            applied: list[str] = []
            for m in plan(load_migrations(), mode):
                if until is not None and m.version > until:
                    break
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise MimamoriError(
                            f"migration {m.version}_{m.name} was edited after it was applied; "
                            "add a new migration instead"
                        )
                    continue
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, mode, checksum) VALUES (%s, %s, %s, %s)",
                        (m.version, m.name, m.mode, m.checksum),
                    )
                applied.append(f"{m.version}_{m.name}")
            if mode == TIMESCALEDB and until is None:
                apply_timescale_policies(conn, settings)
            return MigrationReport(mode, applied, len(done), created)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


# Continuous aggregates (migration 0060): the newest bucket left to real-time aggregation, and how often to refresh.
_REFRESHED = (
    ("series_readings_10m", "10 minutes", "5 minutes"),
    ("series_readings_1h", "1 hour", "30 minutes"),
    ("series_readings_1d", "1 day", "6 hours"),
)


def apply_timescale_policies(conn: psycopg.Connection, settings: Settings) -> None:
    """Retention and compression ages come from settings, so they are (re)applied on every migrate.

    Each refresh policy's window reaches as far back as ingest accepts readings (``ingest_max_past_days``): a
    reading a month late must be in the aggregate after the next run. TimescaleDB refreshes only the parts of the
    window invalidated by writes since the last run, so a long window costs nothing when nothing arrives late.
    """
    with conn.transaction():
        for view, end_offset, every in _REFRESHED:
            conn.execute("SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", (view,))
            conn.execute(
                "SELECT add_continuous_aggregate_policy(%s, start_offset => make_interval(days => %s),"
                " end_offset => %s::interval, schedule_interval => %s::interval)",
                (view, settings.ingest_max_past_days + 2, end_offset, every),
            )
        conn.execute(
            "SELECT set_chunk_time_interval('series_readings', make_interval(days => %s))", (settings.chunk_days,)
        )
        conn.execute("SELECT remove_retention_policy('series_readings', if_exists => true)")
        conn.execute(
            "SELECT add_retention_policy('series_readings', make_interval(days => %s))", (settings.retention_days,)
        )
        conn.execute("SELECT remove_compression_policy('series_readings', if_exists => true)")
        conn.execute(
            "SELECT add_compression_policy('series_readings', make_interval(days => %s))",
            (settings.compress_after_days,),
        )


def storage_mode(conn: psycopg.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM hub_meta WHERE key = 'storage_mode'").fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None
    return str(row[0]) if row else None
