"""Every panel's SQL, expanded as Grafana expands it, runs against the real test database and finds the seeded data."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from dashboards import (
    DashboardOptions,
    TimeRange,
    VariableValue,
    auto_interval,
    build_dashboards,
    check_dashboards,
    query_count,
    render_sql,
)
from devices.queries import StateFilter, device_states
from devices.seed import seed_city
from devices.silence import SilencePolicy

NOW = datetime.now(UTC).replace(microsecond=0)
RANGE = TimeRange(NOW - timedelta(hours=24), NOW)
STEP = timedelta(minutes=10)
SILENT = "rain-inabu"  # last seen three days ago
NEVER_SEEN = "rain-obara"  # no liveness row at all
RAIN_FROM_HOUR = 12  # dry, then 2 mm every 10 minutes for the last 12 hours
STAND = "2-2"  # the stand devices/city_devices.yaml names for the Inabu forest sensors


def _series(device_type: str, metric: str, i: int) -> float | None:
    """The seeded value of a metric at step i (0 = 24 h ago)."""
    if metric == "water_level":
        return 1.0 + 0.04 * i  # rises 0.24 m/h, through every threshold of the 高橋 ladder by the end
    if metric == "rainfall":
        return 2.0 if i >= RAIN_FROM_HOUR * 6 else 0.0
    if metric == "displacement":
        return 0.5 * i  # 3 mm/h: above the 2 mm/h warning band
    if metric in ("tilt_x", "tilt_y"):
        return 0.002 * i
    if metric == "stem_radius_change":
        return 50 * math.sin(i / 144 * 2 * math.pi)
    return {"soil_moisture": 0.3, "soil_temperature": 15.0, "air_temperature": 21.0, "humidity": 80.0}.get(
        metric, {"wind_speed": 3.0, "battery": 3.6}.get(metric)
    )


_METRICS = {
    "river_gauge": ("water_level", "battery"),
    "river_gauge_crisis": ("water_level", "battery"),
    "rain_gauge": ("rainfall", "battery"),
    "extensometer": ("displacement",),
    "tiltmeter": ("tilt_x", "tilt_y"),
    "soil_moisture": ("soil_moisture", "soil_temperature"),
    "weather_station": ("rainfall", "air_temperature", "humidity", "wind_speed"),
    "dendrometer": ("stem_radius_change", "air_temperature"),
}


@pytest.fixture
def seeded(db):
    seed_city(db)
    devices = db.execute("SELECT id, device_type FROM devices ORDER BY id").fetchall()
    start = NOW - timedelta(hours=24) + timedelta(minutes=5)
    rows = []
    for device_id, device_type in devices:
        for metric in _METRICS[device_type]:
            for i in range(144):
                at = start + i * STEP
                rows.append((at, device_id, metric, _series(device_type, metric, i), at + timedelta(seconds=2)))
    with db.cursor() as cur, cur.copy("COPY readings (time, device_id, metric, value, received_at) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)
    db.execute(
        "INSERT INTO latest_readings (device_id, metric, time, value)"
        " SELECT DISTINCT ON (device_id, metric) device_id, metric, time, value FROM readings"
        " ORDER BY device_id, metric, time DESC"
    )
    db.execute(
        "INSERT INTO device_liveness (device_id, last_seen, last_reading)"
        " SELECT device_id, max(time), max(time) FROM readings WHERE device_id <> %s GROUP BY device_id",
        (NEVER_SEEN,),
    )
    db.execute("UPDATE device_liveness SET last_seen = %s WHERE device_id = %s", (NOW - timedelta(days=3), SILENT))
    for reason in ("unknown_device", "bad_payload", "bad_payload"):
        db.execute(
            "INSERT INTO dead_letters (received_at, source, topic, reason, detail)"
            " VALUES (%s, 'mqtt', 'mimamori/v1/acme/x/telemetry', %s, 'seeded')",
            (NOW - timedelta(hours=1), reason),
        )
    alert_id = db.execute(
        "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, title_ja, device_id, tenant_id, state,"
        " level, peak_level, value, opened_at, location)"
        " VALUES ('river-level', 'yahagi-takahashi', 'threshold', 'flood', 'Yahagi at Takahashi: evacuation level',"
        " '矢作川 高橋 避難判断水位', 'yahagi-takahashi', 'toyota-city', 'open', 3, 3, 6.1, %s,"
        " ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326)) RETURNING id",
        (NOW - timedelta(hours=2),),
    ).fetchone()[0]
    db.execute(
        "INSERT INTO alert_events (alert_id, kind, at, level, state, actor)"
        " VALUES (%s, 'raised', %s, 3, 'open', 'rule:x')",
        (alert_id, NOW - timedelta(hours=2)),
    )
    db.execute("DELETE FROM stands WHERE stand_id = %s", (STAND,))
    db.execute(
        "INSERT INTO stands (stand_id, rinpan, shohan, species_1, age_1, area_ha, geom) VALUES (%s, 2, 2, 'sugi', 45,"
        " 1.2, ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(137.504, 35.2145), 4326), 0.002)))",
        (STAND,),
    )
    yield db
    db.execute("DELETE FROM stands WHERE stand_id = %s", (STAND,))


def _runs(conn):
    runs = check_dashboards(conn, build_dashboards(DashboardOptions()), RANGE, timescaledb=False)
    return {(r.dashboard, r.panel, r.ref_id, r.variables.get("gauge", ())): r for r in runs}, runs


def test_every_panel_query_runs_and_returns_rows_on_seeded_data(seeded):
    _, runs = _runs(seeded)
    failed = [f"{r.dashboard} / {r.panel} / {r.ref_id}: {r.error or 'no rows'}" for r in runs if not (r.ok and r.rows)]
    assert not failed, "\n".join(failed)
    dashboards = build_dashboards(DashboardOptions())
    targets = sum(len(p["targets"]) for d in dashboards for p in d["panels"])
    assert len(runs) >= targets  # repeated panels run once per value
    for run in runs:
        if run.fmt == "time_series":
            assert "time" in run.columns, f"{run.dashboard} / {run.panel} has no time column: {run.columns}"
            assert run.first_row[run.columns.index("time")] is not None


def test_the_river_panel_repeats_per_gauge_with_that_station_s_thresholds(seeded):
    by_key, runs = _runs(seeded)
    gauges = {r.variables["gauge"] for r in runs if r.panel == "Water level · $gauge" and r.ref_id == "B"}
    assert gauges == {
        ("kago-fujioka",),
        ("tomoe-asuke",),
        ("yahagi-stadium",),
        ("yahagi-takahashi",),
        ("yahagi-togari",),
    }
    bands = by_key[("mimamori-rivers", "Water level · $gauge", "B", ("yahagi-takahashi",))]
    assert bands.rows == 2  # flat lines from the range's start to its end
    assert bands.columns == ("time", "standby", "caution", "evacuation", "danger")
    assert bands.first_row[1:] == (3.5, 4.5, 6.0, 6.8)


def test_the_gauges_table_puts_each_station_on_its_warning_level(seeded):
    interval = auto_interval(RANGE, 1000)
    dashboard = build_dashboards(DashboardOptions())[0]
    table_sql = dashboard["panels"][0]["targets"][0]["rawSql"]
    sql = render_sql(
        table_sql,
        RANGE,
        variables={"gauge": VariableValue(("yahagi-takahashi", "kago-fujioka"))},
        interval=interval,
        timescaledb=False,
    )
    rows = {r[0]: r for r in seeded.execute(sql).fetchall()}
    last = 1.0 + 0.04 * 143  # 6.72 m: above evacuation (6.0), below danger (6.8) at 高橋; above danger at 藤岡 (2.5)
    assert rows["yahagi-takahashi"][3] == pytest.approx(last)
    assert rows["yahagi-takahashi"][-1] == 3
    assert rows["kago-fujioka"][-1] == 4


def test_landslide_rate_is_displacement_per_hour(seeded):
    _, runs = _runs(seeded)
    rate = next(r for r in runs if r.panel == "Displacement rate")
    values = [row[2] for row in seeded.execute(rate.sql).fetchall()]
    assert values and all(v == pytest.approx(3.0) for v in values)


def test_rain_panels_add_up_the_seeded_rain(seeded):
    _, runs = _runs(seeded)
    now = next(r for r in runs if r.panel.startswith("60 minutes"))
    rows = {r[0]: r[1:] for r in seeded.execute(now.sql).fetchall()}
    assert rows["rain-asahi"] == (pytest.approx(12.0), pytest.approx(144.0))  # 6 and 72 readings of 2 mm
    event = next(r for r in runs if r.panel == "Rain since the event began")
    events = {r[0]: r for r in seeded.execute(event.sql).fetchall()}
    assert events["rain-asahi"][3] == pytest.approx(144.0)
    assert events["rain-asahi"][1] == NOW - timedelta(hours=12) + timedelta(minutes=5)


def test_silent_devices_are_listed(seeded):
    _, runs = _runs(seeded)
    silent = next(r for r in runs if r.panel == "Silent devices")
    listed = {row[0] for row in seeded.execute(silent.sql).fetchall()}
    assert listed == {SILENT, NEVER_SEEN}
    states = next(r for r in runs if r.panel == "Alerts and devices" and r.ref_id == "B")
    liveness = {row[0]: row[6] for row in seeded.execute(states.sql).fetchall()}
    assert liveness[SILENT] == "silent" and liveness["yahagi-takahashi"] == "reporting"


def test_the_panels_judge_silence_as_the_hub_does_crisis_gauges_included(seeded):
    """Grafana's panels run devices/silence.py's rule as SQL: the same devices silent as the API says."""
    quiet = NOW - timedelta(hours=5)
    # tomoe-asuke low in its river (below observation_start_m 1.0) may report daily; kago-fujioka, high, may not.
    seeded.execute("UPDATE latest_readings SET value = 0.4 WHERE device_id = 'tomoe-asuke' AND metric = 'water_level'")
    seeded.execute(
        "UPDATE device_liveness SET last_seen = %s, last_reading = %s"
        " WHERE device_id IN ('tomoe-asuke', 'kago-fujioka')",
        (quiet, quiet),
    )
    states, _more = device_states(seeded, StateFilter(limit=10_000), SilencePolicy(), NOW)
    hub = {s.device.id for s in states if s.silence.silent}
    assert "kago-fujioka" in hub and "tomoe-asuke" not in hub and {SILENT, NEVER_SEEN} <= hub
    _, runs = _runs(seeded)
    listed = next(r for r in runs if r.panel == "Silent devices")
    assert {row[0] for row in seeded.execute(listed.sql).fetchall()} == hub
    mapped = next(r for r in runs if r.panel == "Alerts and devices" and r.ref_id == "B")
    liveness = {row[0]: row[6] for row in seeded.execute(mapped.sql).fetchall()}
    assert {d for d, said in liveness.items() if said == "silent"} == hub & set(liveness)


def test_the_alert_map_has_the_open_alert_at_its_place(seeded):
    _, runs = _runs(seeded)
    alerts = next(r for r in runs if r.panel == "Alerts and devices" and r.ref_id == "A")
    assert alerts.rows == 1
    row = dict(zip(alerts.columns, alerts.first_row, strict=True))
    assert row["level"] == 3 and row["latitude"] == pytest.approx(35.094) and row["longitude"] == pytest.approx(137.179)


def test_a_failing_query_is_reported_not_raised(seeded):
    dashboards = build_dashboards(DashboardOptions())
    dashboards[0]["panels"][0]["targets"][0]["rawSql"] = "SELECT no_such_column FROM devices WHERE id IN ($gauge)"
    runs = check_dashboards(seeded, dashboards[:1], RANGE, timescaledb=False)
    bad = [r for r in runs if not r.ok]
    assert len(bad) == 1 and "no_such_column" in bad[0].error
    assert all(r.rows for r in runs if r.ok)  # the connection is still usable after the failure


def test_queries_run_read_only(seeded):
    dashboards = build_dashboards(DashboardOptions())
    dashboards[0]["panels"][0]["targets"][0]["rawSql"] = "DELETE FROM devices WHERE id IN ($gauge) RETURNING id"
    runs = check_dashboards(seeded, dashboards[:1], RANGE, timescaledb=False)
    assert "read-only" in next(r for r in runs if not r.ok).error
    assert seeded.execute("SELECT count(*) FROM devices").fetchone()[0] == 17


def test_the_cli_check_reports_every_query(seeded, database_url, monkeypatch, capsys):
    from hub.cli import main

    monkeypatch.setenv("MIMAMORI_DATABASE_URL", database_url)
    main(["grafana", "check", "--hours", "24", "--mode", "plain"])
    shown = capsys.readouterr().out
    assert "queries ran" in shown
    ran, total = shown.split(" queries ran")[0].split()[-3], shown.split(" queries ran")[0].split()[-1]
    assert ran == total
    # issue 17, item 7f: the progress bar counted runs against a total of panel queries (37/29); both are named now
    dashboards = build_dashboards(DashboardOptions())
    assert f"{total} queries ran ({query_count(dashboards)} panel queries; a repeated panel's queries run" in shown
    assert int(total) > query_count(dashboards)  # the city's gauges repeat the per-gauge panels


def test_progress_is_reported_once_per_panel_query_with_all_its_runs(seeded):
    dashboards = build_dashboards(DashboardOptions())
    calls: list[list] = []
    runs = check_dashboards(seeded, dashboards, RANGE, timescaledb=False, on_target=calls.append)
    assert len(calls) == query_count(dashboards)
    assert [r for batch in calls for r in batch] == runs
    assert max(len(batch) for batch in calls) > 1  # a repeated panel's query: one run per gauge
