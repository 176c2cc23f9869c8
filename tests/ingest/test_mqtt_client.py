"""The ingestor's MQTT client reads the socket in chunks and takes plain publishes by a fast path: every packet
arrives whole and in order, over plain TCP and over TLS, whatever its size against the chunk, by paho's path and by
the fast one alike (tests/ingest/test_plain_publish.py checks the fast path's parsing on bytes alone;
tests/ingest/test_mqtt.py and the fault tests cover reconnects).

The fast path's fence: ``PAHO_PRIVATE_NAMES`` is every private paho name the module uses, the installed paho is
the pinned one, a paho lacking one of them gets paho's public path with one warning, and that path ingests exactly
once and acknowledges what it stored."""

from __future__ import annotations

import ast
import json
import logging
import shutil
import subprocess
import threading
import tomllib
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg_pool import ConnectionPool

import ingest.mqtt_client
from ingest.codecs import encode_senml
from ingest.contract import RawReading, subscription_filters, telemetry_topic
from ingest.mqtt_client import (
    _READ_CHUNK,
    PAHO_PRIVATE_NAMES,
    BatchAckClient,
    PublicPathClient,
    make_client,
    missing_paho_names,
)
from mimamori.settings import Settings
from tests.services import Mosquitto, free_port, running_ingestor, wait_until

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
def tls_broker() -> Iterator[tuple[Mosquitto, int]]:
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
def test_every_packet_arrives_whole_and_in_order(tls_broker: tuple[Mosquitto, int], tls: bool, fast: bool) -> None:
    mosq, tls_port = tls_broker
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
def test_messages_with_properties_or_at_qos_0_take_paho_path_in_order(
    tls_broker: tuple[Mosquitto, int], tls: bool
) -> None:
    """A content type (SenML) and QoS 0 are paho's to read; plain ones beside them stay in order."""
    mosq, tls_port = tls_broker
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


# -- the fence around the fast path ---------------------------------------------------------------------------

MODULE = Path(ingest.mqtt_client.__file__)
ROOT = Path(__file__).resolve().parents[2]


def _private_uses(tree: ast.AST) -> set[str]:
    """Every ``x._name`` (not dunder) in ``tree``, and every ``_name`` imported from paho."""
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paho"):
            used |= {a.name for a in node.names if a.name.startswith("_")}
    return used


def _own_names(tree: ast.Module) -> set[str]:
    """Names the module's classes make themselves: attributes they assign on self, methods paho has not."""
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)  # instance attributes too
    own = set()
    for node in ast.walk(tree):
        on_self = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        if on_self and isinstance(node.ctx, ast.Store) and not hasattr(paho, node.attr):
            own.add(node.attr)
        if isinstance(node, ast.ClassDef):
            own |= {f.name for f in node.body if isinstance(f, ast.FunctionDef) and not hasattr(paho, f.name)}
    return own


def test_the_list_of_private_names_is_what_the_module_uses() -> None:
    """A new reach into paho, or one no longer made, fails here until PAHO_PRIVATE_NAMES says so."""
    tree = ast.parse(MODULE.read_text())
    on_objects = _private_uses(tree) - _own_names(tree)
    # Module-level names of paho.mqtt.client: its constants (ints) and classes are its documented API, the rest not.
    from_module = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "mqtt"
    }
    undocumented = {n for n in from_module if not isinstance(getattr(mqtt, n), int | type)}
    assert undocumented == {"time_func"}  # what the module reads of paho.mqtt.client beyond constants and classes
    assert sorted(on_objects | undocumented) == sorted(PAHO_PRIVATE_NAMES)
    assert len(set(PAHO_PRIVATE_NAMES)) == len(PAHO_PRIVATE_NAMES)
    # The fallback reaches into nothing: its class and the base it shares with the fast path use public paho only.
    classes = {c.name: c for c in tree.body if isinstance(c, ast.ClassDef)}
    for name in ("IngestClient", "PublicPathClient"):
        assert _private_uses(classes[name]) & set(PAHO_PRIVATE_NAMES) == set(), name


def test_paho_is_the_pinned_minor_and_has_every_name() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("paho-mqtt"))
    major, minor = (int(x) for x in paho.mqtt.__version__.split(".")[:2])
    assert pin == f"paho-mqtt>={major}.{minor},<{major}.{minor + 1}", "pinned to one minor: the installed one"
    assert missing_paho_names() == []


def test_the_pinned_paho_gets_the_fast_path_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ingest.mqtt_client"):
        client = make_client(Settings(), "fence-fast", manual_ack=True)
    assert type(client) is BatchAckClient and client.fast_path
    assert [r for r in caplog.records if r.name == "ingest.mqtt_client"] == []


class _WithoutPingTime(mqtt.Client):
    """A paho whose client no longer keeps ``_ping_t``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        del self._ping_t


class _WithChangedPacketQueue(mqtt.Client):
    """A paho whose ``_packet_queue`` takes other arguments than the fast path passes."""

    def _packet_queue(self, packet: bytes) -> mqtt.MQTTErrorCode:  # type: ignore[override]
        raise AssertionError("never called by the check")


class _WithPacketInfo(mqtt.Client):
    """A paho that keeps the packet being read in an object, not in a dict with a "command" key."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._in_packet = types.SimpleNamespace(command=0)  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("paho_client", "missing"),
    [(_WithoutPingTime, ["_ping_t"]), (_WithChangedPacketQueue, ["_packet_queue"]), (_WithPacketInfo, ["_in_packet"])],
    ids=["attribute-gone", "signature-changed", "attribute-changed"],
)
def test_the_self_check_names_what_a_client_lacks(paho_client: type[mqtt.Client], missing: list[str]) -> None:
    assert missing_paho_names(paho_client) == missing


def test_the_self_check_names_a_module_level_name_gone() -> None:
    """paho's own code needs time_func while it is there, so it is taken away from a copy of the module."""
    module = types.ModuleType(mqtt.__name__)
    module.__dict__.update({k: v for k, v in vars(mqtt).items() if k != "time_func"})
    assert missing_paho_names(paho_module=module) == ["time_func"]


@pytest.mark.parametrize("name", ["_packet_read", "_easy_log", "_sock_recv"])
def test_a_paho_without_a_method_gets_the_public_path_and_one_warning(
    name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(mqtt.Client, name)
    with caplog.at_level(logging.WARNING, logger="ingest.mqtt_client"):
        client = make_client(Settings(), "fence-public", manual_ack=True)
    assert type(client) is PublicPathClient and not client.fast_path
    warnings = [r.getMessage() for r in caplog.records if r.name == "ingest.mqtt_client"]
    assert len(warnings) == 1, warnings
    assert f"paho-mqtt {paho.mqtt.__version__} lacks" in warnings[0]
    assert f"({name})" in warnings[0] and "public path" in warnings[0]
    assert caplog.records[-1].levelno == logging.WARNING


# What the pinned paho does not have: asked for as well, it sends make_client to paho's public path over the real,
# unaltered paho (taking a name paho itself needs away would break paho, not just the fast path).
_GONE = "_a_name_paho_2_2_lacks"


@pytest.fixture
def public_path(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    monkeypatch.setattr(ingest.mqtt_client, "PAHO_PRIVATE_NAMES", (*PAHO_PRIVATE_NAMES, _GONE))
    caplog.set_level(logging.INFO, logger="ingest")
    return caplog


T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
GAUGE = "mimamori/v1/toyota-city/gauge-1/telemetry"


def _reading(i: int, padding: int = 0) -> bytes:
    reading = {"ts": (T0 + timedelta(seconds=i)).isoformat(), "values": {"water_level": (i % 1000) / 100}}
    return json.dumps(reading).encode() + b" " * padding  # JSON allows the trailing whitespace


def _publish(broker: Mosquitto, topic: str, payloads: list[bytes], properties: Properties | None = None) -> None:
    client = broker.client()
    try:
        for info in [client.publish(topic, p, qos=1, properties=properties) for p in payloads]:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def _count(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    return int(row[0])


def test_the_public_path_ingests_exactly_once_and_acknowledges(
    settings: Settings,
    pool: ConnectionPool,
    db: psycopg.Connection,
    broker: Mosquitto,
    city: dict[str, str],
    public_path: pytest.LogCaptureFixture,
) -> None:
    n = 400
    senml = Properties(PacketTypes.PUBLISH)
    senml.ContentType = "application/senml+json"
    later = [RawReading(T0 + timedelta(hours=1, seconds=i), "water_level", 2.0) for i in range(5)]
    with running_ingestor(settings, pool) as first:
        assert type(first._client) is PublicPathClient
        _publish(broker, GAUGE, [_reading(i) for i in range(n)])
        _publish(broker, GAUGE, [encode_senml("urn:dev:gauge-1:", later)], senml)  # properties: on_message too
        # Counted after the batch's acknowledgements are queued.
        wait_until(lambda: first.stats.messages >= n + 1, what=f"{n + 1} messages by paho's public path")
        assert (first.stats.messages, first.stats.duplicates, _count(db)) == (n + 1, 0, n + 5)
    warnings = [r.getMessage() for r in public_path.records if r.name == "ingest.mqtt_client"]
    assert warnings == [f"paho-mqtt {paho.mqtt.__version__} lacks what the ingest fast path uses ({_GONE}): "
                        "taking paho's public path, which is slower (install the paho-mqtt version pyproject.toml "
                        "pins; docs/scaling.md)"]  # fmt: skip

    # Same client id, so the broker's session: anything stored but not acknowledged would come again, ahead of a
    # new message (MQTT keeps QoS-1 order on a session), and be counted as a duplicate.
    with running_ingestor(settings, pool) as second:
        assert type(second._client) is PublicPathClient
        _publish(broker, GAUGE, [_reading(n)])
        wait_until(lambda: second.stats.messages >= 1, what="the message sent after the restart")
        assert (second.stats.messages, second.stats.duplicates, second.stats.stored) == (1, 0, 1)
    assert _count(db) == n + 6
    assert db.execute("SELECT count(DISTINCT (device_id, metric, time)) FROM readings").fetchone() == (n + 6,)


def test_the_public_path_holds_at_the_byte_bound_and_still_takes_everything(
    settings: Settings,
    pool: ConnectionPool,
    db: psycopg.Connection,
    broker: Mosquitto,
    city: dict[str, str],
    public_path: pytest.LogCaptureFixture,
) -> None:
    """Payloads of 150 KiB against the smallest bound (1 MiB): on_message waits for commits, nothing is lost."""
    n = 40
    bounded = settings.model_copy(update={"ingest_max_queued_bytes": 1024 * 1024, "ingest_batch_ms": 300})
    with running_ingestor(bounded, pool) as ingestor:
        assert type(ingestor._client) is PublicPathClient
        _publish(broker, GAUGE, [_reading(i, padding=150 * 1024) for i in range(n)])
        wait_until(lambda: ingestor.stats.messages >= n, timeout=60, what=f"{n} large readings")
        assert (ingestor.stats.messages, ingestor.stats.duplicates, _count(db)) == (n, 0, n)
    messages = [r.getMessage() for r in public_path.records if r.name == "ingest.mqtt_consumer"]
    assert any("reads paused until batches commit" in m for m in messages), messages
    assert any("under its memory bound again" in m for m in messages), messages
