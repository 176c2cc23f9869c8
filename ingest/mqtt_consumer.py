"""The MQTT side of ingest: paho-mqtt (MQTT 5), a persistent shared subscription, ack after commit.

Memory is bounded twice. The MQTT 5 Receive Maximum we announce bounds the messages: the broker sends at most
that many unacknowledged QoS-1 messages, and we acknowledge only after their batch has committed. The bytes are
bounded too (``ingest_max_queued_bytes``): a window full of maximum-size payloads, each decoded into thousands of
readings, would otherwise be Receive Maximum × 256 KiB × the decoding's expansion. Past the bound the network
thread leaves the socket unread (by the client's fast path it still sends acknowledgements and pings; on paho's
public path, taken when paho lacks what the fast path uses, it sends nothing meanwhile) until a batch commits. When the
database is down, batches wait and the broker holds everything else in our session.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.contract import Reason, subscription_filters
from ingest.dead_letter_quota import DeadLetterQuota, QuotaConfig
from ingest.mqtt_client import make_client
from ingest.observe import record_batch
from ingest.pipeline import Message, Outcome, PipelineConfig, process_safely
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
    cost: int  # estimated bytes it holds until acknowledged


# Estimated memory of a queued message beyond its payload (the message, outcome, liveness and queue entry), of each
# accepted reading, and of a dead letter's summary: measured with tracemalloc, rounded up.
_MESSAGE_OVERHEAD = 1000
_READING_COST = 200
_DEAD_LETTER_COST = 2000


def message_cost(payload: bytes, outcome: Outcome) -> int:
    """What a message costs in memory until its batch commits: its payload and what decoding made of it."""
    return (
        _MESSAGE_OVERHEAD + len(payload) + _READING_COST * len(outcome.readings) + _DEAD_LETTER_COST * len(outcome.dead)
    )


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        topic_prefix=settings.mqtt_topic_prefix,
        max_payload_bytes=settings.ingest_max_payload_bytes,
        limits=Limits(
            max_future=timedelta(seconds=settings.ingest_max_future_s),
            max_past=timedelta(days=settings.ingest_max_past_days),
        ),
    )


def batch_writer(settings: Settings, pool: ConnectionPool, committed: CommittedReadings | None) -> BatchWriter:
    """The writer of an ingest path (MQTT or HTTP push), with its dead-letter quota per device."""
    quota = QuotaConfig(settings.ingest_dead_letter_burst_bytes, settings.ingest_dead_letter_bytes_per_s)
    return BatchWriter(pool, committed, quota=DeadLetterQuota(quota, time.monotonic))


_POLL_S = 0.002  # how often a batch being gathered looks for more messages
_HOLD_WAIT_S = 0.05  # on paho's public path, how long a wait for room lasts before looking at the bound again


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
        self.writer = batch_writer(settings, pool, committed)
        self.registry = RegistryCache(pool)
        self._cfg = pipeline_config(settings)
        # The registry as the network thread sees it; only the batch thread reloads it (that may block).
        self._current = RegistrySnapshot()
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()  # C-level: cheaper per message
        self._generation = 0
        self._in_hand = 0  # messages of the batch being committed
        # Bytes taken in (network thread) and released after commit (batch thread); each counter has one writer.
        self._bytes_in = 0
        self._bytes_out = 0
        self._room = threading.Event()
        self._held = False  # network thread only
        self._stopping = threading.Event()
        metrics.QUEUED_BYTES.set_function(lambda: self._bytes_in - self._bytes_out)
        # Read when scraped rather than counted per message: the network thread's path stays short.
        metrics.QUEUED_MESSAGES.set_function(lambda: self._in_hand + self._queue.qsize())
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._client = make_client(settings, settings.mqtt_client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_plain_publish = self._take
        self._client.hold_reading = self._hold_reading

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
        """Messages with MQTT 5 properties, or at QoS 0, by paho's general path; all of them on paho's public path."""
        content_type = getattr(msg.properties, "ContentType", None) if msg.properties else None
        self._take(msg.topic, msg.payload, msg.mid, msg.qos, content_type)
        if not self._client.fast_path:
            # The public path has no hook before paho reads: waiting here, in its network thread, leaves the socket
            # unread. Nothing is sent meanwhile either (acknowledgements, pings): a hold as long as the broker's
            # keep-alive ends in a reconnect and a redelivery, which the database takes as duplicates.
            while self._hold_reading(_HOLD_WAIT_S):
                pass

    def _take(self, topic: str, payload: bytes, mid: int, qos: int = 1, content_type: str | None = None) -> None:
        """Decode, judge and queue one message. Called directly by the client's fast path for plain QoS-1
        publishes (nearly all of them), and by ``_on_message`` for the rest."""
        message = Message("mqtt", topic, payload, datetime.now(UTC), content_type)
        # Decoding here, not in the batch thread: that thread mostly waits on PostgreSQL with the GIL released,
        # so the two threads overlap instead of taking turns.
        outcome = process_safely(message, self._current, self._cfg)
        cost = message_cost(payload, outcome)
        self._queue.put(_Item(message, outcome, mid, qos, self._generation, cost))
        self._bytes_in += cost

    def _hold_reading(self, wait_s: float) -> bool:
        """Whether the network thread must leave the socket unread for now: ingest holds its bound of bytes.
        Waits up to ``wait_s`` for committed batches to make room."""
        if self._bytes_in - self._bytes_out <= self.settings.ingest_max_queued_bytes or self._stopping.is_set():
            if self._held:
                self._held = False
                log.info("ingest is under its memory bound again: reading the broker")
            return False
        if not self._held:
            self._held = True
            log.info(
                "ingest holds %d bytes unacknowledged, over its bound: reads paused until batches commit",
                self._bytes_in - self._bytes_out,
            )
        self._room.wait(wait_s)
        self._room.clear()
        return self._bytes_in - self._bytes_out > self.settings.ingest_max_queued_bytes

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
                hint = ""
                if "authori" in str(self._connect_error).lower():  # MQTT 5 "Not authorized", 3.1.1 "not authorised"
                    hint = (
                        f" (as {self.settings.mqtt_username} with client id {self.settings.mqtt_client_id}: each "
                        "broker account may connect under its own client id only; `mimamori broker migrate "
                        "--ingest-id ID` gives an ingestor's id an account named after it)"
                    )
                raise ConfigError(f"MQTT broker at {addr} refused us: {self._connect_error}{hint}")
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
            self._stopping.set()
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
        # Only the refused messages are looked at again (a pass over every message is felt at one reading each).
        refused = [item for item in batch if item.outcome.dead]
        unknown = {d.device_id for item in refused for d in item.outcome.dead if d.reason is Reason.unknown_device}
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
            except psycopg.Error:  # the registry query itself failed: judge with the registry as it was
                log.exception("could not reload the device registry; using the one loaded before")
                snapshot = self._current
                break
        self._current = snapshot
        outcomes = [item.outcome for item in batch]
        if unknown:  # a message refused as from an unknown device may name one registered since
            outcomes = [
                process_safely(item.message, snapshot, self._cfg) if _names_new_device(item, snapshot) else outcome
                for item, outcome in zip(batch, outcomes, strict=True)
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
        self._bytes_out += sum(item.cost for item in batch)
        self._room.set()
        self.stats.add_batch(
            len(batch), result.stored, result.duplicates, [str(d.reason) for o in outcomes for d in o.dead]
        )
        record_batch("mqtt", [item.message for item in batch], outcomes, result, datetime.now(UTC))


def _names_new_device(item: _Item, snapshot: RegistrySnapshot) -> bool:
    """The item was refused as unknown, but the device is registered now."""
    return any(d.reason is Reason.unknown_device and d.device_id in snapshot.devices for d in item.outcome.dead)
