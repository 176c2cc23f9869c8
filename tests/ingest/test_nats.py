"""Ingest over a real three-node NATS JetStream cluster and PostgreSQL (MIMAMORI_BROKER=nats): devices publish
MQTT 3.1.1 at QoS 1 to any node, ingestors pull a durable consumer and acknowledge after commit; every reading is
stored exactly once, counted by SQL, also across an ingestor killed mid-stream."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta

import nats
import pytest

from devices import subject_to_topic, topic_to_subject
from ingest import NatsIngestor
from tests.nats_support import mqtt311_publisher, nats_cluster, nats_settings
from tests.services import HubProcess, running_ingestor, wait_until

__all__ = ["nats_cluster"]  # the module's cluster fixture

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
DEVICES = (  # the conftest's city: one device per node
    ("toyota-city", "gauge-1", "water_level"),
    ("toyota-city", "rain-1", "rainfall"),
    ("acme", "acme-soil-1", "soil_moisture"),
)


def payload(i: int, metric: str) -> bytes:
    return json.dumps({"ts": (T0 + timedelta(seconds=i)).isoformat(), "values": {metric: (i % 100) / 1000}}).encode()


def publish_to_every_node(cluster, n: int, tag: str) -> None:
    """``n`` messages per device, each device on its own node, QoS 1, every PUBACK awaited."""
    for node, (tenant, device, metric) in zip(cluster.nodes, DEVICES, strict=True):
        client = mqtt311_publisher(node.mqtt_port, f"{tag}-{device}", password=cluster.publisher_password)
        try:
            infos = [
                client.publish(f"mimamori/v1/{tenant}/{device}/telemetry", payload(i, metric), qos=1) for i in range(n)
            ]
            for info in infos:
                info.wait_for_publish(60)
                assert info.rc == 0
        finally:
            client.disconnect()
            client.loop_stop()


def stored(db) -> int:
    return db.execute("SELECT count(*) FROM readings").fetchone()[0]


def distinct(db) -> int:
    return db.execute("SELECT count(DISTINCT (device_id, metric, time)) FROM readings").fetchone()[0]


def stream_replicas(cluster, hub) -> int:
    """Copies of the device stream the cluster keeps: its leader and its current replicas."""

    async def ask() -> int:
        nc = await nats.connect(servers=cluster.urls, user=hub.nats_username, password=cluster.ingest_password)
        try:
            info = await nc.jetstream().stream_info(hub.nats_stream)
            assert info.config.num_replicas == 3
            return 1 + sum(1 for r in (info.cluster.replicas or []) if r.current)
        finally:
            await nc.close()

    return asyncio.run(ask())


@pytest.mark.parametrize(
    ("topic", "subject"),
    [
        ("mimamori/v1/acme/soil-1/telemetry", "mimamori.v1.acme.soil-1.telemetry"),
        ("mimamori/v1/acme/soil.1/status", "mimamori.v1.acme.soil//1.status"),  # NATS's MQTT: a dot in a level
    ],
)
def test_topics_and_subjects_map_both_ways(topic, subject):
    assert topic_to_subject(topic) == subject
    assert subject_to_topic(subject) == topic


def test_readings_published_to_every_node_are_stored_once(settings, pool, db, city, nats_cluster):
    n = 150
    hub = nats_settings(settings, nats_cluster)
    with running_ingestor(hub, pool) as ingestor:
        assert isinstance(ingestor, NatsIngestor)
        publish_to_every_node(nats_cluster, n, "once")
        wait_until(lambda: stored(db) == 3 * n, timeout=90, what=f"all {3 * n} readings")
    assert distinct(db) == 3 * n
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    assert stream_replicas(nats_cluster, hub) == 3
    per_device = dict(db.execute("SELECT device_id, count(*) FROM readings GROUP BY device_id").fetchall())
    assert per_device == {"gauge-1": n, "rain-1": n, "acme-soil-1": n}


def test_an_ingestor_killed_mid_stream_loses_and_doubles_nothing(settings, db, city, nats_cluster):
    n = 1500
    hub = nats_settings(settings, nats_cluster, ingest_batch_max=50)
    env = {
        "MIMAMORI_BROKER": "nats",
        "MIMAMORI_NATS_URLS": hub.nats_urls,
        "MIMAMORI_NATS_USERNAME": hub.nats_username or "",
        "MIMAMORI_NATS_PASSWORD": nats_cluster.ingest_password,
        "MIMAMORI_INGEST_BATCH_MAX": "50",
        "MIMAMORI_NATS_ACK_WAIT_S": "5",  # what the killed one held goes to the next one this soon
    }
    proc = HubProcess(hub, "ingest", client_id="mimamori-ingest-nats-a", env=env)
    publisher = threading.Thread(target=publish_to_every_node, args=(nats_cluster, n, "kill"), daemon=True)
    try:
        publisher.start()
        wait_until(lambda: stored(db) >= n // 2, timeout=120, what="part of the stream stored")
        proc.kill()
        killed_at = stored(db)
        publisher.join(timeout=180)
        assert not publisher.is_alive(), "every QoS-1 PUBACK came while no ingestor ran"
        proc = HubProcess(hub, "ingest", client_id="mimamori-ingest-nats-b", env=env)
        wait_until(lambda: stored(db) == 3 * n, timeout=180, what=f"all {3 * n} readings after the restart")
    finally:
        stats = proc.stop()
    assert killed_at < 3 * n, "the kill happened mid-stream"
    assert distinct(db) == 3 * n
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    assert stats is not None and stats["messages"] >= 3 * n - killed_at


def test_messages_committed_but_never_acknowledged_are_redelivered_and_stored_once(
    settings, pool, db, city, nats_cluster, monkeypatch
):
    """The ingestor commits and dies before acknowledging; the cluster redelivers to the next one; nothing is
    doubled and the redelivered readings are not handed to the alert engine a second time."""
    from nats.aio.msg import Msg

    from ingest import CommittedReadings
    from mimamori import metrics

    n = 100
    hub = nats_settings(settings, nats_cluster, nats_ack_wait_s=2.0)
    with monkeypatch.context() as m:

        async def lost_ack(self) -> None:  # a crash between commit and acknowledgement
            return None

        m.setattr(Msg, "ack", lost_ack)
        with running_ingestor(hub, pool):
            publish_to_every_node(nats_cluster, n, "noack")
            wait_until(lambda: stored(db) == 3 * n, timeout=90, what="first delivery stored")
    redelivered_before = metrics.NATS_REDELIVERED._value.get()
    committed: list = []
    stream = CommittedReadings()
    stream.subscribe(committed.extend)
    with running_ingestor(hub, pool, committed=stream) as second:
        wait_until(lambda: second.stats.duplicates >= 3 * n, timeout=90, what="the cluster's redelivery")
    assert stored(db) == distinct(db) == 3 * n
    assert committed == []
    assert metrics.NATS_REDELIVERED._value.get() - redelivered_before >= 3 * n
