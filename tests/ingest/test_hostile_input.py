"""Hostile input: over a thousand bad payloads over MQTT and HTTP, every one dead-lettered, nothing crashes.

The corpus (tests/hostile_corpus.py) is generated deterministically; good readings are interleaved between the
hostile payloads and must each be stored exactly once, and the last one is sent after the last hostile payload, so
"stored" also proves the ingestor was still working at the end.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from api.app import create_app
from devices import DeviceRecord, load_catalogue, upsert_device
from devices.keys import Role, create_key
from ingest import MqttIngestor, pipeline_config, telemetry_topic
from ingest.codecs import decode_telemetry
from ingest.pipeline import Message, process
from ingest.registry import RegistrySnapshot
from tests.hostile_corpus import Hostile, hostile_corpus
from tests.services import wait_until

METRIC = "water_level"
FAMILIES = {
    "truncated",
    "oversized",
    "deep",
    "wrong_types",
    "non_finite",
    "encoding",
    "timestamp",
    "senml",
    "metric_name",
    "duplicate_keys",
}


def good_payload(t0: datetime, i: int) -> bytes:
    return json.dumps({"ts": (t0 + timedelta(seconds=i)).isoformat(), "values": {METRIC: good_value(i)}}).encode()


def good_value(i: int) -> float:
    return (i % 500) / 100


def test_the_corpus_is_large_deterministic_unique_and_covers_every_family(settings):
    first = hostile_corpus(METRIC, settings.ingest_max_payload_bytes)
    again = hostile_corpus(METRIC, settings.ingest_max_payload_bytes)
    assert first == again
    assert len(first) >= 1000
    assert len({h.payload for h in first}) == len(first), "duplicates would be dead-lettered once for two sends"
    assert {h.family for h in first} == FAMILIES
    senml_typed = sum(1 for h in first if h.content_type and "senml" in h.content_type.lower())
    assert senml_typed >= 100, senml_typed
    assert any(len(h.payload) > settings.ingest_max_payload_bytes for h in first)


def test_every_corpus_payload_is_refused_by_the_pipeline_alone(settings):
    """The pure pipeline's view: no reading of any hostile payload is accepted, each gets at least one reason."""
    cfg = pipeline_config(settings)
    types = load_catalogue()
    snapshot = RegistrySnapshot(
        {"g": DeviceRecord("g", "t", "river_gauge", "active")}, {k: t.metrics for k, t in types.items()}
    )
    topic = telemetry_topic(cfg.topic_prefix, "t", "g")
    now = datetime.now(UTC)
    accepted = []
    for h in hostile_corpus(METRIC, settings.ingest_max_payload_bytes):
        out = process(Message("mqtt", topic, h.payload, now, h.content_type), snapshot, cfg)
        if out.readings or not out.dead:
            accepted.append((h.family, h.payload[:120], h.content_type))
    assert not accepted, accepted[:20]


@pytest.mark.parametrize("digits", [309, 400, 4300])
def test_integers_beyond_a_float_are_refused_not_raised(digits):
    """JSON sets no limit on integers; one too large for a float used to raise OverflowError out of the codec."""
    now = datetime.now(UTC)
    big = "9" * digits
    native = decode_telemetry(f'{{"values": {{"{METRIC}": {big}}}}}'.encode(), None, now)
    assert [r.value for r in native.readings] == [float("inf")]  # validation refuses it as non_finite
    senml = decode_telemetry(f'[{{"bt": {big}}}, {{"n": "{METRIC}", "v": 1}}]'.encode(), "application/senml+json", now)
    assert [r.reason for r in senml.rejections] == ["bad_timestamp"]


def _histogram(db, source: str) -> str:
    rows = db.execute(
        "SELECT reason, count(*) FROM dead_letters WHERE source = %s GROUP BY 1 ORDER BY 2 DESC", (source,)
    ).fetchall()
    return ", ".join(f"{reason}: {n}" for reason, n in rows)


def _undead(db, source: str, topic: str, corpus: list[Hostile], limit: int) -> list[tuple[str, bytes]]:
    """Hostile payloads with no dead letter. Identified by message key, or by their stored head when oversized
    over HTTP (the API stops reading an oversized body, so its key is over the part it read)."""
    keys = {
        k
        for (k,) in db.execute("SELECT DISTINCT message_key FROM dead_letters WHERE source = %s", (source,)).fetchall()
    }
    heads = {
        bytes(p)
        for (p,) in db.execute(
            "SELECT payload FROM dead_letters WHERE source = %s AND reason = 'oversized'", (source,)
        ).fetchall()
    }
    missing = []
    for h in corpus:
        if Message(source, topic, h.payload, datetime.now(UTC)).key in keys:
            continue
        if len(h.payload) > limit and h.payload[:limit] in heads:
            continue
        missing.append((h.family, h.payload[:80]))
    return missing


def test_hostile_corpus_over_mqtt_and_http_is_dead_lettered_and_good_readings_stored_once(
    settings, pool, db, broker, city
):
    upsert_device(db, device_id="acme-gauge-1", tenant_id="acme", device_type="river_gauge", lon=137.5, lat=35.2)
    partner_key = create_key(db, "acme", Role.partner, "hostile-input test")[1]
    limit = settings.ingest_max_payload_bytes
    corpus = hostile_corpus(METRIC, limit)
    # Neither the push rate limit nor the dead-letter quota is under test here (test_hostile_devices.py tests the
    # quota): a thousand refused requests in seconds from one key and one device is the point, each kept in full.
    s = settings.model_copy(
        update={"api_push_rate_per_s": 1e6, "api_push_burst": 1_000_000, "ingest_dead_letter_burst_bytes": 1 << 40}
    )
    prefix = s.mqtt_topic_prefix
    mqtt_topic = telemetry_topic(prefix, "toyota-city", "gauge-1")
    http_topic = telemetry_topic(prefix, "acme", "acme-gauge-1")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    goods = len(corpus) + 1  # one before each hostile payload, one after the last

    ingestor = MqttIngestor(s, pool)
    ingestor.connect()
    stop = threading.Event()
    worker = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    worker.start()
    publisher = broker.client(client_id="hostile-publisher")
    statuses: Counter[int] = Counter()
    try:
        infos = []
        for i, h in enumerate(corpus):
            infos.append(publisher.publish(mqtt_topic, good_payload(t0, i), qos=1))
            props = Properties(PacketTypes.PUBLISH)
            if h.content_type:
                props.ContentType = h.content_type
            infos.append(publisher.publish(mqtt_topic, h.payload, qos=1, properties=props))
        infos.append(publisher.publish(mqtt_topic, good_payload(t0, len(corpus)), qos=1))

        # HTTP in this thread while the broker delivers the MQTT share to the ingestor
        with TestClient(create_app(s, pool), raise_server_exceptions=False) as api:
            key = {"X-API-Key": partner_key}

            def post(body: bytes, content_type: str | None) -> int:
                headers = key | ({"Content-Type": content_type} if content_type else {})
                answer = api.post("/v1/telemetry", params={"device": "acme-gauge-1"}, content=body, headers=headers)
                return answer.status_code

            good_status: Counter[int] = Counter()
            for i, h in enumerate(corpus):
                good_status[post(good_payload(t0, i), "application/json")] += 1
                statuses[post(h.payload, h.content_type)] += 1
            good_status[post(good_payload(t0, len(corpus)), "application/json")] += 1

        wait_until(
            lambda: all(info.is_published() for info in infos),
            timeout=120,
            interval=0.2,
            what="the broker to acknowledge every MQTT publish (see the broker log for a refused packet)",
        )
        stored = "SELECT count(*) FROM readings WHERE device_id = 'gauge-1'"
        dead = "SELECT count(DISTINCT message_key) FROM dead_letters WHERE source = 'mqtt'"
        wait_until(
            lambda: db.execute(stored).fetchone()[0] >= goods and db.execute(dead).fetchone()[0] >= len(corpus),
            timeout=120,
            interval=0.2,
            what=f"{goods} good readings and {len(corpus)} dead-lettered messages over MQTT ({_histogram(db, 'mqtt')})",
        )
        alive = worker.is_alive() and ingestor.stats.connected
    finally:
        publisher.loop_stop()
        stop.set()
        worker.join(timeout=30)

    assert alive, "the ingestor stopped or lost the broker during the corpus"
    assert good_status == {200: goods}, good_status
    assert statuses == {422: len(corpus)}, f"answers to hostile pushes: {statuses}"
    for source, topic, device in (("mqtt", mqtt_topic, "gauge-1"), ("http", http_topic, "acme-gauge-1")):
        missing = _undead(db, source, topic, corpus, limit)
        assert not missing, (
            f"{source}: {len(missing)} hostile payloads without a dead letter, e.g. {missing[:10]}; "
            f"reasons: {_histogram(db, source)}"
        )
        total, distinct, value_sum = db.execute(
            "SELECT count(*), count(DISTINCT time), coalesce(sum(value), 0) FROM readings WHERE device_id = %s",
            (device,),
        ).fetchone()
        assert total == distinct == goods, (
            f"{source}: {total} readings, {distinct} distinct, {goods} sent; reasons: {_histogram(db, source)}"
        )
        assert value_sum == pytest.approx(sum(good_value(i) for i in range(goods)))
