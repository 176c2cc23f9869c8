"""The NATS side of ingest (MIMAMORI_BROKER=nats): a durable JetStream pull consumer, ack after commit (nats-py).

Devices publish MQTT 3.1.1 to any node of a NATS cluster; NATS's MQTT support turns each topic into a subject
(devices/nats_auth.py) that the device stream (``MIMAMORI_NATS_STREAM``, replicated ``MIMAMORI_NATS_STREAM_REPLICAS``
times) keeps. Every ingestor, on any machine, pulls from one durable consumer with explicit acknowledgement: any
ingestor takes any message, and a message an ingestor took and did not acknowledge (it crashed, or the database
held its batch past the ack wait without the ingestor saying it is still working on it) is delivered again, to
whichever pulls next. Messages go through the same pipeline and the same batch writer as the MQTT path; they are
acknowledged only after the transaction that stored them committed, so a redelivery is stored once all the same
(readings are keyed by device, metric and time).

Bounded: one batch in hand (at most ``MIMAMORI_INGEST_BATCH_MAX`` messages, each at most the stream's maximum
message size, ``MIMAMORI_INGEST_MAX_PAYLOAD_BYTES``), and the consumer's ``max_ack_pending`` across all ingestors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from datetime import UTC, datetime

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from psycopg_pool import ConnectionPool

from devices import nats_stream_subjects, subject_to_topic
from ingest.contract import Reason
from ingest.mqtt_consumer import MqttIngestor, batch_writer, pipeline_config
from ingest.observe import record_batch
from ingest.pipeline import Message, Outcome, process_safely
from ingest.registry import RegistryCache
from ingest.stats import IngestStats
from ingest.writer import CommittedReadings
from mimamori import metrics
from mimamori.errors import ConfigError, UnreachableError
from mimamori.settings import BrokerKind, Settings

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0


def stream_config(settings: Settings) -> StreamConfig:
    """The device stream: telemetry and status of every device, on disk, replicated; each message kept until
    the ingestors' consumer has it acknowledged (work-queue retention: stored once, then gone from the stream)."""
    return StreamConfig(
        name=settings.nats_stream,
        subjects=nats_stream_subjects(settings.mqtt_topic_prefix),
        storage=StorageType.FILE,
        num_replicas=settings.nats_stream_replicas,
        retention="workqueue",
        max_msg_size=settings.ingest_max_payload_bytes,
    )


def consumer_config(settings: Settings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=settings.nats_durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.nats_ack_wait_s,
        max_ack_pending=settings.nats_max_ack_pending,
        max_deliver=-1,  # never given up on: a message is stored or dead-lettered, not dropped by the broker
        num_replicas=settings.nats_stream_replicas,
    )


class NatsIngestor:
    """``connect`` then ``run(stop)`` in a thread of its own, like ``MqttIngestor``."""

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
        self._loop = asyncio.new_event_loop()
        self._nc: NatsClient | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._in_hand = 0
        self._closing = False
        metrics.QUEUED_MESSAGES.set_function(lambda: self._in_hand)

    # -- lifecycle --------------------------------------------------------------------------------

    def connect(self, timeout_s: float = 10.0) -> None:
        """Connect once, ensure the stream and the durable consumer, so a wrong address or account fails with
        one clear line."""
        self._loop.run_until_complete(self._connect(timeout_s))

    def run(self, stop: threading.Event) -> None:
        """Take and commit batches until ``stop`` is set; the batch in hand is committed and acknowledged first."""
        try:
            self._loop.run_until_complete(self._run(stop))
        finally:
            self._loop.run_until_complete(self._close())
            self._loop.close()

    async def _connect(self, timeout_s: float) -> None:
        password = self.settings.nats_password.get_secret_value() if self.settings.nats_password else None
        try:
            nc = await nats.connect(
                servers=self.settings.nats_servers,
                user=self.settings.nats_username,
                password=password,
                name=self.settings.mqtt_client_id,
                connect_timeout=timeout_s,
                allow_reconnect=True,
                max_reconnect_attempts=-1,  # for ever, over every node of the cluster
                reconnect_time_wait=1.0,
                disconnected_cb=self._disconnected,
                reconnected_cb=self._reconnected,
                error_cb=self._error,
            )
        except nats.errors.NoServersError as exc:
            raise UnreachableError(f"cannot connect to NATS at {self.settings.nats_urls}: {exc}") from None
        except nats.errors.Error as exc:
            if "authoriz" in str(exc).lower():
                raise ConfigError(f"NATS at {self.settings.nats_urls} refused us: {exc}") from None
            raise UnreachableError(f"cannot connect to NATS at {self.settings.nats_urls}: {exc}") from None
        self._nc = nc
        js = nc.jetstream(timeout=timeout_s)
        await self._ensure(js)
        self._sub = await js.pull_subscribe_bind(durable=self.settings.nats_durable, stream=self.settings.nats_stream)
        self.stats.connected = True
        metrics.BROKER_CONNECTED.set(1)
        metrics.BROKER_CONNECTS.inc()
        log.info(
            "connected to NATS %s (stream %s, consumer %s)",
            nc.connected_url,
            self.settings.nats_stream,
            self.settings.nats_durable,
        )

    async def _ensure(self, js: JetStreamContext) -> None:
        """The stream and the consumer as configured: created when missing, brought to the settings when not."""
        config = stream_config(self.settings)
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:  # exists with another configuration
            await js.update_stream(config)
        await js.add_consumer(self.settings.nats_stream, consumer_config(self.settings))

    async def _disconnected(self) -> None:
        self.stats.connected = False
        metrics.BROKER_CONNECTED.set(0)
        if not self._closing:
            log.warning("disconnected from NATS; reconnecting")

    async def _reconnected(self) -> None:
        self.stats.connected = True
        metrics.BROKER_CONNECTED.set(1)
        metrics.BROKER_CONNECTS.inc()
        log.info("reconnected to NATS %s", self._nc.connected_url if self._nc else "")

    async def _error(self, exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    async def _close(self) -> None:
        self._closing = True
        if self._nc is not None and not self._nc.is_closed:
            # Not a drain: a pull subscription's drain waits out its pending pull. The acknowledgements sent are
            # flushed; anything unacknowledged is delivered again to the next ingestor.
            with contextlib.suppress(nats.errors.Error, TimeoutError):
                await self._nc.flush(timeout=2)
            await self._nc.close()
        self.stats.connected = False
        metrics.BROKER_CONNECTED.set(0)

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self, stop: threading.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            if self._sub is None:
                try:
                    await self._connect(10.0)
                    delay = 0.1
                except (TimeoutError, UnreachableError, ConfigError, nats.errors.Error) as exc:
                    log.warning("NATS not ready (%s); again in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF_S)
                    continue
            try:
                batch = await self._sub.fetch(
                    self.settings.ingest_batch_max, timeout=max(0.2, self.settings.ingest_batch_ms / 1000)
                )
            except nats.errors.TimeoutError:
                continue
            except (TimeoutError, nats.errors.Error) as exc:
                # The cluster is electing a leader, or the connection is being re-made: nats-py reconnects.
                log.warning("pull from %s failed (%s); again in %.1f s", self.settings.nats_durable, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
                continue
            delay = 0.1
            if batch:
                await self._commit(batch, stop)

    def _judge(self, messages: list[Message]) -> list[Outcome]:
        """Decode and validate; a message naming a device the registry did not know is judged again after a
        reload (it may have been registered since), as on the MQTT path."""
        snapshot = self.registry.snapshot()
        outcomes = [process_safely(msg, snapshot, self._cfg) for msg in messages]
        unknown = {d.device_id for o in outcomes for d in o.dead if d.reason is Reason.unknown_device and d.device_id}
        if unknown:
            snapshot = self.registry.snapshot(unknown)
            outcomes = [
                process_safely(o.message, snapshot, self._cfg)
                if o.message is not None and any(d.device_id in snapshot.devices for d in o.dead)
                else o
                for o in outcomes
            ]
        return outcomes

    async def _commit(self, batch: list[Msg], stop: threading.Event) -> None:
        self._in_hand = len(batch)
        received = datetime.now(UTC)
        redelivered = sum(1 for m in batch if m.metadata.num_delivered > 1)
        if redelivered:
            metrics.NATS_REDELIVERED.inc(redelivered)
        messages = [Message("mqtt", subject_to_topic(m.subject), m.data, received) for m in batch]
        outcomes = await asyncio.to_thread(self._judge, messages)
        started = time.monotonic()
        write = asyncio.ensure_future(asyncio.to_thread(self.writer.write, outcomes, stop))
        # While the database holds the batch, tell the cluster these messages are still being worked on, so
        # they are not delivered to another ingestor meanwhile (a redelivery would be stored once, but twice
        # the work).
        while True:
            done, _ = await asyncio.wait({write}, timeout=self.settings.nats_ack_wait_s / 3)
            if done:
                break
            for m in batch:
                await m.in_progress()
        result = write.result()
        if result is None:
            self._in_hand = 0
            return  # stopping before the database came back: nothing acked, the cluster redelivers
        metrics.COMMIT_SECONDS.observe(time.monotonic() - started)
        for m in batch:
            await m.ack()  # a lost ack means a redelivery, stored once: no need to wait for each
        self._in_hand = 0
        self.stats.add_batch(
            len(batch), result.stored, result.duplicates, [str(d.reason) for o in outcomes for d in o.dead]
        )
        record_batch("mqtt", messages, outcomes, result, datetime.now(UTC))


def make_ingestor(
    settings: Settings,
    pool: ConnectionPool,
    *,
    committed: CommittedReadings | None = None,
    stats: IngestStats | None = None,
) -> MqttIngestor | NatsIngestor:
    """The ingestor of the configured broker (MIMAMORI_BROKER): Mosquitto's MQTT 5 one, or the NATS cluster's."""
    if settings.broker == BrokerKind.nats:
        return NatsIngestor(settings, pool, committed=committed, stats=stats)
    return MqttIngestor(settings, pool, committed=committed, stats=stats)
