"""The series layout of migration 0060 (issue 15): readings keyed by a series number, the `readings` view readers
keep, the data migration from the old table (compressed chunks included), and the series numbers writers remember.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.series_numbers import forget, series_numbers
from mimamori.migrate import migrate
from mimamori.settings import Settings
from tests.services import create_scratch_database, drop_database, server_has_timescaledb

T0 = datetime(2026, 10, 1, tzinfo=UTC)
_SNAPSHOT = "SELECT time, device_id, metric, value, received_at FROM readings ORDER BY device_id, metric, time"


def _settings(dsn: str, mode: str) -> Settings:
    return Settings(database_url=dsn, timescaledb="on" if mode == "timescaledb" else "off")  # type: ignore[arg-type]


@pytest.fixture(params=["plain", pytest.param("timescaledb", marks=pytest.mark.timescaledb)])
def scratch(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    mode = str(request.param)
    if mode == "timescaledb" and not server_has_timescaledb():
        pytest.skip("no TimescaleDB on the test server: set MIMAMORI_TEST_ADMIN_DSN to one that preloads it")
    dsn = create_scratch_database("mimamori_series")
    try:
        yield dsn, mode
    finally:
        drop_database(dsn)


@pytest.fixture
def current(scratch: tuple[str, str]) -> Iterator[psycopg.Connection]:
    dsn, mode = scratch
    migrate(_settings(dsn, mode))
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def _old_layout_readings(conn: psycopg.Connection) -> int:
    """A month of hourly readings of two devices' two metrics in the table as it was before 0060, each received a
    few seconds to an hour after its time (to the microsecond, as the old column held it)."""
    conn.execute("INSERT INTO tenants (id, name) VALUES ('t', 'T')")
    conn.execute("INSERT INTO device_types (id, name) VALUES ('g', 'G')")
    conn.execute("INSERT INTO devices (id, tenant_id, device_type) VALUES ('gauge-1', 't', 'g'), ('rain-1', 't', 'g')")
    rows = [
        (T0 + timedelta(hours=h), device, metric, h * 0.25 + i, T0 + timedelta(hours=h, seconds=3 + (h * 7919) % 3600))
        for h in range(30 * 24)
        for i, (device, metric) in enumerate(
            [("gauge-1", "water_level"), ("gauge-1", "battery"), ("rain-1", "rain_10min"), ("rain-1", "battery")]
        )
    ]
    with conn.cursor().copy("COPY readings (time, device_id, metric, value, received_at) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return len(rows)


def test_0060_moves_every_reading_into_series_including_compressed_chunks(scratch):
    dsn, mode = scratch
    migrate(_settings(dsn, mode), until="0058")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('series')").fetchone()[0] is None  # the old layout
        stored = _old_layout_readings(conn)
        if mode == "timescaledb":  # what a deployment a week old has: most of the old hypertable compressed
            compressed = conn.execute(
                "SELECT compress_chunk(c) FROM show_chunks('readings', older_than => %s::timestamptz) c",
                (T0 + timedelta(days=20),),
            ).fetchall()
            assert len(compressed) >= 19
        before = conn.execute(_SNAPSHOT).fetchall()
    assert len(before) == stored

    report = migrate(_settings(dsn, mode))
    assert "0060_series" in report.applied

    with psycopg.connect(dsn, autocommit=True) as conn:
        after = conn.execute(_SNAPSHOT).fetchall()
        assert conn.execute("SELECT to_regclass('readings')::text").fetchone()[0] == "readings"
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'readings'").fetchone()[0] == "v"
        assert conn.execute("SELECT count(*) FROM series").fetchone()[0] == 4
        if mode == "timescaledb":
            # Real-time aggregates over the moved rows count every reading, each hour once.
            hourly = conn.execute("SELECT sum(count), count(*) FROM readings_1h").fetchone()
            assert hourly == (stored, stored)
    assert [r[:4] for r in after] == [r[:4] for r in before]
    # The time of receipt is kept to the hundredth of a second it is now stored in.
    worst = max(abs((a[4] - b[4]).total_seconds()) for a, b in zip(after, before, strict=True))
    assert worst <= 0.005


def test_the_readings_view_takes_inserts_copies_and_deletes_and_counts_no_duplicate(current):
    conn = current
    insert = "INSERT INTO readings (time, device_id, metric, value) VALUES (%s, 'gauge-1', 'water_level', %s)"
    assert conn.execute(insert, (T0, 1.5)).rowcount == 1
    assert conn.execute(insert, (T0, 9.9)).rowcount == 0  # stored once: the first value stays, not counted again
    with conn.cursor().copy("COPY readings (time, device_id, metric, value) FROM STDIN") as copy:
        for h in range(1, 4):
            copy.write_row((T0 + timedelta(hours=h), "gauge-1", "water_level", 1.5 + h))
        copy.write_row((T0, "rain-1", "rain_10min", 0.5))  # a new series, made on first use
    got = conn.execute("SELECT device_id, metric, value FROM readings ORDER BY device_id, time").fetchall()
    assert got == [("gauge-1", "water_level", v) for v in (1.5, 2.5, 3.5, 4.5)] + [("rain-1", "rain_10min", 0.5)]
    received = conn.execute("SELECT received_at - now() FROM readings WHERE device_id = 'rain-1'").fetchone()[0]
    assert abs(received.total_seconds()) < 60  # no received_at given: received now
    assert conn.execute("DELETE FROM readings WHERE device_id = 'gauge-1' AND time > %s", (T0,)).rowcount == 3
    assert conn.execute("SELECT count(*) FROM series_readings").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM series").fetchone()[0] == 2  # series stay: writers remember them


def test_the_delay_is_hundredths_of_a_second_and_saturates_at_248_days(current):
    conn = current

    def delay(received: timedelta) -> int:
        return int(conn.execute("SELECT reading_delay_cs(%s, %s)", (T0, T0 + received)).fetchone()[0])

    assert delay(timedelta(seconds=1.234)) == 123
    assert delay(timedelta(milliseconds=5.1)) == 1
    assert delay(timedelta(seconds=-2)) == -200  # a clock ahead of the hub's
    assert delay(timedelta(days=248)) == 248 * 86400 * 100
    assert delay(timedelta(days=300)) == 2**31 - 1
    assert delay(timedelta(days=-300)) == -(2**31)


def test_a_series_made_in_a_rolled_back_transaction_is_not_remembered(scratch):
    dsn, mode = scratch
    migrate(_settings(dsn, mode))
    with psycopg.connect(dsn) as conn:
        first = series_numbers(conn, [("gauge-1", "water_level")])[("gauge-1", "water_level")]
        conn.rollback()  # the batch was refused: its series went with it
        again = series_numbers(conn, [("gauge-1", "water_level")])[("gauge-1", "water_level")]
        assert again != first
        row = conn.execute("SELECT series_id FROM series WHERE device_id = 'gauge-1'").fetchone()
        assert row == (again,)
        conn.commit()
        # Committed now: a later transaction gets the same number, and a forgotten cache finds it again.
        assert series_numbers(conn, [("gauge-1", "water_level")]) == {("gauge-1", "water_level"): again}
        forget(conn)
        assert series_numbers(conn, [("gauge-1", "water_level")]) == {("gauge-1", "water_level"): again}
        conn.commit()


def test_concurrent_writers_making_the_same_new_series_get_one_number(scratch):
    dsn, mode = scratch
    migrate(_settings(dsn, mode))
    pairs = [("gauge-1", "water_level"), ("gauge-1", "battery"), ("rain-1", "rain_10min")]
    got: dict[str, dict[tuple[str, str], int]] = {}
    with psycopg.connect(dsn) as first, psycopg.connect(dsn) as second:
        got["first"] = series_numbers(first, pairs)  # made, not committed yet

        def other() -> None:  # waits on the first writer's rows, then finds them
            got["second"] = series_numbers(second, list(reversed(pairs)))
            second.commit()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # blocked on the uncommitted series, not making its own
        first.commit()
        thread.join(10)
        assert not thread.is_alive()
        assert got["second"] == got["first"]
        assert first.execute("SELECT count(*) FROM series").fetchone()[0] == 3
