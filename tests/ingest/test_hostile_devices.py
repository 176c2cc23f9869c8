"""A hostile device cannot stall, flood or exhaust the hub (issue #14, part 1).

Amplification (thousands of bad entries per message), maximum-size payloads, a whole receive window of them, and a
message the database itself refuses: each test attacks through the real broker and database and checks, by SQL,
that every attacking message is stored or dead-lettered once, that a canary device's readings all land, and that
the bytes written and the ingestor's memory stay within their documented bounds.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from devices import upsert_device
from devices.keys import Role, create_key
from ingest import MqttIngestor
from ingest.contract import Reason, Rejection
from ingest.dead_letter_quota import ROW_OVERHEAD_BYTES, DeadLetterQuota, QuotaConfig
from ingest.mqtt_consumer import pipeline_config
from ingest.pipeline import Message, Outcome, process
from ingest.registry import RegistrySnapshot
from ingest.rejections import DETAIL_CHARS, EXAMPLES_PER_REASON, summarise
from mimamori import metrics
from tests.services import HubProcess, dsn_address, dsn_via, wait_until
from tests.tcp_proxy import TcpProxy

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
HOSTILE_TOPIC = "mimamori/v1/acme/acme-hostile/telemetry"
CANARY_TOPIC = "mimamori/v1/toyota-city/gauge-1/telemetry"


def unknown_metrics(n: int, tag: str) -> bytes:
    """A reading set of ``n`` metrics no catalogue has: each is a bad reading."""
    return json.dumps({"ts": T0.isoformat(), "values": {f"x{tag}_{i}": 1 for i in range(n)}}).encode()


def copies_of_a_bad_reading(n: int, tag: str) -> bytes:
    """A store-and-forward batch of ``n`` copies of one reading out of range (water level 99 m)."""
    item = {"ts": int(T0.timestamp()), "values": {"water_level": 99}}
    doc = [item] * n + [{"ts": int(T0.timestamp()), "values": {f"x{tag}": 1}}]
    return json.dumps(doc, separators=(",", ":")).encode()


def max_size_hostile(limit: int, tag: str) -> bytes:
    """As many unknown metrics as fit under the payload limit."""
    n = limit // 14
    while True:
        payload = unknown_metrics(n, tag)
        if len(payload) <= limit:
            return payload
        n -= max(1, (len(payload) - limit) // 10)


def canary(i: int) -> bytes:
    return json.dumps({"ts": (T0 + timedelta(seconds=i)).isoformat(), "values": {"water_level": 1 + i / 1000}}).encode()


def count(db: psycopg.Connection, sql: str, params: tuple = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])


def accounted(db: psycopg.Connection, device: str) -> int:
    """Refused messages of a device, by SQL: rows kept, plus those counted over its quota."""
    return count(db, "SELECT count(DISTINCT message_key) FROM dead_letters WHERE device_id = %s", (device,)) + count(
        db, "SELECT coalesce(sum(messages), 0) FROM dead_letter_overflow WHERE device_id = %s", (device,)
    )


# -- pure: the summary and the quota -------------------------------------------------------------------------------


def test_thousands_of_rejections_make_one_summary_of_bounded_size():
    rejections = [
        Rejection(Reason.unknown_metric, f"reading {i}: metric 'x{i}' is not in the catalogue") for i in range(5000)
    ]
    rejections += [Rejection(Reason.out_of_range, f"reading {5000 + i}: water_level: 99 m outside") for i in range(7)]
    s = summarise(rejections)
    assert s.reason is Reason.unknown_metric and s.rejected == 5007
    assert s.reasons["unknown_metric"]["count"] == 5000 and s.reasons["out_of_range"]["count"] == 7
    assert len(s.reasons["unknown_metric"]["first"]) == EXAMPLES_PER_REASON
    assert s.reasons["unknown_metric"]["first"][0].startswith("reading 0:")  # the first positions, in order
    assert len(s.detail) <= DETAIL_CHARS and "unknown_metric ×5000" in s.detail and "out_of_range ×7" in s.detail
    assert len(json.dumps(s.reasons)) < 2000


def test_one_rejection_keeps_its_own_detail():
    s = summarise([Rejection(Reason.malformed, "not valid JSON: unexpected end")])
    assert (s.reason, s.detail, s.rejected) == (Reason.malformed, "not valid JSON: unexpected end", 1)


@pytest.mark.parametrize("payload", [unknown_metrics(2000, "a"), copies_of_a_bad_reading(5000, "b")])
def test_a_message_of_thousands_of_bad_entries_is_one_dead_letter(settings, payload):
    from devices import DeviceRecord, MetricSpec

    spec = MetricSpec("water_level", "m", -10, 30)
    device = DeviceRecord("acme-hostile", "acme", "river_gauge", "active")
    snapshot = RegistrySnapshot(devices={"acme-hostile": device}, specs={"river_gauge": {"water_level": spec}})
    out = process(Message("mqtt", HOSTILE_TOPIC, payload, datetime.now(UTC)), snapshot, pipeline_config(settings))
    assert out.readings == [] and len(out.dead) == 1
    dead = out.dead[0]
    assert dead.payload == payload and dead.rejected >= 2000 and len(dead.detail) <= DETAIL_CHARS


def test_the_quota_lets_a_burst_through_then_a_sustained_rate():
    now = [0.0]
    quota = DeadLetterQuota(QuotaConfig(burst_bytes=10_000, bytes_per_s=1_000), lambda: now[0])
    assert [quota.admit("d", 4_000) for _ in range(3)] == [True, True, False]
    assert quota.admit("other", 4_000)  # one device's spending is its own
    now[0] = 1.9
    assert not quota.admit("d", 4_000)  # 2,000 + 1,900 refilled
    now[0] = 2.0
    assert quota.admit("d", 4_000)
    now[0] = 1_000.0
    assert [quota.admit("d", 4_000) for _ in range(3)] == [True, True, False]  # refills to the burst, no more


def test_the_quota_marks_dead_letters_over_it_to_be_counted_not_kept(settings):
    quota = DeadLetterQuota(QuotaConfig(burst_bytes=3 * (1001 + ROW_OVERHEAD_BYTES), bytes_per_s=0), lambda: 0.0)
    cfg = pipeline_config(settings)
    outcomes = [
        process(Message("mqtt", "bad topic", b"x" * 1000 + bytes([i]), datetime.now(UTC)), RegistrySnapshot(), cfg)
        for i in range(5)
    ]
    applied = quota.apply(outcomes)
    kept = [o.dead[0].payload is not None for o in applied]
    assert kept == [True, True, True, False, False]
    assert [o.dead[0].over_quota_bytes for o in applied[3:]] == [1001, 1001]
    assert all(isinstance(o, Outcome) and o.message is not None for o in applied)


# -- through the real broker and database ------------------------------------------------------------------------


@pytest.fixture
def hostile(db, city) -> str:
    upsert_device(db, device_id="acme-hostile", tenant_id="acme", device_type="river_gauge", lon=137.5, lat=35.2)
    db.execute("TRUNCATE dead_letter_overflow")
    return "acme-hostile"


def run_ingestor(settings, pool) -> tuple[MqttIngestor, threading.Event, threading.Thread]:
    ingestor = MqttIngestor(settings, pool)
    ingestor.connect()
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    return ingestor, stop, thread


def test_amplifying_messages_write_one_bounded_row_each_over_mqtt_and_http(settings, pool, db, broker, hostile):
    limit = settings.ingest_max_payload_bytes
    payloads = [unknown_metrics(2000, "m"), copies_of_a_bad_reading(5000, "m"), max_size_hostile(limit, "m")]
    _, stop, thread = run_ingestor(settings, pool)
    publisher = broker.client(client_id="amplifier")
    try:
        for p in payloads:
            publisher.publish(HOSTILE_TOPIC, p, qos=1).wait_for_publish(10)
        wait_until(lambda: accounted(db, hostile) >= 3, timeout=60, what="three dead letters")
        key = create_key(db, "acme", Role.partner, "amplification test")[1]
        with TestClient(create_app(settings, pool)) as api:
            push = copies_of_a_bad_reading(500, "h")
            answer = api.post(
                "/v1/telemetry",
                params={"device": hostile},
                content=push,
                headers={"X-API-Key": key, "Content-Type": "application/json"},
            )
        assert answer.status_code == 422
        assert {(r["reason"], r["count"]) for r in answer.json()["rejected"]} == {
            ("out_of_range", 500),
            ("unknown_metric", 1),
        }
    finally:
        publisher.loop_stop()
        stop.set()
        thread.join(30)
    assert thread.is_alive() is False
    rows = db.execute(
        "SELECT source, octet_length(payload), pg_column_size(d.*), rejected FROM dead_letters d "
        "WHERE device_id = %s ORDER BY id",
        (hostile,),
    ).fetchall()
    # One row per message (where each bad entry used to be a row holding the whole payload)...
    assert [(r[0], r[1]) for r in rows] == [("mqtt", len(p)) for p in payloads] + [("http", len(push))]
    assert [r[3] for r in rows][:2] == [2000, 5001] and rows[3][3] == 501
    # ... of a size bounded by its payload plus a small summary, however many entries it held.
    for _source, size, row_size, _rejected in rows:
        assert row_size <= size + 4096, (size, row_size)


@pytest.mark.parametrize(
    "sqlstate",
    [
        "53200",  # out_of_memory: an OperationalError, as libpq's "cannot allocate memory" was taken for an outage
        "P0001",  # a plain error raised in the database
    ],
)
def test_a_message_the_database_refuses_is_isolated_and_the_rest_committed(settings, pool, db, broker, city, sqlstate):
    db.execute(
        f"""
        CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.value = 17.171717 THEN RAISE EXCEPTION 'poison reading' USING ERRCODE = '{sqlstate}'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_poison BEFORE INSERT ON series_readings FOR EACH ROW EXECUTE FUNCTION refuse_poison();
        """
    )
    split_before = metrics.BATCHES_SPLIT._value.get()
    try:
        # A long batch window, so that the poison and its neighbours share one transaction.
        s = settings.model_copy(update={"ingest_batch_ms": 1500})
        ingestor, stop, thread = run_ingestor(s, pool)
        publisher = broker.client(client_id="poisoner")
        try:
            poison = json.dumps({"ts": T0.isoformat(), "values": {"water_level": 17.171717}}).encode()
            infos = [publisher.publish(CANARY_TOPIC, canary(i), qos=1) for i in range(40)]
            infos.append(publisher.publish(CANARY_TOPIC, poison, qos=1))
            infos += [publisher.publish(CANARY_TOPIC, canary(i), qos=1) for i in range(40, 80)]
            for info in infos:
                info.wait_for_publish(10)
            wait_until(
                lambda: count(db, "SELECT count(*) FROM readings WHERE device_id = 'gauge-1'") >= 80,
                timeout=60,
                what="the poison's 80 neighbours",
            )
            wait_until(lambda: count(db, "SELECT count(*) FROM dead_letters") >= 1, timeout=30, what="its dead letter")
            # ... and the ingestor goes on: a later message is stored.
            publisher.publish(CANARY_TOPIC, canary(80), qos=1).wait_for_publish(10)
            wait_until(
                lambda: count(db, "SELECT count(*) FROM readings WHERE device_id = 'gauge-1'") == 81,
                timeout=30,
                what="a reading after the poison",
            )
        finally:
            publisher.loop_stop()
            stop.set()
            thread.join(30)
    finally:
        db.execute("DROP TRIGGER refuse_poison ON series_readings; DROP FUNCTION refuse_poison()")
    rows = db.execute("SELECT reason, detail, payload, device_id FROM dead_letters").fetchall()
    assert len(rows) == 1
    reason, detail, payload, device = rows[0]
    assert reason == "store_failed" and "poison reading" in detail and bytes(payload) == poison
    assert device == "gauge-1"
    assert metrics.BATCHES_SPLIT._value.get() > split_before
    assert ingestor.writer.db_available  # never taken for an outage


def _vm(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field}")


@pytest.mark.slow
def test_a_full_window_of_maximum_size_hostile_payloads_stalls_no_one(settings, db, broker, hostile):
    """The fuzz family of the issue: while one device floods, a canary's readings all land; every attacking message
    is stored or dead-lettered (counted by SQL); the ingestor's peak memory stays under its documented bound."""
    limit = settings.ingest_max_payload_bytes
    max_queued = 32 * 1024 * 1024
    receive_max = 400  # 400 × 256 KiB = 100 MiB: a window three times the byte bound
    burst, rate = 1024 * 1024, 4096.0
    host, port = dsn_address(settings.dsn)
    proxy = TcpProxy(port, host)
    proxied = settings.model_copy(update={"database_url": SecretStr(dsn_via(settings.dsn, proxy.port))})
    env = {
        "MIMAMORI_INGEST_MAX_QUEUED_BYTES": str(max_queued),
        "MIMAMORI_MQTT_RECEIVE_MAXIMUM": str(receive_max),
        "MIMAMORI_INGEST_DEAD_LETTER_BURST_BYTES": str(burst),
        "MIMAMORI_INGEST_DEAD_LETTER_BYTES_PER_S": str(rate),
    }
    proc = HubProcess(proxied, client_id=f"{settings.mqtt_client_id}-window", env=env)
    publisher = broker.client(client_id="window-flooder")
    canary_pub = broker.client(client_id="window-canary")
    started = time.monotonic()
    try:
        baseline = _vm(proc.pid, "VmRSS")
        # Phase 1, database up: a flood of maximum-size hostile payloads beside a live canary.
        flood = [publisher.publish(HOSTILE_TOPIC, max_size_hostile(limit, f"f{i}"), qos=1) for i in range(150)]
        canaries = [canary_pub.publish(CANARY_TOPIC, canary(i), qos=1) for i in range(100)]
        for info in flood + canaries:
            info.wait_for_publish(60)
        wait_until(
            lambda: count(db, "SELECT count(*) FROM readings WHERE device_id = 'gauge-1'") == 100,
            timeout=120,
            what="every canary reading during the flood",
        )
        # Phase 2, database away: the whole receive window fills with maximum-size payloads, decoded.
        proxy.cut()
        window = [publisher.publish(HOSTILE_TOPIC, max_size_hostile(limit, f"w{i}"), qos=1) for i in range(receive_max)]
        canaries = [canary_pub.publish(CANARY_TOPIC, canary(i), qos=1) for i in range(100, 150)]
        for info in window + canaries:
            info.wait_for_publish(60)
        time.sleep(5)  # let it read all it will
        proxy.restore()
        attack = len(flood) + len(window)
        wait_until(lambda: accounted(db, hostile) >= attack, timeout=180, interval=0.5, what="every attacking message")
        wait_until(
            lambda: count(db, "SELECT count(*) FROM readings WHERE device_id = 'gauge-1'") == 150,
            timeout=60,
            what="every canary reading after the outage",
        )
        peak = _vm(proc.pid, "VmHWM")
        assert proc.proc.poll() is None, "".join(proc.lines)
    finally:
        publisher.loop_stop()
        canary_pub.loop_stop()
        proc.stop()
        proxy.close()
    # What its quota allows over the attack's duration: a bound on bytes, not on speed.
    allowance = burst + rate * (time.monotonic() - started) + limit
    assert accounted(db, hostile) == attack  # none vanished, none counted twice
    assert count(db, "SELECT count(*) FROM readings WHERE device_id = %s", (hostile,)) == 0
    kept = count(
        db, "SELECT coalesce(sum(octet_length(payload)), 0) FROM dead_letters WHERE device_id = %s", (hostile,)
    )
    rows = count(db, "SELECT count(*) FROM dead_letters WHERE device_id = %s", (hostile,))
    assert kept + rows * ROW_OVERHEAD_BYTES <= allowance  # its quota, whatever it sent
    # The documented bound (docs/operations.md, "Memory"): the byte bound, twice over for a batch being written,
    # above what the process holds at rest. Without the bound the window alone would be 100 MiB of payloads.
    growth = peak - baseline
    print(f"ingest RSS at rest {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB under the attack")
    assert growth <= 2 * max_queued + 32 * 1024 * 1024, (
        f"peak grew {growth / 2**20:.0f} MiB over {baseline / 2**20:.0f}"
    )
