"""The typhoon end to end: simulated devices → Mosquitto → ingest → PostgreSQL → the shipped alert rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from devices.seed import seed_city
from hub.compose import in_process_hub
from simulators import Credentials, Login, SimClock, Simulation, broker_target, city_devices, load_scenario, start_run
from tests.alerts_helpers import clean_alert_tables
from tests.services import wait_until


@pytest.mark.slow
def test_the_typhoon_raises_and_resolves_the_expected_alerts(settings, pool, db, broker):
    clean_alert_tables(db)
    seed_city(db)
    s = settings.model_copy(
        update={
            "alerts_tick_s": 0.5,
            "alerts_mqtt_username": broker.alerts_username,
            "alerts_mqtt_password": SecretStr(broker.alerts_password),
        }
    )
    scenario = load_scenario("typhoon")
    # The whole 24 h storm at 7200×: twelve seconds, device time ending now. The alert engine judges silence on
    # the scenario's timeline, as `mimamori up` makes it do.
    clock = SimClock.anchored(datetime.now(UTC), 7200, timedelta(hours=scenario.duration_h))
    with in_process_hub(s, pool, alerts=True, webhooks=False, clock=lambda: clock.sim_at(datetime.now(UTC))) as hub:
        fleet = city_devices()
        sim = Simulation(scenario, fleet, clock.sim_start, topic_prefix=s.mqtt_topic_prefix)
        expected = sum(len(m.payload) > 0 for m in Simulation(scenario, fleet, clock.sim_start).advance(clock.sim_end))
        run = start_run(sim, clock, broker_target(s), Credentials(default=Login(broker.username, broker.password)))
        assert run.wait(timeout=120) and run.error is None
        wait_until(lambda: hub.ingestor.stats.messages >= expected, timeout=60, what="every simulated message")
        wait_until(
            lambda: (
                db.execute("SELECT count(*) FROM alerts WHERE hazard = 'flood' AND state = 'resolved'").fetchone()[0]
                > 0
            ),
            timeout=30,
            what="a resolved flood alert",
        )

    alerts = db.execute(
        "SELECT hazard, rule_kind, device_id, peak_level, state FROM alerts ORDER BY device_id, rule_id"
    ).fetchall()
    flood = {(d, peak, state) for hazard, kind, d, peak, state in alerts if hazard == "flood" and kind == "threshold"}
    # The Yahagi at 高橋 passes caution, evacuation-judgement and danger levels: level 4 at its peak.
    assert ("yahagi-takahashi", 4) in {(d, peak) for d, peak, _ in flood}, alerts
    # One alert per (rule, gauge) for the whole storm, not one per reading.
    assert len(flood) == len({d for d, _, _ in flood})
    # The rivers fall again by the end: their alerts resolved themselves.
    assert any(state == "resolved" for _, _, state in flood)
    # The Asahi slope accelerates; the gauges knocked out mid-storm are reported silent.
    assert any(
        hazard == "landslide" and d and d.startswith(("ext-asahi", "tilt-asahi")) for hazard, _, d, _, _ in alerts
    ), alerts
    # (At 7200× three 10-minute intervals last a quarter of a second of wall time, less than the pipeline's lag on
    # a loaded machine, so other devices may be flagged briefly too; `make up` plays at 360×.)
    assert {"rain-obara", "tomoe-asuke"} <= {d for _, kind, d, _, _ in alerts if kind == "silence"}, alerts
    # Every level change is an event; raised once per alert.
    raised = db.execute("SELECT alert_id, count(*) FROM alert_events WHERE kind = 'raised' GROUP BY 1").fetchall()
    assert len(raised) == len(alerts) and all(n == 1 for _, n in raised)
