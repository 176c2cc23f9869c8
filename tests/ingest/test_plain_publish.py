"""The client's fast path for plain publishes against paho's own decoder, on bytes alone (no broker).

Whatever the chunk holds, the fast path either hands on a packet exactly as paho's ``decode_publish`` reads it, or
stops at the packet's first byte and leaves it to paho; it never raises and never reads past the chunk.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_client import BatchAckClient, make_client
from mimamori.settings import Settings


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(
    topic: bytes, payload: bytes, mid: int, *, qos: int = 1, dup: bool = False, retain: bool = False,
    content_type: str | None = None,
) -> bytes:  # fmt: skip
    """A PUBLISH as a broker sends it to an MQTT 5 subscriber."""
    props = Properties(PacketTypes.PUBLISH)
    if content_type is not None:
        props.ContentType = content_type
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    body += props.pack() + payload
    header = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    return bytes([header]) + _varint(len(body)) + body


def client_over(chunk: bytes) -> tuple[BatchAckClient, list[tuple[str, bytes, int]]]:
    client = make_client(Settings(), "fast-path-test", manual_ack=True)
    seen: list[tuple[str, bytes, int]] = []
    client._chunk, client._chunk_pos = chunk, 0
    return client, seen


def packet_bounds(chunk: bytes, start: int) -> tuple[int, int, int]:
    """(header byte, body start, body end) of the packet at ``start``, read as paho reads the fixed header."""
    i, length, mult = start + 1, 0, 1
    while True:
        byte = chunk[i]
        i += 1
        length += (byte & 0x7F) * mult
        mult *= 128
        if byte < 0x80:
            return chunk[start], i, i + length


topics = st.text(min_size=1, max_size=80).map(lambda t: t.encode())
payloads = st.binary(max_size=300) | st.binary(min_size=16_380, max_size=16_400)
packets = st.builds(
    publish_packet,
    topics,
    payloads,
    st.integers(1, 65535),
    qos=st.sampled_from([0, 1, 1, 1, 2]),
    dup=st.booleans(),
    retain=st.booleans(),
    content_type=st.none() | st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
)


@given(st.lists(packets, min_size=1, max_size=12), st.data())
def test_handed_on_exactly_as_paho_decodes_it_or_left_to_paho(chunk_packets: list[bytes], data: st.DataObject) -> None:
    whole = b"".join(chunk_packets)
    # The socket may have delivered any prefix of the stream so far.
    chunk = whole[: data.draw(st.integers(1, len(whole)), label="bytes received")]
    client, seen = client_over(chunk)
    handled = client._handle_plain_publishes(lambda t, p, m: seen.append((t, p, m)))

    assert handled == len(seen)
    pos = 0
    for topic, payload, mid in seen:
        header, body, end = packet_bounds(chunk, pos)
        decoded = _packet.decode_publish(header, chunk[body:end], MQTTProtocolVersion.MQTTv5)
        assert decoded.qos == 1
        assert decoded.properties is not None and decoded.properties.isEmpty()
        assert (topic, payload, mid) == (decoded.topic.decode(), decoded.payload, decoded.mid)
        pos = end
    assert client._chunk_pos == pos  # on a packet boundary: paho takes over from there
    assert chunk[:pos] == b"".join(chunk_packets[: len(seen)])

    # Where it stopped, the packet was one for paho: not whole yet, not QoS 1, or with properties.
    if pos < len(chunk):
        index = len(seen)
        stopped_at = chunk_packets[index]
        whole_here = chunk[pos : pos + len(stopped_at)] == stopped_at
        header = stopped_at[0]
        _, body, end = packet_bounds(stopped_at, 0)
        props = _packet.decode_publish(header, stopped_at[body:end], MQTTProtocolVersion.MQTTv5).properties
        assert not whole_here or (header & 0x06) != 0x02 or not props.isEmpty()


@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_never_raise_nor_read_past_the_chunk(chunk: bytes) -> None:
    client, seen = client_over(chunk)
    handled = client._handle_plain_publishes(lambda t, p, m: seen.append((t, p, m)))
    assert handled == len(seen)
    assert 0 <= client._chunk_pos <= len(chunk)
    # Whatever it handed on was a whole, well-formed QoS-1 PUBLISH by paho's reading.
    pos = 0
    for topic, payload, mid in seen:
        header, body, end = packet_bounds(chunk, pos)
        assert end <= len(chunk)
        decoded = _packet.decode_publish(header, chunk[body:end], MQTTProtocolVersion.MQTTv5)
        assert (topic, payload, mid) == (decoded.topic.decode(), decoded.payload, decoded.mid)
        pos = end
    assert client._chunk_pos == pos


def test_examples_each_path() -> None:
    plain = publish_packet(b"mimamori/v1/acme/gauge-1/telemetry", b'{"values":{"water_level":1.5}}', 7)
    redelivered = publish_packet(b"mimamori/v1/acme/gauge-1/telemetry", b"{}", 8, dup=True, retain=True)
    senml = publish_packet(b"mimamori/v1/acme/gauge-1/telemetry", b"[]", 9, content_type="application/senml+json")
    qos0 = publish_packet(b"mimamori/v1/acme/gauge-1/telemetry", b"{}", 0, qos=0)

    client, seen = client_over(plain + redelivered + senml + plain)
    assert client._handle_plain_publishes(lambda t, p, m: seen.append((t, p, m))) == 2
    assert seen == [
        ("mimamori/v1/acme/gauge-1/telemetry", b'{"values":{"water_level":1.5}}', 7),
        ("mimamori/v1/acme/gauge-1/telemetry", b"{}", 8),
    ]
    assert client._chunk_pos == len(plain + redelivered)  # the SenML one, with a content type, is paho's

    for other in (qos0, plain[:-1], b"\x20\x03\x00\x00\x00"):  # QoS 0, a packet cut short, a CONNACK
        client, _ = client_over(other)
        assert client._handle_plain_publishes(lambda t, p, m: pytest.fail(f"handed on {p!r}")) == 0
        assert client._chunk_pos == 0
