"""The MQTT side of ingest: paho-mqtt (MQTT 5), a persistent shared subscription, ack after commit.

Memory is bounded by the MQTT 5 Receive Maximum we announce: the broker sends at most that many
unacknowledged QoS-1 messages, and we acknowledge only after their batch has committed. When the
database is down, batches wait and the broker holds everything else in our session.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.contract import Reason, subscription_filters
from ingest.observe import record_batch
from ingest.pipeline import Message, Outcome, PipelineConfig, process, process_safely
from ingest.registry import RegistryCache, RegistrySnapshot
from ingest.stats import IngestStats
from ingest.validation import Limits
from ingest.writer import BatchWriter, CommittedReadings
from mimamori import metrics
from mimamori.errors import ConfigError, UnreachableError
from mimamori.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)  # one per message: not frozen, which is cheaper to build; never mutated
class _Item:
    message: Message
    outcome: Outcome  # decoded and validated on arrival, in the network thread
    mid: int
    qos: int
    generation: int  # connection the message came on; acks are only valid on that one


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        topic_prefix=settings.mqtt_topic_prefix,
        max_payload_bytes=settings.ingest_max_payload_bytes,
        limits=Limits(
            max_future=timedelta(seconds=settings.ingest_max_future_s),
            max_past=timedelta(days=settings.ingest_max_past_days),
        ),
    )


_POLL_S = 0.002  # how often a batch being gathered looks for more messages

_PUBACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id: "success" needs no reason code
_READ_CHUNK = 256 * 1024  # bytes taken from the socket at once


class BatchAckClient(mqtt.Client):
    """paho's client, plus acknowledging a whole committed batch at once and reading the socket in chunks.

    ``ack`` queues one packet per message, and each one wakes the network thread through a socket pair and is
    sent with its own system call; at thousands of messages per second that is a large share of the ingestor's
    time. ``ack_batch`` queues the PUBACKs as one buffer: one wake-up, one send. It relies on paho's
    ``_packet_queue``, as ``ack`` itself does.

    paho reads a packet with three or four ``recv`` calls (its type, its length byte by byte, its body) after a
    ``select`` of its own, for every packet. Here ``recv`` takes whatever the socket holds, up to
    ``_READ_CHUNK``, and paho's small reads are served from that; ``loop_read`` goes on handling packets until
    the chunk is used up, so nothing waits in the buffer while ``select`` sleeps, writing what is due every 64
    packets. These rely on paho's ``_sock_recv`` and ``_sock_close`` (pinned to paho-mqtt 2.x in pyproject.toml;
    tests/test_ingest_mqtt_client.py checks packets of every size over TCP and TLS, the ingest and fault tests
    reconnects).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._chunk = b""
        self._chunk_pos = 0

    def ack_batch(self, mids: list[int]) -> None:
        if mids:
            packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
            self._packet_queue(mqtt.PUBACK, packet, 0, 1)

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

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        handled = 1
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._chunk_pos < len(self._chunk):
            rc = super().loop_read(1)
            handled += 1
            # A burst can keep the chunk from running dry for a while: acknowledgements go out meanwhile, or the
            # broker's window (our Receive Maximum) would fill and stop it.
            if handled % 64 == 0 and self.want_write():
                self.loop_write()
        return rc


def make_client(settings: Settings, client_id: str, *, manual_ack: bool) -> BatchAckClient:
    client = BatchAckClient(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack
    )
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    if settings.mqtt.tls:
        client.tls_set(ca_certs=settings.mqtt_ca_file)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


class MqttIngestor:
    def __init__(
        self,
        settings: Settings,
        pool: ConnectionPool,
        *,
        committed: CommittedReadings | None = None,
        stats: IngestStats | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats or IngestStats()
        self.writer = BatchWriter(pool, committed)
        self.registry = RegistryCache(pool)
        self._cfg = pipeline_config(settings)
        # The registry as the network thread sees it; only the batch thread reloads it (that may block).
        self._current = RegistrySnapshot()
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()  # C-level: cheaper per message
        self._generation = 0
        self._in_hand = 0  # messages of the batch being committed
        # Read when scraped rather than counted per message: the network thread's path stays short.
        metrics.QUEUED_MESSAGES.set_function(lambda: self._in_hand + self._queue.qsize())
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._client = make_client(settings, settings.mqtt_client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # -- paho callbacks (network thread) ---------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, flags: mqtt.ConnectFlags, reason: object, _props: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self._connect_error = str(reason)
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1
        self._connect_error = None
        self.stats.connected = True
        self._connected.set()
        metrics.BROKER_CONNECTED.set(1)
        metrics.BROKER_CONNECTS.inc()
        log.info("connected to %s (session present: %s)", self.settings.mqtt, flags.session_present)
        options = SubscribeOptions(qos=1)
        topics = [
            (f, options)
            for f in subscription_filters(self.settings.mqtt_topic_prefix, self.settings.mqtt_share_group or None)
        ]
        client.subscribe(topics)

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        self.stats.connected = False
        self._connected.clear()
        metrics.BROKER_CONNECTED.set(0)
        log.warning("disconnected from broker: %s", reason)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        content_type = getattr(msg.properties, "ContentType", None) if msg.properties else None
        message = Message("mqtt", msg.topic, msg.payload, datetime.now(UTC), content_type)
        # Decoding here, not in the batch thread: that thread mostly waits on PostgreSQL with the GIL released,
        # so the two threads overlap instead of taking turns.
        outcome = process_safely(message, self._current, self._cfg)
        self._queue.put(_Item(message, outcome, msg.mid, msg.qos, self._generation))

    # -- lifecycle --------------------------------------------------------------------------------

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect once, synchronously, so a wrong address or credentials fail with one clear line."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
        props.ReceiveMaximum = self.settings.mqtt_receive_maximum
        addr = self.settings.mqtt
        self._current = self.registry.snapshot()
        try:
            self._client.connect(addr.host, addr.port, keepalive=30, clean_start=False, properties=props)
        except (OSError, ValueError) as exc:
            raise UnreachableError(f"cannot connect to MQTT broker at {addr}: {exc}") from None
        self._client.loop_start()
        deadline = time.monotonic() + timeout_s
        while not self._connected.wait(0.1):
            if self._connect_error:
                self._client.loop_stop()
                raise ConfigError(f"MQTT broker at {addr} refused us: {self._connect_error}")
            if time.monotonic() > deadline:
                self._client.loop_stop()
                raise UnreachableError(f"MQTT broker at {addr} did not accept the connection in {timeout_s:g}s")

    def run(self, stop: threading.Event) -> None:
        """Take batches until ``stop`` is set; the batch in hand is committed and acknowledged first."""
        try:
            while not stop.is_set():
                batch = self._take_batch(stop)
                if batch:
                    self._commit(batch, stop)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def _take_batch(self, stop: threading.Event) -> list[_Item]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.ingest_batch_ms / 1000.0
        limit = self.settings.ingest_batch_max
        get = self._queue.get_nowait
        while True:
            try:
                while len(batch) < limit:
                    batch.append(get())
                break  # full
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.is_set():
                break
            # Polled, not a blocking get: waiting on the queue would wake this thread for every message put,
            # each time taking the interpreter from the network thread; a short nap takes them by the hundred.
            time.sleep(min(_POLL_S, remaining))
        self._in_hand = len(batch)
        return batch

    def _commit(self, batch: list[_Item], stop: threading.Event) -> None:
        unknown = {d.device_id for item in batch for d in item.outcome.dead if d.reason is Reason.unknown_device}
        delay = 0.1
        while True:
            try:
                # Reloads when stale, or early when a message named a device we do not know yet.
                snapshot = self.registry.snapshot({u for u in unknown if u} or None)
                break
            except (psycopg.OperationalError, PoolTimeout):
                if stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
        self._current = snapshot
        outcomes = [
            process(item.message, snapshot, self._cfg) if _names_new_device(item, snapshot) else item.outcome
            for item in batch
        ]
        started = time.monotonic()
        result = self.writer.write(outcomes, stop)
        if result is None:
            return  # stopping before the database came back: nothing acked, the broker redelivers
        metrics.COMMIT_SECONDS.observe(time.monotonic() - started)
        generation = self._generation
        # QoS 1 only (we subscribe at 1, so the broker never sends 2); acks are valid on the connection only.
        self._client.ack_batch([item.mid for item in batch if item.qos == 1 and item.generation == generation])
        self._in_hand = 0
        self.stats.add_batch(
            len(batch), result.stored, result.duplicates, [str(d.reason) for o in outcomes for d in o.dead]
        )
        record_batch("mqtt", [item.message for item in batch], outcomes, result, datetime.now(UTC))


def _names_new_device(item: _Item, snapshot: RegistrySnapshot) -> bool:
    """The item was refused as unknown, but the device is registered now."""
    return any(d.reason is Reason.unknown_device and d.device_id in snapshot.devices for d in item.outcome.dead)
