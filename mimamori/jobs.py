"""TimescaleDB's background jobs (compression, retention, aggregate refreshes) as an operator sees them.

A job can fail on its own schedule while the same job run by hand works: seen on TimescaleDB 2.28.3 with
PostgreSQL 15.20, where every scheduled run ended in "cannot drop portal "" while it is being set up" although its
work had committed. A deployment would then silently stop compressing and refreshing. So `mimamori db info`,
`/readyz` (as a warning, never a failure: readings are still stored and served) and a metric show each job's last
success, last failure and error. Reading is I/O; judging (``warnings``) is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

# A job is stalled when it has not succeeded for this many of its schedule intervals (and at least _STALL_FLOOR).
_STALL_INTERVALS = 3
_STALL_FLOOR = timedelta(hours=1)

# -infinity (never) reads as NULL: Python's datetime has no such value.
_JOBS = """
SELECT j.job_id, j.proc_name, coalesce(j.hypertable_name, ''), j.schedule_interval, j.scheduled,
       s.last_run_status,
       CASE WHEN isfinite(s.last_successful_finish) THEN s.last_successful_finish END,
       coalesce(s.total_failures, 0),
       CASE WHEN isfinite(s.next_start) THEN s.next_start END,
       CASE WHEN isfinite(e.finish_time) THEN e.finish_time END,
       e.err_message
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
LEFT JOIN LATERAL (
    SELECT finish_time, err_message FROM timescaledb_information.job_errors x
    WHERE x.job_id = j.job_id ORDER BY finish_time DESC NULLS LAST LIMIT 1
) e ON true
WHERE j.job_id >= 1000  -- the hub's policies; lower ids are TimescaleDB's own housekeeping
ORDER BY j.job_id
"""


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: int
    proc: str  # policy_compression, policy_retention, policy_refresh_continuous_aggregate
    target: str  # the hypertable (for a refresh, the aggregate's materialisation table)
    schedule_interval: timedelta
    scheduled: bool
    last_run_status: str | None  # Success, Failed, or None before its first run
    last_success: datetime | None
    total_failures: int
    next_start: datetime | None
    last_failure: datetime | None
    last_error: str | None

    @property
    def name(self) -> str:
        return f"{self.proc} #{self.job_id}"


def read_jobs(conn: psycopg.Connection) -> list[JobStatus] | None:
    """The hub's TimescaleDB jobs, or None where there is no TimescaleDB."""
    if not conn.execute("SELECT to_regclass('timescaledb_information.job_errors') IS NOT NULL").fetchone()[0]:  # type: ignore[index]
        return None
    return [JobStatus(*row) for row in conn.execute(_JOBS).fetchall()]  # columns in the fields' order


def warnings(jobs: list[JobStatus], now: datetime, *, since: datetime | None = None) -> list[str]:
    """What an operator must hear of: jobs whose last run failed, and jobs that have not succeeded for a while.

    ``since`` is when the jobs were created (a job that has never run is not stalled before its first interval).
    Texts hold job names and times only, never the database's error text (they are shown without a key).
    """
    found = []
    for job in jobs:
        if not job.scheduled:
            found.append(f"{job.name} is not scheduled")
            continue
        if job.last_run_status == "Failed":
            when = job.last_failure.isoformat() if job.last_failure else "its last run"
            found.append(f"{job.name} failed at {when} ({job.total_failures} failures in all)")
            continue
        stall = max(_STALL_INTERVALS * job.schedule_interval, _STALL_FLOOR)
        reference = job.last_success or since
        if reference is not None and now - reference > stall:
            found.append(f"{job.name} has not succeeded since {reference.isoformat()}")
    return found
