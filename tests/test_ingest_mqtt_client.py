"""The ingestor's MQTT client reads the socket in chunks and takes plain publishes by a fast path: every packet
arrives whole and in order, over plain TCP and over TLS, whatever its size against the chunk, by paho's path and by
the fast one alike (tests/test_ingest_plain_publish.py checks the fast path's parsing on bytes alone;
tests/test_ingest_mqtt.py and the fault tests cover reconnects)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.contract import subscription_filters, telemetry_topic
from ingest.mqtt_client import _READ_CHUNK, BatchAckClient, make_client
from mimamori.settings import Settings
from tests.services import Mosquitto, free_port, wait_until

PREFIX = "mimamori/v1"


def _self_signed(folder: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(folder / "server.key"),
         "-out", str(folder / "server.crt")],
        check=True,
        capture_output=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def broker() -> Iterator[tuple[Mosquitto, int]]:
    """The project's broker configuration, plus a TLS listener with a throw-away certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test certificate (installed with Debian's base system)")
    mosq = Mosquitto()
    _self_signed(mosq.data_dir)
    for f in ("server.key", "server.crt"):
        (mosq.data_dir / f).chmod(0o644)  # the broker may drop to its own user; a test key only
    tls_port = free_port()
    mosq.extra_conf = (
        f"listener {tls_port} 127.0.0.1\n"
        f"certfile {mosq.data_dir / 'server.crt'}\nkeyfile {mosq.data_dir / 'server.key'}\n"
    )
    mosq.start()
    yield mosq, tls_port
    mosq.cleanup()


# Sizes around the chunk and paho's reads: a byte, a one-byte length, a two-byte one, tens of kilobytes, and a
# packet larger than a whole chunk (so it needs several reads), then small ones again right behind it.
SIZES = [1, 100, 127, 128, 700, 16_385, 65_536, _READ_CHUNK + 5_000, 3, 200]


def subscriber(mosq: Mosquitto, tls_port: int, tls: bool, client_id: str, *, fast: bool) -> BatchAckClient:
    """The ingestor's client, subscribed; with ``fast``, acknowledging by hand as the ingestor does."""
    settings = Settings(
        mqtt_url=f"mqtts://localhost:{tls_port}" if tls else mosq.url,
        mqtt_ca_file=str(mosq.data_dir / "server.crt") if tls else None,
        mqtt_username=mosq.ingest_username,
        mqtt_password=mosq.ingest_password,
    )
    client = make_client(settings, client_id, manual_ack=fast)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(
        [(f, SubscribeOptions(qos=1)) for f in subscription_filters(PREFIX, client_id)]
    )
    client.connect("localhost" if tls else "127.0.0.1", tls_port if tls else mosq.port)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK"
    return client


def publish_all(mosq: Mosquitto, messages: list[tuple[bytes, int, Properties | None]]) -> None:
    publisher = mosq.client("chunk-publisher")
    try:
        topic = telemetry_topic(PREFIX, "acme", "acme-soil-1")
        infos = [publisher.publish(topic, p, qos=q, properties=props) for p, q, props in messages]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        publisher.loop_stop()
        publisher.disconnect()


@pytest.mark.parametrize("fast", [False, True], ids=["paho-path", "fast-path"])
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_every_packet_arrives_whole_and_in_order(broker: tuple[Mosquitto, int], tls: bool, fast: bool) -> None:
    mosq, tls_port = broker
    payloads = [bytes([65 + i % 26]) * SIZES[i % len(SIZES)] for i in range(600)]
    received: list[bytes] = []
    by_fast_path: list[int] = []
    client = subscriber(mosq, tls_port, tls, f"chunk-{tls}-{fast}", fast=fast)
    client.on_message = lambda _c, _u, msg: received.append(msg.payload)
    if fast:

        def plain(_topic: str, payload: bytes, mid: int) -> None:
            received.append(payload)
            by_fast_path.append(mid)
            client.ack_batch([mid])

        client.on_plain_publish = plain
    try:
        publish_all(mosq, [(p, 1, None) for p in payloads])
        wait_until(lambda: len(received) >= len(payloads), timeout=60, what=f"{len(payloads)} messages")
    finally:
        client.loop_stop()
        client.disconnect()
    assert [len(p) for p in received] == [len(p) for p in payloads]
    assert received == payloads
    if fast:  # all plain; paho's path takes those not wholly in the chunk read (the largest, and some others)
        assert len(by_fast_path) > len(payloads) // 2


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_messages_with_properties_or_at_qos_0_take_paho_path_in_order(broker: tuple[Mosquitto, int], tls: bool) -> None:
    """A content type (SenML) and QoS 0 are paho's to read; plain ones beside them stay in order."""
    mosq, tls_port = broker
    senml = Properties(PacketTypes.PUBLISH)
    senml.ContentType = "application/senml+json"
    kinds = [("plain", 1, None), ("senml", 1, senml), ("qos0", 0, None)]
    messages = [(f"{i}:{kinds[i % 3][0]}".encode(), kinds[i % 3][1], kinds[i % 3][2]) for i in range(300)]
    received: list[tuple[bytes, str, int, str | None]] = []
    client = subscriber(mosq, tls_port, tls, f"mixed-{tls}", fast=True)

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        received.append((msg.payload, "paho", msg.qos, getattr(msg.properties, "ContentType", None)))
        if msg.qos == 1:
            client.ack_batch([msg.mid])

    def plain(_topic: str, payload: bytes, mid: int) -> None:
        received.append((payload, "fast", 1, None))
        client.ack_batch([mid])

    client.on_message = on_message
    client.on_plain_publish = plain
    try:
        publish_all(mosq, messages)
        wait_until(lambda: len(received) >= len(messages), timeout=60, what=f"{len(messages)} messages")
    finally:
        client.loop_stop()
        client.disconnect()
    # MQTT keeps order within a QoS level, not across levels (the broker may send QoS 0 ahead of queued QoS 1).
    for level in (0, 1):
        assert [r[0] for r in received if r[2] == level] == [m[0] for m in messages if m[1] == level]
    sent = {payload: (qos, props) for payload, qos, props in messages}
    for payload, path, qos, content_type in received:
        sent_qos, props = sent[payload]
        assert (qos, content_type) == (sent_qos, props.ContentType if props else None)
        if not payload.endswith(b":plain"):
            assert path == "paho", payload
    plain = [r for r in received if r[0].endswith(b":plain")]
    assert sum(r[1] == "fast" for r in plain) > len(plain) // 2
