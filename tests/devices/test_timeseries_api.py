"""`GET /v1/devices/{id}/readings`: raw and bucketed series, JSON and CSV, limits, tenants, both storage modes."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.series import read_series
from devices.series_plan import aggregate_source, ceil_to_bucket, floor_to_bucket, parse_bucket, plan
from mimamori.errors import ValidationError
from mimamori.migrate import migrate
from mimamori.settings import Settings
from tests.geo_support import api_client, role_keys
from tests.services import create_scratch_database, drop_database, server_has_timescaledb

JST = timezone(timedelta(hours=9))
ORIGIN = datetime(2000, 1, 3, tzinfo=JST)
T0 = datetime(2026, 11, 24, 22, 0, tzinfo=JST)  # 22:00 JST; readings every 10 min for 4 hours, past midnight


def _values() -> list[tuple[datetime, float]]:
    return [
        (T0 + timedelta(minutes=10 * i), round(3.0 + 0.1 * i + (0.37 if i % 3 == 0 else 0.0), 3)) for i in range(24)
    ]


def _insert(conn: psycopg.Connection, device: str, metric: str, points: list[tuple[datetime, float]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (%s, %s, %s, %s)",
            [(t, device, metric, v) for t, v in points],
        )


@pytest.fixture
def readings(db, city):
    _insert(db, "gauge-1", "water_level", _values())
    _insert(db, "gauge-1", "battery", [(T0, 3.6)])
    _insert(db, "acme-soil-1", "soil_moisture", [(T0, 0.31)])
    return _values()


@pytest.fixture
def keys(db, city):
    return role_keys(db)


def _series(client, device: str, headers, **params):
    return client.get(f"/v1/devices/{device}/readings", params=params, headers=headers)


# --- pure planning ---------------------------------------------------------------------------------------------


def test_buckets_are_parsed_and_checked():
    assert parse_bucket("10m") == timedelta(minutes=10)
    assert parse_bucket("1h") == timedelta(hours=1)
    assert parse_bucket("1d") == timedelta(days=1)
    for bad in ("10", "1w", "30s", "0m", "90s", "400d", "-1h"):
        with pytest.raises(ValidationError):
            parse_bucket(bad)


@given(
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([timedelta(minutes=10), timedelta(hours=1), timedelta(hours=3), timedelta(days=1)]),
)
def test_a_time_lies_in_its_floor_and_ceiling_bucket(t, width):
    low, high = floor_to_bucket(t, width, ORIGIN), ceil_to_bucket(t, width, ORIGIN)
    assert low <= t <= high
    assert high - low in (timedelta(0), width)
    assert (low - ORIGIN) % width == timedelta(0)


def test_a_request_is_widened_to_whole_jst_buckets():
    req = plan(
        start=datetime(2026, 11, 24, 22, 5, tzinfo=JST),
        end=datetime(2026, 11, 25, 1, 55, tzinfo=JST),
        bucket="1d",
        agg="sum",
        now=datetime(2026, 11, 26, tzinfo=UTC),
        default_span=timedelta(hours=24),
        origin=ORIGIN,
        max_points=100,
    )
    assert (req.start, req.end) == (datetime(2026, 11, 24, tzinfo=JST), datetime(2026, 11, 26, tzinfo=JST))


def test_too_many_buckets_are_refused_before_touching_the_database():
    with pytest.raises(ValidationError, match="at most 100 per request"):
        plan(
            start=None,
            end=None,
            bucket="10m",
            agg=None,
            now=T0,
            default_span=timedelta(days=1),
            origin=ORIGIN,
            max_points=100,
        )


def test_the_continuous_aggregate_chosen_tiles_the_bucket_exactly():
    utc_origin = datetime(2000, 1, 3, tzinfo=UTC)
    assert aggregate_source(timedelta(days=1), utc_origin) == "readings_1d"
    assert aggregate_source(timedelta(days=1), ORIGIN) == "readings_1h"  # JST days: UTC day rows would not fit
    assert aggregate_source(timedelta(hours=6), ORIGIN) == "readings_1h"
    assert aggregate_source(timedelta(minutes=30), ORIGIN) == "readings_10m"
    assert aggregate_source(timedelta(minutes=15), ORIGIN) is None  # falls back to raw readings
    assert aggregate_source(timedelta(hours=1), datetime(2000, 1, 3, 0, 30, tzinfo=JST)) == "readings_10m"


# --- over HTTP -------------------------------------------------------------------------------------------------


def test_raw_readings_in_a_range_are_served_as_json(database_url, readings, keys):
    with api_client(database_url) as client:
        r = _series(
            client,
            "gauge-1",
            keys["viewer"],
            metric="water_level",
            start=T0.isoformat(),
            end=(T0 + timedelta(minutes=30)).isoformat(),
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["value"] for p in body["series"]["water_level"]] == [v for _, v in readings[:3]]
    assert body["bucket_seconds"] is None
    assert set(body["series"]) == {"water_level"}


@pytest.mark.parametrize("agg", ["avg", "min", "max", "sum", "count", "last"])
def test_hourly_buckets_give_each_aggregate(database_url, readings, keys, agg):
    with api_client(database_url) as client:
        r = _series(
            client,
            "gauge-1",
            keys["forestry"],
            metric="water_level",
            bucket="1h",
            agg=agg,
            start=T0.isoformat(),
            end=(T0 + timedelta(hours=4)).isoformat(),
        )
    assert r.status_code == 200, r.text
    hours = [readings[i : i + 6] for i in range(0, 24, 6)]
    pick = {
        "avg": lambda h: statistics.fmean(v for _, v in h),
        "min": lambda h: min(v for _, v in h),
        "max": lambda h: max(v for _, v in h),
        "sum": lambda h: sum(v for _, v in h),
        "count": lambda h: len(h),
        "last": lambda h: h[-1][1],
    }[agg]
    got = r.json()["series"]["water_level"]
    assert [datetime.fromisoformat(p["time"]) for p in got] == [T0 + timedelta(hours=i) for i in range(4)]
    assert [p["value"] for p in got] == pytest.approx([pick(h) for h in hours])


def test_daily_buckets_are_japanese_calendar_days(database_url, readings, keys):
    with api_client(database_url) as client:
        r = _series(
            client,
            "gauge-1",
            keys["viewer"],
            metric="water_level",
            bucket="1d",
            agg="count",
            start=T0.isoformat(),
            end=(T0 + timedelta(hours=4)).isoformat(),
        )
    got = r.json()["series"]["water_level"]
    assert [(datetime.fromisoformat(p["time"]), p["value"]) for p in got] == [
        (datetime(2026, 11, 24, tzinfo=JST), 12),  # 22:00–23:50 JST
        (datetime(2026, 11, 25, tzinfo=JST), 12),  # 00:00–01:50 JST
    ]


def test_csv_is_served_by_parameter_or_accept_header(database_url, readings, keys):
    params = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(), "bucket": "30m", "agg": "max"}
    with api_client(database_url) as client:
        by_param = _series(client, "gauge-1", keys["viewer"], format="csv", **params)
        by_accept = client.get(
            "/v1/devices/gauge-1/readings", params=params, headers=keys["viewer"] | {"Accept": "text/csv"}
        )
    assert by_param.headers["content-type"].startswith("text/csv")
    assert by_param.text == by_accept.text
    rows = list(csv.reader(io.StringIO(by_param.text)))
    assert rows[0] == ["time", "metric", "value"]
    assert [r[1] for r in rows[1:]] == ["battery", "water_level", "water_level"]
    assert float(rows[2][2]) == max(v for _, v in readings[:3])


def test_more_points_than_the_limit_is_a_clear_error(database_url, readings, keys):
    span = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=4)).isoformat()}
    with api_client(database_url, timeseries_max_points=10) as client:
        raw = _series(client, "gauge-1", keys["viewer"], metric="water_level", **span)
        bucketed = _series(client, "gauge-1", keys["viewer"], bucket="10m", **span)
        fine = _series(client, "gauge-1", keys["viewer"], bucket="1h", **span)
    assert raw.status_code == 422
    assert "more than 10 points" in raw.json()["detail"]
    assert bucketed.status_code == 422
    assert "24 buckets of 10m in this range; at most 10 per request" in bucketed.json()["detail"]
    assert fine.status_code == 200


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"start": "2026-11-24T10:00:00"}, "needs a time zone"),
        ({"start": "2026-11-25T10:00:00Z", "end": "2026-11-24T10:00:00Z"}, "start must be before end"),
        ({"bucket": "7x"}, "is not like 10m"),
        ({"agg": "max"}, "agg needs a bucket"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(database_url, readings, keys, params, says):
    with api_client(database_url) as client:
        r = _series(client, "gauge-1", keys["viewer"], **params)
    assert r.status_code == 422
    assert says in r.json()["detail"]


def test_partners_see_only_their_own_tenants_series(database_url, readings, keys):
    with api_client(database_url) as client:
        theirs = _series(client, "acme-soil-1", keys["partner"], start=T0.isoformat())
        city = _series(client, "gauge-1", keys["partner"], start=T0.isoformat())
        nobody = client.get("/v1/devices/gauge-1/readings")
    assert theirs.status_code == 200
    assert theirs.json()["series"]["soil_moisture"][0]["value"] == 0.31
    assert city.status_code == 404
    assert nobody.status_code == 401


def test_an_unknown_device_is_404(database_url, readings, keys):
    with api_client(database_url) as client:
        assert _series(client, "no-such-gauge", keys["admin"]).status_code == 404


def test_a_visible_device_without_readings_in_range_is_an_empty_series_not_404(database_url, readings, keys):
    long_ago = {"start": "2001-01-01T00:00:00+09:00", "end": "2001-01-02T00:00:00+09:00"}
    with api_client(database_url) as client:
        raw = _series(client, "gauge-1", keys["admin"], **long_ago)
        bucketed = _series(client, "gauge-1", keys["admin"], bucket="1h", agg="avg", **long_ago)
        hidden = _series(client, "gauge-1", keys["partner"], bucket="1h", agg="avg", **long_ago)
    assert raw.status_code == 200 and raw.json()["series"] == {}
    assert bucketed.status_code == 200 and bucketed.json()["series"] == {}
    assert hidden.status_code == 404  # the city's gauge, bucketed too: not the partner's to know of


# --- TimescaleDB: the same answers from continuous aggregates --------------------------------------------------


@pytest.mark.timescaledb
@pytest.mark.services
def test_continuous_aggregates_give_the_same_answers_as_date_bin():
    if not server_has_timescaledb():
        pytest.skip("no TimescaleDB on the test server: set MIMAMORI_TEST_ADMIN_DSN to one that preloads it")
    dsn = create_scratch_database()
    try:
        migrate(Settings(database_url=dsn, timescaledb="on"))  # type: ignore[arg-type]
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO tenants (id, name) VALUES ('t', 't')")
            conn.execute("INSERT INTO device_types (id, name) VALUES ('g', 'g')")
            conn.execute("INSERT INTO devices (id, tenant_id, device_type) VALUES ('d', 't', 'g')")
            _insert(conn, "d", "water_level", _values())
            for view in ("series_readings_10m", "series_readings_1h", "series_readings_1d"):
                conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            for bucket in ("10m", "30m", "1h", "3h", "1d"):
                for agg in ("avg", "min", "max", "sum", "count", "last"):
                    req = plan(
                        start=T0,
                        end=T0 + timedelta(hours=4),
                        bucket=bucket,
                        agg=agg,
                        now=T0,
                        default_span=timedelta(days=1),
                        origin=ORIGIN,
                        max_points=1000,
                    )
                    args = {
                        "device_id": "d",
                        "tenant_id": None,
                        "metric": "water_level",
                        "request": req,
                        "origin": ORIGIN,
                        "max_points": 1000,
                    }
                    from_aggregate = read_series(conn, storage_mode="timescaledb", **args)
                    from_raw = read_series(conn, storage_mode="plain", **args)
                    assert from_aggregate.source.startswith("readings_")
                    assert [(t, m) for t, m, _ in from_aggregate.points] == [(t, m) for t, m, _ in from_raw.points]
                    assert [v for *_, v in from_aggregate.points] == pytest.approx([v for *_, v in from_raw.points])
    finally:
        drop_database(dsn)
