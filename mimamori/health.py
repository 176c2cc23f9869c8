"""Readiness checks: can this process reach PostgreSQL and the broker right now?

The answers are meant for load balancers and orchestrators, which ask often and without a key, so they say
which dependency is down but never how it is addressed (no host names, ports or error texts that might hold them).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from mimamori import metrics
from mimamori.jobs import JobStatus, read_jobs, warnings
from mimamori.settings import MqttAddress


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str  # "ok", or what failed, in words safe to show anyone
    seconds: float


def check_database(pool: ConnectionPool, timeout_s: float) -> Check:
    """A pooled connection answers ``SELECT 1`` within the timeout."""
    started = time.monotonic()
    try:
        with pool.connection(timeout=timeout_s) as conn:
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(timeout_s * 1000)}ms",))
            conn.execute("SELECT 1")
        detail, ok = "ok", True
    except PoolTimeout:
        detail, ok = "no database connection within the timeout", False
    except psycopg.Error as exc:
        detail, ok = f"database error ({type(exc).__name__})", False
    return Check("database", ok, detail, round(time.monotonic() - started, 4))


def check_broker(address: MqttAddress, timeout_s: float) -> Check:
    """The broker accepts a TCP connection (its MQTT sessions are the ingestors' business, not the API's)."""
    started = time.monotonic()
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout_s):
            pass
        detail, ok = "ok", True
    except OSError as exc:
        detail, ok = f"broker not reachable ({type(exc).__name__})", False
    return Check("broker", ok, detail, round(time.monotonic() - started, 4))


def check_jobs(pool: ConnectionPool, timeout_s: float) -> list[str]:
    """Warnings about TimescaleDB's jobs (none without TimescaleDB, or when the database cannot say): they never make
    the process unready, since readings are still stored and served, but an operator must hear of them."""
    try:
        with pool.connection(timeout=timeout_s) as conn:
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(timeout_s * 1000)}ms",))
            jobs = read_jobs(conn)
            now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    except (PoolTimeout, psycopg.Error):
        return []
    if jobs is None:
        return []
    record_job_metrics(jobs)
    return warnings(jobs, now)


def record_job_metrics(jobs: list[JobStatus]) -> None:
    for job in jobs:
        labels = (str(job.job_id), job.proc)
        metrics.TIMESCALEDB_JOB_LAST_SUCCESS.labels(*labels).set(
            job.last_success.timestamp() if job.last_success else 0
        )
        metrics.TIMESCALEDB_JOB_LAST_FAILURE.labels(*labels).set(
            job.last_failure.timestamp() if job.last_failure else 0
        )
        metrics.TIMESCALEDB_JOB_FAILING.labels(*labels).set(1 if job.last_run_status == "Failed" else 0)


def readiness(checks: list[Check], warned: list[str] | None = None) -> tuple[bool, dict[str, object]]:
    """Whether every check passed, and the answer body listing each (and any warnings)."""
    ready = all(c.ok for c in checks)
    body: dict[str, object] = {
        "status": "ready" if ready else "unavailable",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail, "seconds": c.seconds} for c in checks},
    }
    if warned:
        body["warnings"] = warned
    return ready, body
