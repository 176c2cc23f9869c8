"""The ingestor's MQTT client reads the socket in chunks: every packet arrives whole and in order, over plain TCP and
over TLS, whatever its size against the chunk (tests/test_ingest_mqtt.py and the fault tests cover reconnects)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.contract import subscription_filters, telemetry_topic
from ingest.mqtt_consumer import _READ_CHUNK, make_client
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


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_every_packet_arrives_whole_and_in_order(broker: tuple[Mosquitto, int], tls: bool) -> None:
    mosq, tls_port = broker
    settings = Settings(
        mqtt_url=f"mqtts://localhost:{tls_port}" if tls else mosq.url,
        mqtt_ca_file=str(mosq.data_dir / "server.crt") if tls else None,
        mqtt_username=mosq.ingest_username,
        mqtt_password=mosq.ingest_password,
    )
    payloads = [bytes([65 + i % 26]) * SIZES[i % len(SIZES)] for i in range(600)]
    received: list[bytes] = []
    subscribed = threading.Event()
    client = make_client(settings, f"chunk-test-{tls}", manual_ack=False)
    client.on_message = lambda _c, _u, msg: received.append(msg.payload)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(
        [(f, SubscribeOptions(qos=1)) for f in subscription_filters(PREFIX, f"chunk-{tls}")]
    )
    client.connect("localhost" if tls else "127.0.0.1", tls_port if tls else mosq.port)
    client.loop_start()
    publisher = mosq.client("chunk-publisher")
    try:
        assert subscribed.wait(10), "no SUBACK"
        topic = telemetry_topic(PREFIX, "acme", "acme-soil-1")
        infos = [publisher.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)
        wait_until(lambda: len(received) >= len(payloads), timeout=60, what=f"{len(payloads)} messages")
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        client.loop_stop()
        client.disconnect()
    assert [len(p) for p in received] == [len(p) for p in payloads]
    assert received == payloads
