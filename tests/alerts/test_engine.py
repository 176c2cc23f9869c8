"""The engine on the real database: alerts raised, escalated and resolved once each; restart; silence; rules
reloaded without a restart."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts import Action, AlertEngine, act
from mimamori.settings import Settings
from tests.alerts_helpers import T0, add_gauges, clean_alert_tables, levels, store, write_rules


@pytest.fixture
def alert_settings(settings: Settings, tmp_path) -> Settings:
    return settings.model_copy(update={"alerts_rules_dir": str(write_rules(tmp_path / "rules"))})


@pytest.fixture
def gauges(db, city):
    clean_alert_tables(db)
    add_gauges(db, ("g1", "toyota-city", 137.179, 35.094), ("g2", "acme", 137.18, 35.095))
    return db


def feed(engine: AlertEngine, db, observations):
    """Commit readings, then hand them to the engine as the ingestor does."""
    for o in observations:
        store(db, [o])
        engine.evaluate_batch([o])


def alert_rows(db):
    return db.execute(
        "SELECT rule_id, subject, state, level, peak_level, tenant_id, ST_AsText(location), area IS NOT NULL"
        " FROM alerts ORDER BY id"
    ).fetchall()


def event_kinds(db):
    return [tuple(r) for r in db.execute("SELECT kind, level, previous_level FROM alert_events ORDER BY id")]


def test_one_alert_raised_escalated_deescalated_and_resolved(alert_settings, pool, gauges):
    engine = AlertEngine(alert_settings, pool)
    engine.reload(force=True)
    feed(engine, gauges, levels("g1", [3.0, 3.6, 4.6, 6.2, 6.3, 4.7, 3.0]))
    assert alert_rows(gauges) == [("river-level", "g1", "resolved", 2, 3, "toyota-city", "POINT(137.179 35.094)", True)]
    assert event_kinds(gauges) == [
        ("raised", 1, 0),
        ("escalated", 2, 1),
        ("escalated", 3, 2),
        ("deescalated", 2, 3),
        ("resolved", 0, 2),
    ]
    device_times = [r[0] for r in gauges.execute("SELECT device_time FROM alert_events ORDER BY id")]
    assert device_times[0] == T0 + timedelta(minutes=10)


def test_alert_belongs_to_the_device_tenant(alert_settings, pool, gauges):
    engine = AlertEngine(alert_settings, pool)
    engine.reload(force=True)
    feed(engine, gauges, levels("g2", [5.0]))
    assert [(r[1], r[5]) for r in alert_rows(gauges)] == [("g2", "acme")]


def test_restart_rebuilds_state_without_repeating_or_missing(alert_settings, pool, gauges):
    first = AlertEngine(alert_settings, pool)
    first.reload(force=True)
    feed(first, gauges, levels("g1", [4.6, 4.7]))
    assert event_kinds(gauges) == [("raised", 2, 0)]
    # more readings are committed while no engine runs (a crash between commit and evaluation)
    store(gauges, levels("g1", [6.1], start=T0 + timedelta(minutes=20)))
    second = AlertEngine(alert_settings, pool)
    second.reload(force=True)
    assert event_kinds(gauges) == [("raised", 2, 0), ("escalated", 3, 2)]
    third = AlertEngine(alert_settings, pool)
    third.reload(force=True)  # nothing new: nothing repeated
    assert len(event_kinds(gauges)) == 2
    assert third.state_of("river-level", "g1").level == 3


def test_an_alert_resolved_by_hand_is_opened_anew_at_the_next_change(alert_settings, pool, gauges):
    engine = AlertEngine(alert_settings, pool)
    engine.reload(force=True)
    feed(engine, gauges, levels("g1", [4.6, 4.7]))
    (alert_id,) = gauges.execute("SELECT id FROM alerts").fetchone()
    act(gauges, alert_id, Action.resolve, "operator-key", "checked on site", None)
    # the evaluator still stands at level 2; its next change (2 -> 3) finds no active alert: a new one is raised
    feed(engine, gauges, levels("g1", [6.1], start=T0 + timedelta(minutes=20)))
    assert event_kinds(gauges) == [("raised", 2, 0), ("resolved", 0, 2), ("raised", 3, 0)]
    assert [(r[2], r[3]) for r in alert_rows(gauges)] == [("resolved", 2), ("open", 3)]


def test_a_transition_from_a_level_the_store_does_not_hold_is_not_stored_and_rebuilds(alert_settings, pool, gauges):
    engine = AlertEngine(alert_settings, pool)
    engine.reload(force=True)
    feed(engine, gauges, levels("g1", [4.6, 4.7]))
    gauges.execute("UPDATE alerts SET level = 1")  # the store changed under the evaluator (not by the API)
    feed(engine, gauges, levels("g1", [6.1], start=T0 + timedelta(minutes=20)))
    # the evaluator's 'escalated 2 -> 3' does not start from the stored 1: nothing is guessed, a rebuild is due
    assert event_kinds(gauges) == [("raised", 2, 0)]
    assert engine.resync_pending
    engine.reload(force=True)  # what the loop does next: from the stored level to where the readings stand
    assert event_kinds(gauges) == [("raised", 2, 0), ("escalated", 3, 1)]
    assert engine.state_of("river-level", "g1").level == 3


def test_silence_rises_near_an_active_alert_and_clears_when_the_gauge_speaks(alert_settings, pool, gauges):
    clock = {"now": T0 + timedelta(minutes=5)}
    engine = AlertEngine(alert_settings, pool, clock=lambda: clock["now"])
    engine.reload(force=True)
    feed(engine, gauges, levels("g1", [1.0]) + levels("g2", [1.0]))
    assert engine.check_silence() == 0
    clock["now"] = T0 + timedelta(minutes=31)
    assert engine.check_silence() == 2  # both silent for more than 3 x 10 min
    assert {(r[1], r[3]) for r in alert_rows(gauges)} == {("g1", 1), ("g2", 1)}
    # g2 speaks again with a flood level: its river alert is active near the silent g1, whose level rises
    feed(engine, gauges, levels("g2", [5.0], start=T0 + timedelta(minutes=31)))
    assert engine.check_silence() == 1
    rows = {(r[0], r[1]): (r[2], r[3]) for r in alert_rows(gauges)}
    assert rows[("gauge-silent", "g1")] == ("open", 3)
    assert rows[("gauge-silent", "g2")][0] == "resolved"


def test_rule_file_change_applies_without_restart(alert_settings, pool, gauges, tmp_path):
    engine = AlertEngine(alert_settings, pool)
    engine.reload(force=True)
    feed(engine, gauges, levels("g1", [3.0]))
    assert alert_rows(gauges) == []
    folder = tmp_path / "rules"
    text = (
        (folder / "rules.yaml")
        .read_text()
        .replace(
            "levels_from_site: {1: standby_m, 2: caution_m, 3: evacuation_m, 4: danger_m}",
            "levels: [{level: 2, at: 2.5}]",
        )
    )
    (folder / "rules.yaml").write_text(text)
    engine.reload()
    # the rebuilt window already holds 3.0 m, above the new 2.5 m level: raised at once
    assert [(r[1], r[3]) for r in alert_rows(gauges)] == [("g1", 2)]


def test_broken_rule_file_keeps_the_rules_in_force(alert_settings, pool, gauges, tmp_path):
    engine = AlertEngine(alert_settings, pool)
    engine.reload(force=True)
    (tmp_path / "rules" / "rules.yaml").write_text("rules: [{id: x, kind: nonsense}]")
    engine.reload()
    feed(engine, gauges, levels("g1", [4.6]))
    assert [(r[1], r[3]) for r in alert_rows(gauges)] == [("g1", 2)]


def test_queue_overflow_rebuilds_instead_of_dropping(alert_settings, pool, gauges):
    small = alert_settings.model_copy(update={"alerts_queue_max": 1})
    engine = AlertEngine(small, pool)
    batch = levels("g1", [4.6])
    store(gauges, batch)
    engine.on_readings(batch)
    engine.on_readings(batch)  # the queue holds one batch: the second asks for a rebuild
    assert engine.stats.overflows == 1
    import threading

    stop = threading.Event()  # the real clock: readings of July are long silent, hence only the river rule
    worker = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    worker.start()
    try:
        assert engine.ready.wait(10)
        from tests.services import wait_until

        wait_until(lambda: river_alerts(gauges), what="the alert from the rebuilt state")
    finally:
        stop.set()
        worker.join(10)
    assert river_alerts(gauges) == [("g1", 2)]


def river_alerts(db):
    return [(r[1], r[3]) for r in alert_rows(db) if r[0] == "river-level"]


def test_a_crisis_gauge_in_dry_weather_is_not_silent_until_its_daily_report_is_missed(alert_settings, pool, gauges):
    """Below its observation-start level a crisis gauge may report daily (devices/silence.py): the silence rule
    follows the same rule as the map, so no alert for a gauge the map shows as merely quiet."""
    gauges.execute(
        "UPDATE devices SET metadata = metadata || '{\"observation_start_m\": 2.0}' WHERE id IN ('g1', 'g2')"
    )
    clock = {"now": T0 + timedelta(minutes=5)}
    engine = AlertEngine(alert_settings, pool, clock=lambda: clock["now"])
    engine.reload(force=True)
    feed(engine, gauges, levels("g1", [1.0]) + levels("g2", [2.5]))  # g1 dry, g2 above its observation start
    clock["now"] = T0 + timedelta(minutes=31)
    assert engine.check_silence() == 1  # only g2: it must report every 10 min up there
    assert {r[1] for r in alert_rows(gauges)} == {"g2"}
    clock["now"] = T0 + timedelta(hours=20)
    assert engine.check_silence() == 0  # g1 still within its day
    clock["now"] = T0 + timedelta(days=3, minutes=1)
    assert engine.check_silence() == 1  # three days without its daily report: silent
    assert {r[1] for r in alert_rows(gauges)} == {"g1", "g2"}
