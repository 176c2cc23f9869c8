"""TimescaleDB as production runs it a week and a year after deployment (issue 15): compressed chunks receiving late
and duplicate batches, refresh policies run by their own jobs after readings arrive days and months late, and the
city's days in both modes. Each test makes a TimescaleDB database of its own, so it runs whenever the server at
MIMAMORI_TEST_ADMIN_DSN has the extension (whatever the run's mode) and is skipped, with the reason, where not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from dashboards import queries as grafana_queries
from dashboards.macros import TimeRange, VariableValue, render_sql
from devices import load_catalogue, sync_catalogue, upsert_device, upsert_tenant
from devices.keys import Role, create_key
from devices.series_plan import TIMESCALE_ORIGIN, aggregate_source, floor_to_bucket
from devices.series_queries import bucketed_series
from ingest import CommittedReadings, MqttIngestor
from mimamori.migrate import migrate
from mimamori.settings import Settings
from tests.services import create_scratch_database, drop_database, server_has_timescaledb, wait_until

pytestmark = pytest.mark.timescaledb

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
JST_ORIGIN = datetime.fromisoformat("2000-01-03T00:00:00+09:00")
TOPIC = "mimamori/v1/toyota-city/gauge-1/telemetry"
_COMPRESSED_CHUNKS = (
    "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'series_readings' AND is_compressed"
)


@pytest.fixture
def tsdb() -> Iterator[str]:
    if not server_has_timescaledb():
        pytest.skip(
            "no TimescaleDB on the test server (plain mode): set MIMAMORI_TEST_ADMIN_DSN to a server that preloads it"
        )
    dsn = create_scratch_database("mimamori_tsdb")
    try:
        assert migrate(Settings(database_url=dsn, timescaledb="on")).mode == "timescaledb"  # type: ignore[arg-type]
        with psycopg.connect(dsn, autocommit=True) as conn:
            sync_catalogue(conn, load_catalogue())
            upsert_tenant(conn, "toyota-city", "Toyota City", "operator")
            upsert_device(
                conn, device_id="gauge-1", tenant_id="toyota-city", device_type="river_gauge", lon=137.18, lat=35.09
            )
            upsert_device(
                conn, device_id="rain-1", tenant_id="toyota-city", device_type="rain_gauge", lon=137.36, lat=35.23
            )
        yield dsn
    finally:
        drop_database(dsn)


def _insert(conn: psycopg.Connection, device: str, metric: str, points: list[tuple[datetime, float]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(t, device, metric, v) for t, v in points],
        )


def _compress_old_chunks(conn: psycopg.Connection) -> int:
    """What the compression policy does a week after deployment, now: every chunk older than a day compressed."""
    rows = conn.execute(
        "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('series_readings', older_than => %s) c",
        (timedelta(days=1),),
    ).fetchall()
    return len(rows)


def _call(conn: psycopg.Connection, statement: str, *params: object) -> None:
    """CALL a procedure, again while the scheduler runs the same job (its refreshes hold a lock)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            conn.execute(statement, params)  # type: ignore[arg-type]
            return
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _refresh_all(conn: psycopg.Connection) -> None:
    for view in ("series_readings_10m", "series_readings_1h", "series_readings_1d"):
        _call(conn, f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")


def _run_jobs(conn: psycopg.Connection, proc: str) -> int:
    """Run the policies' own jobs, as the scheduler would."""
    jobs = [r[0] for r in conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s", (proc,))]
    for job in jobs:
        _call(conn, "CALL run_job(%s)", job)
    return len(jobs)


def _count(conn: psycopg.Connection, sql: str, params: tuple = ()) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _message(t: datetime, value: float) -> bytes:
    return json.dumps({"ts": t.isoformat(), "values": {"water_level": value}}).encode()


# -- bug 1: the ingestor against compressed chunks --------------------------------------------------------------------


def test_late_duplicate_and_mixed_batches_into_compressed_chunks_over_mqtt_and_http(tsdb, broker, settings):
    old = [(NOW - timedelta(days=10) + timedelta(minutes=10 * i), 1.0 + i / 1000) for i in range(144)]
    with psycopg.connect(tsdb, autocommit=True) as conn:
        _insert(conn, "gauge-1", "water_level", old)
        assert _compress_old_chunks(conn) >= 1
        compressed = _count(
            conn,
            _COMPRESSED_CHUNKS,
        )
        assert compressed >= 1
    s = settings.model_copy(update={"database_url": type(settings.database_url)(tsdb), "ingest_batch_ms": 400})
    committed = CommittedReadings()
    new: list[tuple[str, datetime]] = []
    committed.subscribe(lambda readings: new.extend((r.device_id, r.time) for r in readings))  # as alerts does
    pool = ConnectionPool(tsdb, min_size=1, max_size=4, open=True)
    ingestor = MqttIngestor(s, pool, committed=committed)
    ingestor.connect()
    stop = threading.Event()
    worker = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    worker.start()
    publisher = broker.client(client_id="compressed-late")
    late = [(t + timedelta(minutes=5), 2.0) for t, _ in old[:60]]  # new readings inside the compressed chunk
    try:
        # Mixed batches: each message a reading already stored (compressed) beside a new late one and a live one.
        infos = []
        for i in range(60):
            infos.append(publisher.publish(TOPIC, _message(old[i][0], 9.9), qos=1))  # duplicate: first value wins
            infos.append(publisher.publish(TOPIC, _message(*late[i]), qos=1))
            infos.append(publisher.publish(TOPIC, _message(NOW - timedelta(minutes=i), 3.0), qos=1))
        for info in infos:
            info.wait_for_publish(10)
        with psycopg.connect(tsdb, autocommit=True) as conn:
            wait_until(
                lambda: _count(conn, "SELECT count(*) FROM readings") == 144 + 60 + 60,
                timeout=60,
                what="every new reading beside the compressed ones",
            )
        # HTTP push: a retried batch of compressed readings, and one of late readings, into the same chunk.
        with psycopg.connect(tsdb, autocommit=True) as conn:
            key = create_key(conn, "toyota-city", Role.admin, "compressed-chunk test")[1]
        with TestClient(create_app(s, pool, committed)) as api:
            pushes = []
            ten = old[100:110]
            for payload in (
                [{"ts": t.isoformat(), "values": {"water_level": 7.0}} for t, _ in ten],
                [
                    {"ts": (t + timedelta(minutes=3)).isoformat(), "values": {"water_level": 4.0}}
                    for t, _ in old[100:110]
                ],
            ):
                body = json.dumps(payload)
                pushes.append(
                    api.post(
                        "/v1/telemetry",
                        params={"device": "gauge-1"},
                        content=body,
                        headers={"X-API-Key": key, "Content-Type": "application/json"},
                    )
                )
        assert [p.status_code for p in pushes] == [200, 200], [p.text for p in pushes]
        assert [(p.json()["stored"], p.json()["duplicates"]) for p in pushes] == [(0, 10), (10, 0)]
        assert worker.is_alive(), "the ingestor ended on a compressed chunk"
    finally:
        publisher.loop_stop()
        stop.set()
        worker.join(30)
        pool.close()
    with psycopg.connect(tsdb) as conn:
        assert _count(conn, "SELECT count(*) FROM readings") == 144 + 60 + 60 + 10
        assert _count(conn, "SELECT count(*) FROM dead_letters") == 0
        # The first value stored wins, in the compressed chunk too.
        assert _count(conn, "SELECT count(*) FROM readings WHERE value IN (9.9, 7.0)") == 0
    # Only new readings were forwarded to alerts: no duplicate of a compressed one.
    assert len(new) == len(set(new)) == 60 + 60 + 10
    assert not {t for _, t in new} & {t for t, _ in old}


# -- bug 2: aggregates right after late writes and policy runs --------------------------------------------------------


def _series(conn: psycopg.Connection, width: timedelta, origin: datetime, agg: str, view: str | None, span):
    start, end = floor_to_bucket(span[0], width, origin), floor_to_bucket(span[1], width, origin) + width
    return bucketed_series(conn, "gauge-1", None, "water_level", start, end, width, agg, origin, view, 100_000)


def _compare_every_width(conn: psycopg.Connection, spans: list[tuple[datetime, datetime]]) -> int:
    compared = 0
    for origin in (JST_ORIGIN, TIMESCALE_ORIGIN):
        for width in (timedelta(minutes=10), timedelta(hours=1), timedelta(days=1), timedelta(days=7)):
            view = aggregate_source(width, origin)
            assert view is not None
            for span in spans:
                for agg in ("avg", "min", "max", "sum", "count", "last"):
                    from_view = _series(conn, width, origin, agg, view, span)
                    from_raw = _series(conn, width, origin, agg, None, span)
                    assert [p[:2] for p in from_view] == [p[:2] for p in from_raw], (view, width, origin, agg, span)
                    assert [p[2] for p in from_view] == pytest.approx([p[2] for p in from_raw]), (view, agg, span)
                    compared += len(from_raw)
    return compared


def test_bucketed_answers_equal_raw_ones_after_late_writes_and_the_policies_own_runs(tsdb):
    with psycopg.connect(tsdb, autocommit=True) as conn:
        recent = [(NOW - timedelta(minutes=i), 1 + (i % 97) / 10) for i in range(3 * 1440)]
        _insert(conn, "gauge-1", "water_level", recent)
        assert _run_jobs(conn, "policy_refresh_continuous_aggregate") == 3
        assert _run_jobs(conn, "policy_compression") == 1
        # Then readings arrive days and months late (store-and-forward, a gauge back from repair), into
        # materialised and compressed ranges, and some only half a day of an hour or a day.
        spans = [(NOW - timedelta(days=3), NOW)]
        for days_late in (5, 20, 100, 300):
            at = NOW - timedelta(days=days_late)
            _insert(
                conn, "gauge-1", "water_level", [(at + timedelta(minutes=i), days_late + i / 100) for i in range(720)]
            )
            spans.append((at - timedelta(days=1), at + timedelta(days=2)))
        assert _run_jobs(conn, "policy_refresh_continuous_aggregate") == 3
        assert _compare_every_width(conn, spans) > 0
        # More of the same days, into buckets already materialised, and the policies run again.
        for days_late in (5, 100):
            at = NOW - timedelta(days=days_late) + timedelta(hours=12)
            _insert(conn, "gauge-1", "water_level", [(at + timedelta(minutes=i), 50 + i) for i in range(300)])
        assert _run_jobs(conn, "policy_compression") == 1
        assert _run_jobs(conn, "policy_refresh_continuous_aggregate") == 3
        assert _compare_every_width(conn, spans) > 0


# -- bug 3: the city's days, in the API and in Grafana ----------------------------------------------------------------


def test_daily_rain_is_a_day_of_the_city_in_both_modes(tsdb):
    day0 = datetime(2026, 11, 1, tzinfo=JST_ORIGIN.tzinfo)
    rain = [(day0 + timedelta(minutes=10 * i), 0.5 + (i % 7) / 2) for i in range(6 * 24 * 5)]
    with psycopg.connect(tsdb, autocommit=True) as conn:
        _insert(conn, "rain-1", "rainfall", rain)
        _run_jobs(conn, "policy_refresh_continuous_aggregate")
        _refresh_all(conn)  # the whole range: these days may lie beyond the policies' end
        window = TimeRange(day0, day0 + timedelta(days=5))
        answers = {}
        for timescaledb in (False, True):
            query = grafana_queries.daily_rain(JST_ORIGIN.isoformat(), timescaledb)
            rendered = render_sql(
                query,
                window,
                variables={"rain_gauge": VariableValue(("rain-1",))},
                interval=timedelta(hours=1),
                timescaledb=timescaledb,
            )
            answers[timescaledb] = [(t, float(v)) for t, _, v in conn.execute(rendered).fetchall()]
    expected = {}
    for t, v in rain:
        day = floor_to_bucket(t, timedelta(days=1), JST_ORIGIN)
        expected[day] = expected.get(day, 0.0) + v
    assert [t for t, _ in answers[True]] == [t for t, _ in answers[False]] == sorted(expected)
    assert [v for _, v in answers[True]] == pytest.approx([v for _, v in answers[False]])
    assert [v for _, v in answers[False]] == pytest.approx([expected[d] for d in sorted(expected)])


# -- retention while the API serves ----------------------------------------------------------------------------------


def test_retention_drops_old_chunks_while_the_api_serves_and_the_aggregates_keep_their_days(tsdb, settings):
    with psycopg.connect(tsdb, autocommit=True) as conn:
        month = [(NOW - timedelta(hours=h), 1 + h % 24) for h in range(30 * 24)]
        _insert(conn, "gauge-1", "water_level", month)
        _refresh_all(conn)
        # Then a retention of 10 days (the scheduler may run its job at once; the test runs it below regardless).
        short = Settings(database_url=tsdb, timescaledb="on", retention_days=10, ingest_max_past_days=7)  # type: ignore[arg-type]
        migrate(short)
        key = create_key(conn, "toyota-city", Role.admin, "retention test")[1]
    s = settings.model_copy(
        update={"database_url": type(settings.database_url)(tsdb), "retention_days": 10, "ingest_max_past_days": 7}
    )
    pool = ConnectionPool(tsdb, min_size=1, max_size=4, open=True)
    statuses: list[int] = []
    done = threading.Event()
    start = (NOW - timedelta(days=30)).isoformat()
    try:
        with TestClient(create_app(s, pool)) as api:

            def serve() -> None:
                while not done.is_set():
                    for params in ({"start": start}, {"start": start, "bucket": "1d"}):
                        answer = api.get("/v1/devices/gauge-1/readings", params=params, headers={"X-API-Key": key})
                        statuses.append(answer.status_code)

            reader = threading.Thread(target=serve, daemon=True)
            reader.start()
            with psycopg.connect(tsdb, autocommit=True) as conn:
                wait_until(lambda: len(statuses) >= 4, timeout=30, what="the API serving before the drop")
                assert _run_jobs(conn, "policy_retention") == 1
                raw_left = _count(conn, "SELECT count(*) FROM readings")
            wait_until(lambda: len(statuses) >= 12, timeout=30, what="the API serving after the drop")
            done.set()
            reader.join(30)
            raw = api.get("/v1/devices/gauge-1/readings", params={"start": start}, headers={"X-API-Key": key})
            daily = api.get(
                "/v1/devices/gauge-1/readings", params={"start": start, "bucket": "1d"}, headers={"X-API-Key": key}
            )
    finally:
        done.set()
        pool.close()
    assert set(statuses) == {200}
    # Chunks wholly older than 10 days are gone (a chunk spans MIMAMORI_CHUNK_DAYS, so up to one more is kept)...
    chunk_hours = Settings().chunk_days * 24
    assert 10 * 24 <= raw_left <= 10 * 24 + chunk_hours
    assert raw_left < 30 * 24
    assert len(raw.json()["series"]["water_level"]) == raw_left
    # ... while the daily aggregate keeps the month.
    assert len(daily.json()["series"]["water_level"]) >= 30


def test_between_a_late_write_and_the_next_refresh_the_api_reads_raw_rows(tsdb):
    from devices.series import read_series
    from devices.series_plan import plan

    def answer(conn: psycopg.Connection, mode: str, at: datetime):
        request = plan(
            start=at - timedelta(days=1),
            end=at + timedelta(days=1),
            bucket="1h",
            agg="sum",
            now=NOW,
            default_span=timedelta(days=1),
            origin=JST_ORIGIN,
            max_points=1000,
        )
        return read_series(
            conn,
            device_id="gauge-1",
            tenant_id=None,
            metric="water_level",
            request=request,
            origin=JST_ORIGIN,
            storage_mode=mode,
            max_points=1000,
        )

    at = NOW - timedelta(days=40)
    with psycopg.connect(tsdb, autocommit=True) as conn:
        _insert(conn, "gauge-1", "water_level", [(at + timedelta(minutes=i), 1.0) for i in range(600)])
        _run_jobs(conn, "policy_refresh_continuous_aggregate")
        assert answer(conn, "timescaledb", at).source == "readings_1h"  # refreshed: the aggregate serves
        _insert(conn, "gauge-1", "water_level", [(at + timedelta(minutes=i, seconds=30), 2.0) for i in range(600)])
        late = answer(conn, "timescaledb", at)
        # Written since the refresh: raw rows answer from the first bucket that may lack readings on.
        assert late.source == "readings_1h+readings"
        assert late.points == answer(conn, "plain", at).points
        assert sum(v for *_, v in late.points) == pytest.approx(600 * 3.0)
        _run_jobs(conn, "policy_refresh_continuous_aggregate")
        again = answer(conn, "timescaledb", at)
        assert again.source == "readings_1h"
        assert [v for *_, v in again.points] == pytest.approx([v for *_, v in late.points])
