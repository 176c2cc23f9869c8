"""The simulator as a fleet of devices through the real broker into the real database, with an ingestor running.

The faults scenario is played at high speed; every fault must end where the ingest contract says: dead letters
with reasons, duplicates stored once, a 5G outage's stored readings all stored with their own times, nothing
stored for a dropout, and every other reading stored exactly once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from devices import upsert_tenant
from devices.seed import seed_city
from ingest import MqttIngestor
from ingest.codecs import decode_telemetry
from mimamori.settings import Settings
from simulators import (
    SENML,
    Credentials,
    FaultKind,
    Login,
    SimClock,
    Simulation,
    broker_target,
    city_devices,
    load_scenario,
    start_run,
)
from tests.services import Mosquitto, wait_until


@pytest.fixture
def ingesting(settings: Settings, pool: ConnectionPool, db: psycopg.Connection, broker: Mosquitto) -> Iterator[None]:
    seed_city(db)
    upsert_tenant(db, "acme", "Acme Sensors", "partner")
    ingestor = MqttIngestor(settings, pool)
    ingestor.connect()
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    # Subscribed once a probe status message has been stored.
    probe = broker.client("probe-publisher")
    probe.publish(f"{settings.mqtt_topic_prefix}/toyota-city/rain-asahi/status", b"online", qos=1).wait_for_publish(5)
    wait_until(lambda: db.execute("SELECT count(*) FROM device_liveness").fetchone()[0] == 1, what="the probe")
    probe.disconnect()
    probe.loop_stop()
    db.execute("TRUNCATE device_liveness")
    yield
    stop.set()
    thread.join(timeout=30)


def play_scenario(settings: Settings, broker: Mosquitto, name: str, speed: float, fmt: str = "native"):
    """Play a scenario with one connection per city device; returns (run, every message it was to send)."""
    scenario = load_scenario(name)
    clock = SimClock.anchored(datetime.now(UTC), speed, timedelta(hours=scenario.duration_h))
    sim = Simulation(scenario, city_devices(), clock.sim_start, fmt=fmt, topic_prefix=settings.mqtt_topic_prefix)
    # The same seed and start give the same messages: this copy tells the test what was sent.
    expected = Simulation(scenario, city_devices(), clock.sim_start, fmt=fmt).advance(clock.sim_end)
    # Each device connects with its own client id; the login is the broker's test publisher account (or none).
    login = Credentials(default=Login(broker.username, broker.password))
    run = start_run(sim, clock, broker_target(settings), login)
    assert run.wait(timeout=120), "the scenario did not finish"
    assert run.error is None
    return run, expected


def decoded(m):
    return decode_telemetry(m.payload, m.content_type, m.time).readings


def readings_of(messages, *, device: str | None = None, faults=()) -> set[tuple[str, str, datetime]]:
    out = set()
    for m in messages:
        if (device and m.device_id != device) or m.fault in faults:
            continue
        for r in decoded(m):
            out.add((m.device_id, r.metric, r.time))
    return out


@pytest.mark.slow
def test_every_fault_of_the_faults_scenario_ends_where_the_ingest_contract_says(settings, broker, db, ingesting):
    run, sent = play_scenario(settings, broker, "faults", speed=3600)
    assert run.stats.errors == 0 and run.stats.refused == 0, run.stats.last_error
    assert run.stats.connections == len(city_devices())
    assert run.stats.messages == len(sent)

    skewed = [r.time > m.time for m in sent if m.fault == FaultKind.clock_skew for r in decoded(m)]
    dead_expected = {
        "out_of_range": 1,  # the extensometer's spike (its battery and signal in the same message are stored)
        "ts_future": skewed.count(True),  # every reading of the messages from two days ahead
        "ts_past": skewed.count(False),  # … and after a clock reset to ~2000
        "malformed": 2,  # the tiltmeter's two cut payloads
        "tenant_mismatch": 1,  # the crisis gauge on acme's topic
        "unknown_device": 1,  # … and on an unregistered device's topic
    }
    assert dead_expected["ts_future"] and dead_expected["ts_past"]
    total_dead = sum(dead_expected.values())
    # One dead letter per refused message, its refused readings counted per reason (ingest/rejections.py).
    wait_until(
        lambda: db.execute("SELECT coalesce(sum(rejected), 0) FROM dead_letters").fetchone()[0] >= total_dead,
        timeout=30,
        what="the dead letters",
    )
    rows = db.execute("SELECT reason, device_id, detail, reasons FROM dead_letters").fetchall()
    by_reason: dict[str, list[tuple[str, str]]] = {}
    counted: dict[str, int] = {}
    for _reason, device, detail, reasons in rows:
        for reason, summary in reasons.items():
            by_reason.setdefault(reason, []).append((device, detail))
            counted[reason] = counted.get(reason, 0) + summary["count"]
    assert counted == dead_expected
    assert all(detail for v in by_reason.values() for _, detail in v)  # every one says why
    assert {d for d, _ in by_reason["out_of_range"]} == {"ext-asahi-1"}
    assert {d for d, _ in by_reason["ts_future"] + by_reason["ts_past"]} == {"dendro-inabu-1"}
    assert {d for d, _ in by_reason["malformed"]} == {"tilt-asahi-1"}
    assert {d for d, _ in by_reason["unknown_device"]} == {"no-such-device"}

    # Everything else is stored exactly once: duplicates, the outage's burst, the stuck gauge.
    spiked = {(m.device_id, r.metric, r.time) for m in sent if m.fault == FaultKind.spike for r in decoded(m)} & {
        (d, "displacement", t) for d, _, t in readings_of(sent, device="ext-asahi-1")
    }
    rejected_whole = (FaultKind.malformed, FaultKind.foreign_topic, FaultKind.clock_skew)
    expected = readings_of(sent, faults=rejected_whole) - spiked
    assert len(spiked) == 1
    wait_until(
        lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] >= len(expected),
        timeout=30,
        what=f"{len(expected)} readings",
    )
    stored = {(d, m, t) for d, m, t in db.execute("SELECT device_id, metric, time FROM readings").fetchall()}
    assert stored == expected

    duplicated = [m for m in sent if m.fault == FaultKind.duplicate]
    assert duplicated and all(m.device_id == "soil-asahi-1" for m in duplicated)

    burst = next(m for m in sent if m.fault == FaultKind.outage_burst)
    held = json.loads(burst.payload)
    assert isinstance(held, list) and len(held) >= 12  # two hours of 10-min readings arrived in one message
    assert {("wx-inabu-1", metric, datetime.fromisoformat(s["ts"])) for s in held for metric in s["values"]} <= stored

    start = run.clock.sim_start
    rain_gap = db.execute(
        "SELECT count(*) FROM readings WHERE device_id = 'rain-asahi' AND time >= %s AND time < %s",
        (start + timedelta(hours=1), start + timedelta(hours=2)),
    ).fetchone()[0]
    assert rain_gap == 0  # the dropout: nothing, and the silence is what the hub sees

    stuck = db.execute(
        "SELECT count(DISTINCT value), count(*) FROM readings WHERE device_id = 'yahagi-stadium'"
        " AND metric = 'water_level' AND time >= %s AND time < %s",
        (start + timedelta(hours=1, minutes=1), start + timedelta(hours=3)),
    ).fetchone()
    assert stuck[0] == 1 and stuck[1] >= 10  # a flat line, stored as sent


@pytest.mark.slow
def test_the_typhoon_in_senml_through_the_broker_stores_every_reading(settings, broker, db, ingesting):
    # Half of the typhoon (its duration cut to 12 h) at 7200×: six seconds.
    scenario = replace(load_scenario("typhoon"), duration_h=12.0)
    clock = SimClock.anchored(datetime.now(UTC), 7200, timedelta(hours=12))
    sim = Simulation(scenario, city_devices(), clock.sim_start, fmt=SENML, topic_prefix=settings.mqtt_topic_prefix)
    sent = Simulation(scenario, city_devices(), clock.sim_start, fmt=SENML).advance(clock.sim_end)
    run = start_run(sim, clock, broker_target(settings), Credentials(default=Login(broker.username, broker.password)))
    assert run.wait(timeout=120) and run.error is None
    expected = readings_of(sent)
    wait_until(
        lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] >= len(expected),
        timeout=30,
        what=f"{len(expected)} readings",
    )
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    peak = db.execute(
        "SELECT max(value) FROM readings WHERE device_id = 'yahagi-takahashi' AND metric = 'water_level'"
    ).fetchone()[0]
    assert peak > 4.5  # past the caution level by mid-storm
    # Every device's birth message reached the hub's liveness table (a silent gauge is silent, not offline).
    online = db.execute("SELECT count(*) FROM device_liveness WHERE online").fetchone()[0]
    assert online == len(city_devices())
