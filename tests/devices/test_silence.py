"""The one rule of silence (devices/silence.py): pure, then its SQL form held to the same answers in PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices import upsert_device, upsert_tenant
from devices.silence import Silence, SilencePolicy, judge, reporting_interval, silent_sql
from mimamori.settings import Settings

NOW = datetime(2026, 9, 12, 6, 0, tzinfo=UTC)
TEN_MIN = timedelta(minutes=10)
CRISIS = {"observation_start_m": 1.0, "danger_m": 3.0}
POLICY = SilencePolicy(after_intervals=3.0, quiet_interval=timedelta(days=1))

# (case, status, online, heard how long ago, registered interval, site metadata, latest water level, silent?)
CASES: list[tuple[str, str, bool | None, timedelta | None, timedelta, dict[str, object], float | None, bool]] = [
    ("heard two intervals ago", "active", True, 2 * TEN_MIN, TEN_MIN, {}, None, False),
    ("heard exactly three intervals ago", "active", True, 3 * TEN_MIN, TEN_MIN, {}, None, False),
    (
        "heard just over three intervals ago",
        "active",
        None,
        3 * TEN_MIN + timedelta(seconds=1),
        TEN_MIN,
        {},
        None,
        True,
    ),
    ("never heard", "active", None, None, TEN_MIN, {}, None, True),
    ("said it went offline", "active", False, timedelta(minutes=1), TEN_MIN, {}, None, True),
    ("in maintenance and long quiet", "maintenance", False, timedelta(days=9), TEN_MIN, {}, None, False),
    ("retired and never heard", "retired", None, None, TEN_MIN, {}, None, False),
    ("crisis gauge below its start, quiet 20 h", "active", True, timedelta(hours=20), TEN_MIN, CRISIS, 0.4, False),
    (
        "crisis gauge below its start, quiet 3 days + 1 s",
        "active",
        True,
        timedelta(days=3, seconds=1),
        TEN_MIN,
        CRISIS,
        0.4,
        True,
    ),
    ("crisis gauge above its start, quiet an hour", "active", True, timedelta(hours=1), TEN_MIN, CRISIS, 1.2, True),
    ("crisis gauge with no level yet, quiet an hour", "active", True, timedelta(hours=1), TEN_MIN, CRISIS, None, True),
    ("a standard gauge low in the river, quiet an hour", "active", True, timedelta(hours=1), TEN_MIN, {}, 0.1, True),
    (
        "a text observation start is not a number",
        "active",
        True,
        timedelta(hours=1),
        TEN_MIN,
        {"observation_start_m": "1.0"},
        0.4,
        True,
    ),
]


def _judge(status, online, ago, interval, meta, level) -> Silence:
    heard = None if ago is None else NOW - ago
    return judge(
        status=status, online=online, heard=heard, expected=interval, metadata=meta, level=level, now=NOW, policy=POLICY
    )


@pytest.mark.parametrize(("name", "status", "online", "ago", "interval", "meta", "level", "silent"), CASES)
def test_the_rule(name, status, online, ago, interval, meta, level, silent):
    assert _judge(status, online, ago, interval, meta, level).silent is silent, name


def test_silent_since_is_the_deadline_the_goodbye_or_unknown():
    overdue = _judge("active", True, timedelta(hours=1), TEN_MIN, {}, None)
    assert overdue == Silence(True, NOW - timedelta(hours=1) + 3 * TEN_MIN)
    goodbye = _judge("active", False, timedelta(minutes=1), TEN_MIN, {}, None)
    assert goodbye == Silence(True, NOW - timedelta(minutes=1))
    assert _judge("active", None, None, TEN_MIN, {}, None) == Silence(True, None)
    assert _judge("active", True, timedelta(minutes=5), TEN_MIN, {}, None) == Silence(False, None)


def test_a_crisis_gauge_below_its_observation_start_reports_daily_never_more_often_than_its_own_interval():
    assert reporting_interval(TEN_MIN, CRISIS, 0.99, POLICY) == timedelta(days=1)
    assert reporting_interval(TEN_MIN, CRISIS, 1.0, POLICY) == TEN_MIN  # at the start level: observing again
    assert reporting_interval(timedelta(days=2), CRISIS, 0.5, POLICY) == timedelta(days=2)


def test_the_numbers_come_from_the_settings():
    policy = SilencePolicy.from_settings(Settings(devices_silent_after_intervals=5.0))
    assert policy.after_intervals == 5.0 and policy.quiet_interval == timedelta(days=1)
    with pytest.raises(ValueError):
        SilencePolicy(after_intervals=0)


def test_the_sql_form_gives_the_same_answers(db):
    """silent_sql is what Grafana runs: the same rule, case for case, as judge()."""
    upsert_tenant(db, "t", "T")
    expected = {}
    for i, (name, status, online, ago, interval, meta, level, _silent) in enumerate(CASES):
        device = f"d{i}"
        upsert_device(
            db,
            device_id=device,
            tenant_id="t",
            device_type="river_gauge_crisis",
            status=status,
            expected_interval=interval,
            metadata=meta,
        )
        if ago is not None:
            db.execute(
                "INSERT INTO device_liveness (device_id, last_seen, online) VALUES (%s, %s, %s)",
                (device, NOW - ago, online),
            )
        if level is not None:
            db.execute(
                "INSERT INTO latest_readings (device_id, metric, time, value) VALUES (%s, 'water_level', %s, %s)",
                (device, NOW - timedelta(days=5), level),
            )
        expected[device] = (name, _judge(status, online, ago, interval, meta, level))
    silent, since = silent_sql(POLICY, now="%(now)s::timestamptz")
    rows = db.execute(
        f"SELECT d.id, {silent}, {since} FROM devices d LEFT JOIN device_liveness l ON l.device_id = d.id",
        {"now": NOW},
    ).fetchall()
    assert len(rows) == len(CASES)
    for device, is_silent, silent_since in rows:
        name, python = expected[device]
        assert (bool(is_silent), silent_since) == (python.silent, python.since), name
