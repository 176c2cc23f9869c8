"""TimescaleDB's jobs an operator can see (issue 15): `mimamori db info`, /readyz warnings and a metric.

The judging is pure and tested here directly; the reading runs against a real TimescaleDB when the test server has
one (a job made to fail on its own schedule, and the policies run by hand), and is skipped with the reason where not.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from mimamori.jobs import JobStatus, read_jobs, warnings
from mimamori.migrate import migrate, timescaledb_available
from mimamori.settings import Settings
from tests.services import ADMIN_DSN, create_scratch_database, drop_database, wait_until

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def job(**kw: object) -> JobStatus:
    base: dict[str, object] = {
        "job_id": 1000,
        "proc": "policy_compression",
        "target": "readings",
        "schedule_interval": timedelta(hours=12),
        "scheduled": True,
        "last_run_status": "Success",
        "last_success": NOW - timedelta(hours=1),
        "total_failures": 0,
        "next_start": NOW + timedelta(hours=11),
        "last_failure": None,
        "last_error": None,
    }
    return JobStatus(**(base | kw))  # type: ignore[arg-type]


def test_a_healthy_job_warns_of_nothing():
    assert warnings([job()], NOW) == []


def test_a_failed_last_run_is_a_warning_without_the_error_text():
    failed = job(last_run_status="Failed", total_failures=3, last_failure=NOW, last_error='cannot drop portal ""')
    (text,) = warnings([failed], NOW)
    assert "policy_compression #1000 failed" in text and "3 failures" in text
    assert "portal" not in text  # shown without a key: names and times only


def test_a_job_that_has_not_succeeded_for_three_intervals_is_stalled():
    stalled = job(last_success=NOW - timedelta(hours=37))
    assert warnings([stalled], NOW) == [
        f"policy_compression #1000 has not succeeded since {stalled.last_success.isoformat()}"
    ]
    assert warnings([job(last_success=NOW - timedelta(hours=35))], NOW) == []
    # A short interval still allows an hour; a job that never ran counts from when it was made.
    assert warnings([job(schedule_interval=timedelta(minutes=5), last_success=NOW - timedelta(minutes=50))], NOW) == []
    never = job(last_success=None, last_run_status=None)
    assert warnings([never], NOW, since=NOW - timedelta(days=2)) != []
    assert warnings([never], NOW, since=NOW - timedelta(minutes=10)) == []


def test_an_unscheduled_job_is_a_warning():
    assert warnings([job(scheduled=False)], NOW) == ["policy_compression #1000 is not scheduled"]


@pytest.fixture
def tsdb():
    with psycopg.connect(ADMIN_DSN) as conn:
        if not timescaledb_available(conn):
            pytest.skip("no TimescaleDB on the test server: set MIMAMORI_TEST_ADMIN_DSN to one that preloads it")
    dsn = create_scratch_database("mimamori_jobs")
    try:
        migrate(Settings(database_url=dsn, timescaledb="on"))  # type: ignore[arg-type]
        yield dsn
    finally:
        drop_database(dsn)


@pytest.mark.timescaledb
def test_jobs_are_read_and_a_failing_one_shows_in_db_info_readyz_and_metrics(tsdb, settings):
    with psycopg.connect(tsdb, autocommit=True) as conn:
        jobs = read_jobs(conn)
        assert jobs is not None
        assert sorted(j.proc for j in jobs) == sorted(
            ["policy_retention", "policy_compression"] + ["policy_refresh_continuous_aggregate"] * 3
        )
        refresh = next(j for j in jobs if j.proc == "policy_refresh_continuous_aggregate")
        for _ in range(100):  # the scheduler may be running the same job: it holds a lock meanwhile
            try:
                conn.execute("CALL run_job(%s)", (refresh.job_id,))
                break
            except psycopg.errors.LockNotAvailable:
                time.sleep(0.3)
        # A job that fails on its own schedule, as every scheduled job did on TimescaleDB 2.28.3 / PostgreSQL 15.20.
        conn.execute(
            "CREATE PROCEDURE failing_job(job_id int, config jsonb) LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'disk on fire'; END $$"
        )
        failing = conn.execute("SELECT add_job('failing_job', '1 second', initial_start => now())").fetchone()[0]
        wait_until(
            lambda: any(j.job_id == failing and j.last_run_status == "Failed" for j in read_jobs(conn) or []),
            timeout=60,
            what="the scheduler to run the failing job",
        )
        jobs = {j.job_id: j for j in read_jobs(conn) or []}
    # (A run by hand, CALL run_job, is not counted in job_stats on 2.28.3: only the scheduler's runs are.)
    assert jobs[failing].last_error is not None and "disk on fire" in jobs[failing].last_error

    env = {"MIMAMORI_DATABASE_URL": tsdb, "PATH": "/usr/bin:/bin", "COLUMNS": "250"}
    info = subprocess.run(
        [sys.executable, "-m", "hub.cli", "db", "info"], env=env, capture_output=True, text=True, timeout=60
    )
    assert info.returncode == 0, info.stderr
    assert f"failing_job #{failing}" in info.stdout and "disk on fire" in info.stdout

    s = settings.model_copy(update={"database_url": type(settings.database_url)(tsdb)})
    pool = ConnectionPool(tsdb, min_size=1, max_size=2, open=True)
    try:
        with TestClient(create_app(s, pool)) as client:
            ready = client.get("/readyz")
            scraped = client.get("/metrics").text
    finally:
        pool.close()
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert any(f"failing_job #{failing} failed" in w for w in ready.json()["warnings"])
    assert "disk on fire" not in ready.text
    assert f'mimamori_timescaledb_job_failing{{job="{failing}",proc="failing_job"}} 1.0' in scraped
    assert (
        f'mimamori_timescaledb_job_last_success_timestamp_seconds{{job="{failing}",proc="failing_job"}} 0.0' in scraped
    )
    assert f'mimamori_timescaledb_job_last_failure_timestamp_seconds{{job="{refresh.job_id}"' in scraped
