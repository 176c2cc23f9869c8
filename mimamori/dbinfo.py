"""What `mimamori db info` reports."""

from __future__ import annotations

import psycopg

from mimamori.jobs import read_jobs
from mimamori.migrate import storage_mode

_COUNTED = ("tenants", "device_types", "devices", "readings", "dead_letters")


def database_info(conn: psycopg.Connection) -> dict[str, object]:
    info: dict[str, object] = {"mode": storage_mode(conn) or "not migrated"}
    info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    versions = dict(
        conn.execute(
            "SELECT name, installed_version FROM pg_available_extensions WHERE name IN ('postgis', 'timescaledb')"
        ).fetchall()
    )
    info["postgis"] = versions.get("postgis") or "not installed"
    info["timescaledb"] = versions.get("timescaledb") or (
        "available, not installed" if "timescaledb" in versions else "not available"
    )
    try:
        info["migrations"] = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]  # type: ignore[index]
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        info["migrations"] = 0
        return info
    for job in read_jobs(conn) or []:
        last = "never" if job.last_success is None else job.last_success.isoformat(timespec="seconds")
        line = f"{job.last_run_status or 'not run yet'}; last success {last}; {job.total_failures} failures"
        if job.last_failure is not None:
            line += f"; last failure {job.last_failure.isoformat(timespec='seconds')}: {job.last_error}"
        info[f"job {job.name} ({job.target})"] = line
    for table in _COUNTED:
        # Table names come from the constant above, never from input.
        query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
        info[f"rows: {table}"] = conn.execute(query).fetchone()[0]  # type: ignore[index]
    return info
