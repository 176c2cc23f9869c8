"""Storage benchmark: `python -m bench.storage` (not a test).

Loads two fleets into scratch databases migrated by the hub, in each storage mode it can reach:

* **gauges**: a month of a 200-gauge fleet at 10-minute intervals (864,000 readings);
* **dense**: a day of a 1,000-device fleet at 1-minute intervals (1,440,000 readings);

and prints, per mode and fleet, bytes per reading (table + indexes; on TimescaleDB before and after compressing
every chunk, as the compression policy does a week on) and the same run's query latency (p50/p99) of a raw day of
one device and of hourly buckets over a week. The physical floor is printed beside them: 16 bytes (a time and a
value) uncompressed. Targets (issue 15): ≤ 80 bytes/reading plain, ≤ 10 compressed.

Plain mode uses MIMAMORI_BENCH_PLAIN_DSN (default: the local server), TimescaleDB mode MIMAMORI_BENCH_TSDB_DSN (an
admin DSN of a server that preloads it; the mode is skipped, saying so, when unset or without the extension).
Several runs (--runs): the median and range of each figure. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from devices import load_catalogue, sync_catalogue, upsert_tenant
from devices.series_queries import bucketed_series, raw_series
from ingest.series_numbers import series_numbers
from mimamori.migrate import migrate, timescaledb_available
from mimamori.settings import Settings

out = Console(stderr=True, width=150)
TARGETS = {"plain": 80.0, "compressed": 10.0}
FLOOR = 16.0  # bytes of a reading's time and value, uncompressed
JST = datetime.fromisoformat("2000-01-03T00:00:00+09:00")


@dataclass(frozen=True)
class Fleet:
    name: str
    devices: int
    device_type: str
    metric: str
    step: timedelta
    span: timedelta
    start: tuple[float, float]  # the range each device's true value starts in
    drift: float  # standard deviation of the true value's change per step (a random walk)
    noise: float  # standard deviation of the sensor's noise on each reading
    decimals: int  # what the sensor reports, as simulators/sensors.py sends it

    @property
    def readings(self) -> int:
        return self.devices * int(self.span / self.step)


# Readings as the hub's own simulators send them (simulators/sensors.py): water levels to the centimetre with 4 mm
# of noise (river gauges publish metres to two decimals), soil moisture to 0.001 with 0.002 of noise. The true value
# wanders: a river by a centimetre per 10 minutes (65 cm over a month), the soil by a little per minute.
FLEETS = (
    Fleet(
        "gauges",
        200,
        "river_gauge",
        "water_level",
        timedelta(minutes=10),
        timedelta(days=30),
        start=(0.5, 3.0),
        drift=0.01,
        noise=0.004,
        decimals=2,
    ),
    Fleet(
        "dense",
        1000,
        "soil_moisture",
        "soil_moisture",
        timedelta(minutes=1),
        timedelta(days=1),
        start=(0.15, 0.45),
        drift=0.0005,
        noise=0.002,
        decimals=3,
    ),
)


def _scratch(admin_dsn: str) -> str:
    name = f"mimamori_bench_storage_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def _drop(admin_dsn: str, dsn: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')


def _rows(fleet: Fleet, end: datetime, numbers: list[int]) -> Iterator[tuple[datetime, float, int, int]]:
    """The fleet's readings in the order ingest writes them: every device's reading of a time step, step by step."""
    rng = random.Random(7)
    steps = int(fleet.span / fleet.step)
    levels = [rng.uniform(*fleet.start) for _ in range(fleet.devices)]
    for i in range(steps):
        t = end - fleet.step * (steps - i)
        for d in range(fleet.devices):
            levels[d] = max(0.0, levels[d] + rng.gauss(0, fleet.drift))
            value = round(max(0.0, levels[d] + rng.gauss(0, fleet.noise)), fleet.decimals)
            # The delay as ingest stores it, in hundredths of a second: the link's, tens of milliseconds to seconds.
            yield t, value, numbers[d], round(rng.expovariate(1 / 400) / 10)


def load(dsn: str, fleet: Fleet, end: datetime, progress: Progress) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        sync_catalogue(conn, load_catalogue())
        upsert_tenant(conn, "toyota-city", "Toyota City", "operator")
        devices = [f"{fleet.name}-{d:04d}" for d in range(fleet.devices)]
        with conn.cursor().copy("COPY devices (id, tenant_id, device_type) FROM STDIN") as copy:
            for device in devices:
                copy.write_row((device, "toyota-city", fleet.device_type))
        found = series_numbers(conn, [(d, fleet.metric) for d in devices])
        numbers = [found[d, fleet.metric] for d in devices]
        task = progress.add_task(f"loading {fleet.name}", total=fleet.readings)
        # One transaction per time step's batch, like ingest's (a single COPY would pack the index tighter).
        batch = fleet.devices
        rows = _rows(fleet, end, numbers)
        for n in range(0, fleet.readings, batch):
            with conn.transaction(), conn.cursor().copy(_COPY) as copy:
                for _ in range(batch):
                    copy.write_row(next(rows))
            if n % 50_000 < batch:
                progress.update(task, completed=n)
        progress.update(task, completed=fleet.readings)
        conn.execute("VACUUM ANALYZE series_readings")


_COPY = "COPY series_readings (time, value, series_id, delay_cs) FROM STDIN"


def readings_bytes(conn: psycopg.Connection, timescaledb: bool) -> int:
    """Bytes of the readings (table, indexes, TOAST; every chunk on TimescaleDB) and of the series they name."""
    size = "hypertable_size('series_readings')" if timescaledb else "pg_total_relation_size('series_readings')"
    return int(conn.execute(f"SELECT {size} + pg_total_relation_size('series')").fetchone()[0])  # type: ignore[index]


def pause_jobs(dsn: str) -> None:
    """The policies would compress a month's chunks while it is loaded in a minute, and the rest of the load
    would land beside them uncompressed; in production they run a week after the chunk's last reading."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs WHERE job_id >= 1000"
        )


def compress_all(conn: psycopg.Connection) -> int:
    rows = conn.execute("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('series_readings') c")
    return len(rows.fetchall())


def query_latency(conn: psycopg.Connection, fleet: Fleet, end: datetime, mode: str, n: int) -> dict[str, float]:
    """p50/p99 in ms of a raw day of one device, and of hourly buckets over a week (from the aggregate on
    TimescaleDB, as the API would read them)."""
    rng = random.Random(3)
    timings: dict[str, list[float]] = {"raw_day": [], "hourly_week": []}
    view = "readings_1h" if mode == "timescaledb" else None
    for _ in range(n):
        device = f"{fleet.name}-{rng.randrange(fleet.devices):04d}"
        started = time.perf_counter()
        raw_series(conn, device, None, fleet.metric, end - timedelta(days=1), end, 100_000)
        timings["raw_day"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        start = end - timedelta(days=7)
        bucketed_series(conn, device, None, fleet.metric, start, end, timedelta(hours=1), "avg", JST, view, 100_000)
        timings["hourly_week"].append((time.perf_counter() - started) * 1000)
    result = {}
    for name, values in timings.items():
        values.sort()
        result[f"{name}_p50_ms"] = statistics.median(values)
        result[f"{name}_p99_ms"] = values[min(len(values) - 1, int(len(values) * 0.99))]
    return result


def run_once(admin_dsn: str, mode: str, fleet: Fleet, queries: int, progress: Progress) -> dict[str, float]:
    dsn = _scratch(admin_dsn)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        migrate(Settings(database_url=dsn, timescaledb="on" if mode == "timescaledb" else "off"))  # type: ignore[arg-type]
        if mode == "timescaledb":
            pause_jobs(dsn)
        load(dsn, fleet, end, progress)
        with psycopg.connect(dsn, autocommit=True) as conn:
            figures: dict[str, float] = {"readings": float(fleet.readings)}
            figures["bytes_per_reading"] = readings_bytes(conn, mode == "timescaledb") / fleet.readings
            if mode == "timescaledb":
                conn.execute("CALL refresh_continuous_aggregate('series_readings_1h', NULL, NULL)")
            figures |= query_latency(conn, fleet, end, mode, queries)
            if mode == "timescaledb":
                compress_all(conn)
                conn.execute("VACUUM ANALYZE series_readings")
                figures["compressed_bytes_per_reading"] = readings_bytes(conn, True) / fleet.readings
                compressed = query_latency(conn, fleet, end, mode, queries)
                figures |= {f"compressed_{k}": v for k, v in compressed.items()}
        return figures
    finally:
        _drop(admin_dsn, dsn)


def available(admin_dsn: str | None, mode: str) -> str | None:
    """Why a mode cannot run here (None when it can)."""
    if not admin_dsn:
        return "MIMAMORI_BENCH_TSDB_DSN is not set"
    try:
        with psycopg.connect(admin_dsn, connect_timeout=5) as conn:
            if mode == "timescaledb" and not timescaledb_available(conn):
                return "the server has no TimescaleDB"
    except psycopg.Error as exc:
        return f"cannot connect: {type(exc).__name__}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200, help="queries per latency figure")
    parser.add_argument("--fleet", choices=[f.name for f in FLEETS], action="append")
    args = parser.parse_args()
    servers = {
        "plain": os.environ.get("MIMAMORI_BENCH_PLAIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
        "timescaledb": os.environ.get("MIMAMORI_BENCH_TSDB_DSN"),
    }
    fleets = [f for f in FLEETS if not args.fleet or f.name in args.fleet]
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    skipped: dict[str, str] = {}
    with Progress(console=out, transient=True) as progress:
        for mode, admin in servers.items():
            why = available(admin, mode)
            if why:
                skipped[mode] = why
                out.print(f"[yellow]{mode} mode skipped: {why}[/]")
                continue
            for fleet in fleets:
                for _ in range(args.runs):
                    figures = run_once(admin, mode, fleet, args.queries, progress)  # type: ignore[arg-type]
                    slot = results.setdefault(mode, {}).setdefault(fleet.name, {})
                    for key, value in figures.items():
                        slot.setdefault(key, []).append(value)
    summary = _summarise(results)
    _print_table(summary, args.runs)
    print(
        json.dumps(
            {
                "bench": "storage",
                "date": datetime.now(UTC).date().isoformat(),
                "runs": args.runs,
                "targets_bytes_per_reading": TARGETS,
                "floor_bytes_per_reading": FLOOR,
                "skipped": skipped,
                "results": summary,
            }
        ),
        flush=True,
    )


def _summarise(results: dict[str, dict[str, dict[str, list[float]]]]) -> dict[str, dict[str, dict[str, object]]]:
    return {
        mode: {
            fleet: {
                key: {"median": round(statistics.median(v), 2), "min": round(min(v), 2), "max": round(max(v), 2)}
                for key, v in figures.items()
            }
            for fleet, figures in fleets.items()
        }
        for mode, fleets in results.items()
    }


def _print_table(summary: dict[str, dict[str, dict[str, dict[str, float]]]], runs: int) -> None:
    table = Table(title=f"Storage per reading and query latency ({runs} runs: median, and range in brackets)")
    for column in ("mode", "fleet", "bytes/reading", "target", "raw day p99 ms", "hourly week p99 ms"):
        table.add_column(column)

    def cell(figures: dict[str, dict[str, float]], key: str) -> str:
        f = figures.get(key)
        return "" if f is None else f"{f['median']:g} [{f['min']:g}–{f['max']:g}]"

    for mode, fleets in summary.items():
        for fleet, figures in fleets.items():
            table.add_row(
                mode,
                fleet,
                cell(figures, "bytes_per_reading"),
                f"≤ {TARGETS['plain']:g}" if mode == "plain" else "",
                cell(figures, "raw_day_p99_ms"),
                cell(figures, "hourly_week_p99_ms"),
            )
            if "compressed_bytes_per_reading" in figures:
                table.add_row(
                    f"{mode}, compressed",
                    fleet,
                    cell(figures, "compressed_bytes_per_reading"),
                    f"≤ {TARGETS['compressed']:g}",
                    cell(figures, "compressed_raw_day_p99_ms"),
                    cell(figures, "compressed_hourly_week_p99_ms"),
                )
    table.add_row("physical floor", "", f"{FLOOR:g} (time + value)", "", "", "")
    out.print(table)


if __name__ == "__main__":
    main()
