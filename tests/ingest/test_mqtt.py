"""Ingest over real Mosquitto and PostgreSQL: exactly once, crash-safe, shared, outage-proof, strict."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg_pool import ConnectionPool

from ingest import CommittedReadings, MqttIngestor
from ingest.codecs import encode_native, encode_senml
from ingest.contract import RawReading
from mimamori.settings import Settings
from tests.services import dsn_address, outside_environment, running_ingestor, settings_via, wait_until
from tests.tcp_proxy import TcpProxy

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
TOPIC = "mimamori/v1/toyota-city/gauge-1/telemetry"


class IngestProcess:
    """`mimamori ingest` as a real process, its output collected as it runs."""

    def __init__(self, settings: Settings, client_id: str, *args: str) -> None:
        env = outside_environment() | {
            "MIMAMORI_DATABASE_URL": settings.dsn,
            "MIMAMORI_MQTT_URL": settings.mqtt_url,
            # Prefixed with the test's own client id: a persistent session another test left under the same
            # name would bring its subscriptions (and their copies of every message) along.
            "MIMAMORI_MQTT_CLIENT_ID": f"{settings.mqtt_client_id}-{client_id}",
            "MIMAMORI_MQTT_SHARE_GROUP": settings.mqtt_share_group,
        }
        if settings.mqtt_username:
            env["MIMAMORI_MQTT_USERNAME"] = settings.mqtt_username
            env["MIMAMORI_MQTT_PASSWORD"] = settings.mqtt_password.get_secret_value() if settings.mqtt_password else ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "ingest", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        wait_until(
            lambda: any(ln.startswith("ingesting from") for ln in self.lines) or self.proc.poll() is not None,
            timeout=60,
            what=f"ingest {client_id} to start",
        )
        assert self.proc.poll() is None, "".join(self.lines)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> dict:
        """SIGTERM: the ingestor finishes its batch and reports its counters."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        line = wait_until(
            lambda: next((ln for ln in self.lines if ln.startswith('{"ingest_stopped"')), None), what="final counters"
        )
        assert self.proc.returncode == 0, "".join(self.lines)
        return json.loads(line)["ingest_stopped"]


def reading_payload(i: int, metric: str = "water_level") -> bytes:
    return json.dumps({"ts": (T0 + timedelta(seconds=i)).isoformat(), "values": {metric: (i % 1000) / 100}}).encode()


def publish_all(broker, topic: str, payloads: list[bytes], properties: Properties | None = None) -> None:
    client = broker.client()
    try:
        infos = [client.publish(topic, p, qos=1, properties=properties) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def count(db, sql: str = "SELECT count(*) FROM readings", params: tuple = ()) -> int:
    return db.execute(sql, params).fetchone()[0]


def test_a_published_reading_is_stored_with_device_time(settings, pool, db, broker, city):
    with running_ingestor(settings, pool):
        publish_all(broker, TOPIC, [b'{"ts": "2026-11-24T10:00:00+09:00", "values": {"water_level": 3.42}}'])
        wait_until(lambda: count(db) == 1, what="the reading")
    row = db.execute("SELECT time, device_id, metric, value, received_at FROM readings").fetchone()
    assert row[:4] == (datetime(2026, 11, 24, 1, tzinfo=UTC), "gauge-1", "water_level", 3.42)
    assert row[4] > row[0]  # received_at is the hub's clock, kept apart from device time


def test_redelivered_messages_are_stored_once(settings, pool, db, broker, city):
    """The ingestor commits but dies before acknowledging; the broker redelivers; nothing is doubled."""
    payloads = [reading_payload(i) for i in range(200)]
    first = MqttIngestor(settings, pool)
    first._client.ack_batch = lambda mids: None  # a crash between commit and acknowledgement
    first.connect()
    stop = threading.Event()
    worker = threading.Thread(target=first.run, args=(stop,), daemon=True)
    worker.start()
    publish_all(broker, TOPIC, payloads)
    wait_until(lambda: count(db) == 200, timeout=60, what="first delivery stored")
    stop.set()
    worker.join(timeout=30)

    committed: list = []
    stream = CommittedReadings()
    stream.subscribe(committed.extend)
    with running_ingestor(settings, pool, committed=stream) as second:
        wait_until(lambda: second.stats.duplicates >= 200, what="the broker's redelivery")
    assert count(db) == 200
    assert count(db, "SELECT count(DISTINCT (device_id, metric, time)) FROM readings") == 200
    assert committed == []  # redelivered readings are not handed to the alert engine a second time


def test_sigkill_mid_stream_loses_nothing(settings, db, broker, city):
    n = 3000
    proc = IngestProcess(settings, "kill-me")
    try:
        payloads = [reading_payload(i) for i in range(n)]
        publisher = threading.Thread(target=publish_all, args=(broker, TOPIC, payloads), daemon=True)
        publisher.start()
        wait_until(lambda: count(db) >= n // 4, timeout=60, what="a quarter stored")
        proc.kill()
        killed_at = count(db)
        publisher.join(timeout=120)
        proc = IngestProcess(settings, "kill-me")  # same client id: the broker kept its session
        wait_until(lambda: count(db) == n, timeout=120, what=f"all {n} readings after the restart")
    finally:
        stats = proc.stop()
    assert killed_at < n, "the kill happened mid-stream"
    assert count(db, "SELECT count(DISTINCT (device_id, metric, time)) FROM readings") == n
    assert count(db, "SELECT count(*) FROM dead_letters") == 0
    assert stats["messages"] >= n - killed_at


def test_two_ingestors_on_the_shared_subscription_split_the_stream(settings, db, broker, city):
    n = 4000
    procs = [IngestProcess(settings, "share-a"), IngestProcess(settings, "share-b")]
    try:
        publish_all(broker, TOPIC, [reading_payload(i) for i in range(n)])
        wait_until(lambda: count(db) == n, timeout=120, what="the whole stream")
    finally:
        stats = [p.stop() for p in procs]
    assert all(s["messages"] > 0 for s in stats), stats
    assert sum(s["stored"] for s in stats) == n, stats
    assert sum(s["duplicates"] for s in stats) == 0


def test_ingest_workers_split_the_stream_across_processes(settings, db, broker, city):
    n = 2000
    broker.add_ingest_account(f"{settings.mqtt_client_id}-workers-2")  # worker 2 logs in as its client id
    proc = IngestProcess(settings, "workers", "--workers", "2")
    wait_until(lambda: sum(ln.startswith("ingesting from") for ln in proc.lines) == 2, what="both workers")
    try:
        publish_all(broker, TOPIC, [reading_payload(i) for i in range(n)])
        wait_until(lambda: count(db) == n, timeout=120, what="the whole stream")
    finally:
        proc.proc.send_signal(signal.SIGTERM)
        proc.proc.wait(timeout=60)
    assert proc.proc.returncode == 0, "".join(proc.lines)
    stats = [json.loads(ln)["ingest_stopped"] for ln in proc.lines if ln.startswith('{"ingest_stopped"')]
    assert len(stats) == 2 and all(s["messages"] > 0 for s in stats), stats
    assert sum(s["stored"] for s in stats) == n


def test_a_database_outage_mid_stream_loses_nothing(settings, db, broker, city):
    proxy = TcpProxy(*reversed(dsn_address(settings.dsn)))
    try:
        via_proxy = settings_via(settings, proxy.port)
        pool = ConnectionPool(via_proxy.dsn, min_size=1, max_size=4, open=True)
        with running_ingestor(via_proxy, pool) as ingestor:
            publish_all(broker, TOPIC, [reading_payload(i) for i in range(500)])
            wait_until(lambda: count(db) == 500, what="before the outage")
            proxy.cut()
            publish_all(broker, TOPIC, [reading_payload(i) for i in range(500, 1500)])
            wait_until(lambda: not ingestor.writer.db_available, what="the ingestor noticing the outage")
            assert count(db) < 1500
            threading.Event().wait(3)  # the database stays away for a few seconds
            proxy.restore()
            wait_until(lambda: count(db) == 1500, timeout=60, what="everything after the outage")
            assert ingestor.writer.db_available
        pool.close()
    finally:
        proxy.close()
    assert count(db, "SELECT count(*) FROM dead_letters") == 0


def test_every_bad_input_class_is_dead_lettered_and_good_neighbours_stored(settings, pool, db, broker, city):
    db.execute(
        "INSERT INTO devices (id, tenant_id, device_type, status) VALUES "
        "('old-gauge', 'toyota-city', 'river_gauge', 'retired')"
    )
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=3650)).isoformat()
    cases = {
        "mimamori/v1/toyota-city/ghost/telemetry": (b'{"values": {"water_level": 1}}', "unknown_device"),
        "mimamori/v1/toyota-city/old-gauge/telemetry": (b'{"values": {"water_level": 1}}', "retired_device"),
        "mimamori/v1/acme/gauge-1/telemetry": (b'{"values": {"water_level": 1}}', "tenant_mismatch"),
        "mimamori/v1/toyota-city/bad device/telemetry": (b'{"values": {"water_level": 1}}', "bad_topic"),
        "mimamori/v1/toyota-city/rain-1/telemetry": (
            b'{"values": {"rainfall": 1, "water_level": 1}}',
            "unknown_metric",
        ),
        "mimamori/v1/toyota-city/gauge-1/telemetry": (
            b'{"values": {"water_level": NaN, "battery": 3.6, "signal": -999}}',
            "non_finite",
        ),
        "mimamori/v1/acme/acme-soil-1/telemetry": (b"{not json", "malformed"),
        "mimamori/v1/acme/acme-soil-1/status": (b'{"state": "asleep"}', "malformed"),
    }
    with running_ingestor(settings, pool):
        for topic, (payload, _) in cases.items():
            publish_all(broker, topic, [payload])
        publish_all(
            broker,
            TOPIC,
            [
                json.dumps({"ts": future, "values": {"water_level": 1}}).encode(),
                json.dumps({"ts": past, "values": {"water_level": 2}}).encode(),
                b'{"values": {"water_level": {"v": 3, "u": "ft"}}}',
                b"x" * (settings.ingest_max_payload_bytes + 1),
            ],
        )
        wait_until(lambda: count(db, "SELECT count(*) FROM dead_letters") >= 12, what="dead letters")
        wait_until(lambda: count(db) == 2, what="the good neighbours")
    # One dead letter per message (12 messages refused in all or in part), every reason summarised in it.
    assert count(db, "SELECT count(*) FROM dead_letters") == 12
    got = {(r[0], r[1]) for r in db.execute("SELECT topic, reason FROM dead_letters")}
    got |= {(r[0], r[1]) for r in db.execute("SELECT topic, k FROM dead_letters, jsonb_object_keys(reasons) k")}
    for topic, (_, reason) in cases.items():
        assert (topic, reason) in got, (topic, reason)
    assert {(TOPIC, r) for r in ("out_of_range", "ts_future", "ts_past", "bad_unit", "oversized")} <= got
    stored = {(r[0], r[1]) for r in db.execute("SELECT device_id, metric FROM readings")}
    # rain-1's rainfall survived its unknown neighbour; gauge-1's battery survived NaN and -999 dBm.
    assert stored == {("rain-1", "rainfall"), ("gauge-1", "battery")}
    row = db.execute("SELECT payload, detail FROM dead_letters WHERE reason = 'tenant_mismatch'").fetchone()
    assert bytes(row[0]) == b'{"values": {"water_level": 1}}' and "acme" in row[1]


def test_senml_and_native_json_store_identical_rows(settings, pool, db, broker, city):
    readings = [RawReading(T0 + timedelta(minutes=10 * i), "water_level", 1.5 + i / 10, "m") for i in range(6)]
    readings += [RawReading(T0, "battery", 3600, "mV")]
    senml = Properties(PacketTypes.PUBLISH)
    senml.ContentType = "application/senml+json"
    db.execute("INSERT INTO devices (id, tenant_id, device_type) VALUES ('gauge-2', 'toyota-city', 'river_gauge')")
    with running_ingestor(settings, pool):
        publish_all(broker, TOPIC, [encode_native(readings)])
        publish_all(
            broker, "mimamori/v1/toyota-city/gauge-2/telemetry", [encode_senml("urn:dev:gauge-2:", readings)], senml
        )
        wait_until(lambda: count(db) == 14, what="both devices' readings")
    rows = {
        d: db.execute("SELECT metric, time, value FROM readings WHERE device_id = %s ORDER BY 1, 2", (d,)).fetchall()
        for d in ("gauge-1", "gauge-2")
    }
    assert rows["gauge-1"] == rows["gauge-2"]
    assert ("battery", T0, 3.6) in rows["gauge-1"]  # mV converted to the catalogue's V


def test_status_and_telemetry_update_liveness_in_batches(settings, pool, db, broker, city):
    with running_ingestor(settings, pool):
        publish_all(
            broker, "mimamori/v1/toyota-city/gauge-1/status", [b'{"state": "online", "battery": 3.9, "signal": -70}']
        )
        wait_until(lambda: count(db, "SELECT count(*) FROM device_liveness"), what="liveness row")
        publish_all(
            broker,
            TOPIC,
            [
                json.dumps(
                    {
                        "ts": (T0 + timedelta(minutes=i)).isoformat(),
                        "values": {"water_level": 1, "battery": 3.5 - i / 100},
                    }
                ).encode()
                for i in range(30)
            ],
        )
        wait_until(lambda: count(db) == 60, what="readings")
        publish_all(broker, "mimamori/v1/toyota-city/gauge-1/status", [b"offline"])
        wait_until(lambda: db.execute("SELECT online FROM device_liveness").fetchone()[0] is False, what="offline")
    last_seen, last_reading, battery, signal_ = db.execute(
        "SELECT last_seen, last_reading, battery, signal FROM device_liveness WHERE device_id = 'gauge-1'"
    ).fetchone()
    assert last_reading == T0 + timedelta(minutes=29)
    assert math.isclose(battery, 3.21) and signal_ == -70
    assert last_seen > last_reading
    latest = db.execute(
        "SELECT time, value FROM latest_readings WHERE device_id = 'gauge-1' AND metric = 'battery'"
    ).fetchone()
    assert latest[0] == T0 + timedelta(minutes=29) and math.isclose(latest[1], 3.21)


def test_committed_readings_are_handed_on_once(settings, pool, db, broker, city):
    got: list = []
    stream = CommittedReadings()
    stream.subscribe(got.extend)
    with running_ingestor(settings, pool, committed=stream):
        publish_all(broker, TOPIC, [reading_payload(i) for i in range(50)] * 2)  # every message sent twice
        wait_until(lambda: len(got) >= 50, what="handed-on readings")
        wait_until(lambda: count(db, "SELECT count(*) FROM readings") == 50, what="stored")
    assert len(got) == 50
    assert {r.time for r in got} == {T0 + timedelta(seconds=i) for i in range(50)}


@pytest.mark.parametrize("late_first", [True, False])
def test_late_and_out_of_order_readings_are_stored(settings, pool, db, broker, city, late_first):
    times = [T0 - timedelta(days=20), T0, T0 - timedelta(hours=5)]
    if late_first:
        times.reverse()
    with running_ingestor(settings, pool):
        publish_all(
            broker, TOPIC, [json.dumps({"ts": t.isoformat(), "values": {"water_level": 1.0}}).encode() for t in times]
        )
        wait_until(lambda: count(db) == 3, what="all three")
    latest = db.execute("SELECT time FROM latest_readings WHERE device_id = 'gauge-1'").fetchone()[0]
    assert latest == T0  # the newest by device time, whatever the arrival order
