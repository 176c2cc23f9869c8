"""The ingestor's MQTT client: paho-mqtt's, made cheaper per message where ingest spends its time.

Three changes, each behind paho's own behaviour. They reach into paho's private names (``PAHO_PRIVATE_NAMES``), so
pyproject.toml pins paho-mqtt to the minor they were checked against (2.2), and ``make_client`` checks them on a
paho client first: with any of them missing (or no longer callable as used), it warns once and builds a
``PublicPathClient`` instead, which uses paho's public API only (``on_message``, ``ack``). The changes:

* ``ack_batch`` queues the PUBACKs of a committed batch as one buffer: one wake-up of the network thread and one
  ``send``, where ``ack`` wakes it and sends once per message.
* The socket is read in chunks. paho reads a packet with three or four ``recv`` calls (type, length byte by byte,
  body) after a ``select`` of its own; here ``recv`` takes whatever the socket holds, up to ``_READ_CHUNK``, paho's
  small reads are served from it, and ``loop_read`` handles packets until the chunk is used up.
* Plain publishes skip paho's general path. A PUBLISH at QoS 1 without MQTT 5 properties (what devices send, and
  what the broker forwards to us) is cut out of the chunk and handed to ``on_plain_publish`` as topic, payload
  and packet id. paho's path builds a ``Properties`` object (it fills two dictionaries of every property MQTT 5
  has, then walks them to clear it), an ``MQTTMessage``, a debug log line and a topic match for each message:
  at thousands of messages a second, most of the client's time. Anything else (other packets, QoS 0 or 2,
  properties such as a content type, a packet not yet wholly received, or anything malformed) goes to paho as
  before, so paho still parses, rejects and logs it.

tests/ingest/test_plain_publish.py checks the fast path against paho's own decoder on arbitrary bytes;
tests/ingest/test_mqtt_client.py checks both paths through a real broker over TCP and TLS, that
``PAHO_PRIVATE_NAMES`` is what this module uses, and ingest through ``PublicPathClient``; the ingest and fault
tests cover reconnects and redelivery.
"""

from __future__ import annotations

import inspect
import logging
import struct
from collections.abc import Callable
from types import ModuleType
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from mimamori.settings import Settings

PublishHandler = Callable[[str, bytes, int], None]
"""Called with topic, payload and packet id of a plain QoS-1 PUBLISH, in the network thread."""

_PUBACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id: "success" needs no reason code
_READ_CHUNK = 256 * 1024  # bytes taken from the socket at once
_WRITE_EVERY = 64  # packets handled between chances to send what is due (acknowledgements)
_HOLD_WAIT_S = 0.05  # how long a held read waits for room before paho's loop goes round (writes, pings)
_PLAIN_QOS1_PUBLISH = 0x32  # first byte, DUP and RETAIN masked off (0xF6): packet type 3, QoS 1

log = logging.getLogger(__name__)

PAHO_PRIVATE_NAMES: tuple[str, ...] = (
    # Methods of paho's Client the fast path calls, or overrides and calls through super().
    "_easy_log",
    "_packet_queue",
    "_packet_read",
    "_sock_close",
    "_sock_recv",
    # Attributes paho's Client sets up in __init__.
    "_in_callback_mutex",
    "_in_packet",
    "_last_bytes_received",
    "_manual_ack",
    "_msgtime_mutex",
    "_ping_t",
    "_protocol",
    # Module-level, in paho.mqtt.client: undocumented, the clock paho measures _last_bytes_received on.
    "time_func",
)
"""Every name of paho's the fast path relies on beyond its documented API (tests/ingest/test_mqtt_client.py
compares it with what this module uses)."""

_PAHO_MODULE_NAMES = frozenset({"time_func"})
# The callables among them, with the positional arguments the fast path passes: a changed signature counts as missing.
_PAHO_CALLS = {"_easy_log": 3, "_packet_queue": 4, "_packet_read": 0, "_sock_close": 0, "_sock_recv": 1, "time_func": 0}
_ABSENT = object()


def missing_paho_names(paho_client: type[mqtt.Client] = mqtt.Client, paho_module: ModuleType = mqtt) -> list[str]:
    """The names of ``PAHO_PRIVATE_NAMES`` that a client of ``paho_client`` (or ``paho_module``, for module-level
    ones) lacks, or cannot use as the fast path does. Asked of paho's own class, not ours: ours defines some."""
    probe = paho_client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)  # opens no socket
    missing = []
    for name in PAHO_PRIVATE_NAMES:
        value = getattr(paho_module if name in _PAHO_MODULE_NAMES else probe, name, _ABSENT)
        if value is _ABSENT or not _fits(name, value):
            missing.append(name)
    return missing


def _fits(name: str, value: object) -> bool:
    """Whether paho's ``name`` is still what the fast path uses it as."""
    if name == "_in_packet":
        return isinstance(value, dict) and "command" in value  # paho's dict of the packet being received
    if name not in _PAHO_CALLS:
        return True
    if not callable(value):
        return False
    try:
        inspect.signature(value).bind(*[None] * _PAHO_CALLS[name])
    except TypeError:
        return False
    except ValueError:  # a builtin without a signature to read: being callable is all that can be checked
        return True
    return True


class IngestClient(mqtt.Client):
    """What the ingestor needs of its MQTT client, by the fast path (``BatchAckClient``) or paho's public one."""

    fast_path = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Taken only with manual acknowledgement (paho would acknowledge after on_message) and MQTT 5, whose
        # packet layout the fast path reads. Never called on paho's public path: on_message has every message.
        self.on_plain_publish: PublishHandler | None = None
        # Asked before each read of the socket, with how long it may wait: True while the owner holds as much as
        # it may, and the socket must wait. TCP then pushes back on the broker. The public path has no hook
        # before a read: its owner holds in on_message instead (ingest/mqtt_consumer.py).
        self.hold_reading: Callable[[float], bool] | None = None

    def ack_batch(self, mids: list[int]) -> None:
        """Acknowledge these QoS-1 messages (of the connection they came on)."""
        raise NotImplementedError


class PublicPathClient(IngestClient):
    """paho's client by its public API alone, for a paho whose private names are not what the fast path needs."""

    def ack_batch(self, mids: list[int]) -> None:
        for mid in mids:
            self.ack(mid, 1)


class BatchAckClient(IngestClient):
    """paho's client, plus batched acknowledgements, chunked reads and a fast path for plain publishes."""

    fast_path = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chunk = b""
        self._chunk_pos = 0

    def ack_batch(self, mids: list[int]) -> None:
        if mids:
            packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
            self._packet_queue(mqtt.PUBACK, packet, 0, 1)

    # -- reading ------------------------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._chunk_pos
        if pos >= len(self._chunk):
            data = super()._sock_recv(_READ_CHUNK)  # BlockingIOError when the socket has nothing
            if len(data) <= bufsize:
                return data  # b"" (closed) included
            self._chunk, pos = data, 0
        out = self._chunk[pos : pos + bufsize]
        self._chunk_pos = pos + len(out)
        return out

    def _sock_close(self) -> None:
        self._chunk, self._chunk_pos = b"", 0  # what was left of the old connection is not the new one's
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        hold = self.hold_reading
        if hold is not None and self._chunk_pos >= len(self._chunk) and hold(_HOLD_WAIT_S):
            # Not reading, but still writing and pinging (the rest of paho's loop): the broker must not take us for
            # dead and drop the session's in-flight messages onto a redelivery. Bytes waiting on the socket are
            # the broker heard, so paho's own keep-alive must not give up on an unread PINGRESP either.
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            self._ping_t = 0
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        rc = super().loop_read(max_packets)
        handled = 1
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._chunk_pos < len(self._chunk):
            rc = super().loop_read(1)
            handled += 1
            # A burst can keep the chunk from running dry for a while: acknowledgements go out meanwhile, or the
            # broker's window (our Receive Maximum) would fill and stop it.
            if handled % _WRITE_EVERY == 0 and self.want_write():
                self.loop_write()
        return rc

    def _packet_read(self) -> MQTTErrorCode:
        handler = self.on_plain_publish
        if handler is None or self._in_packet["command"] != 0 or not self._manual_ack or self._protocol != mqtt.MQTTv5:
            return super()._packet_read()  # also finishes a packet paho has begun
        if self._chunk_pos >= len(self._chunk):
            try:
                data = super()._sock_recv(_READ_CHUNK)
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            if not data:
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            self._chunk, self._chunk_pos = data, 0
        if not self._handle_plain_publishes(handler):
            return super()._packet_read()
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()  # keep-alive: the broker was heard
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_plain_publishes(self, handler: PublishHandler) -> int:
        """Hand on the plain publishes at the head of the chunk; stop at the first packet paho should see."""
        chunk = self._chunk
        size = len(chunk)
        pos = self._chunk_pos
        handled = 0
        while pos < size and chunk[pos] & 0xF6 == _PLAIN_QOS1_PUBLISH:
            # Remaining length: a variable byte integer of at most 4 bytes.
            i, length, shift = pos + 1, 0, 0
            while i < size and shift <= 21:
                byte = chunk[i]
                i += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            else:
                break  # not all here yet, or malformed
            end = i + length
            if end > size or i + 2 > end:
                break
            topic_end = i + 2 + ((chunk[i] << 8) | chunk[i + 1])
            props = topic_end + 2  # after the packet id
            if props >= end or chunk[props] != 0:
                break  # properties to parse, or malformed
            try:
                topic = chunk[i + 2 : topic_end].decode()
            except UnicodeDecodeError:
                break
            mid = (chunk[topic_end] << 8) | chunk[topic_end + 1]
            self._chunk_pos = pos = end
            with self._in_callback_mutex:  # as paho holds it around on_message
                handler(topic, chunk[props + 1 : end], mid)
            handled += 1
            if handled % _WRITE_EVERY == 0 and self.want_write():
                self.loop_write()
        return handled


def make_client(settings: Settings, client_id: str, *, manual_ack: bool) -> IngestClient:
    """The fast path's client if this paho has every name it uses, else paho's public path, with one warning."""
    missing = missing_paho_names()
    if missing:
        log.warning(
            "paho-mqtt %s lacks what the ingest fast path uses (%s): taking paho's public path, which is slower "
            "(install the paho-mqtt version pyproject.toml pins; docs/scaling.md)",
            paho.mqtt.__version__,
            ", ".join(missing),
        )
    kind = PublicPathClient if missing else BatchAckClient
    client = kind(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    if settings.mqtt.tls:
        client.tls_set(ca_certs=settings.mqtt_ca_file)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client
