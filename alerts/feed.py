"""Committed readings from other processes: how ``mimamori ingest`` processes feed a ``mimamori alerts run``.

Several ingestors share one subscription, so any device's readings may be committed by any of them: evaluation
state cannot live in each ingestor. Instead each ingestor forwards its committed batches with PostgreSQL
NOTIFY (``NotifyForwarder``, off the ingest thread, bounded queue), and exactly one ``mimamori alerts run``
process evaluates them (``ReadingListener``), chosen by a session advisory lock (``leadership``); others stand by.

NOTIFY is not durable, and need not be: the readings are in the database. Whenever the listener may have missed
something (its connection dropped, an ingestor's forward queue overflowed, a new leader took over), the engine
rebuilds its state from the database, which raises whatever was missed exactly once.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import psycopg
from psycopg_pool import ConnectionPool

from alerts.engine import AlertEngine
from alerts.evaluate import Observation
from mimamori.committed import CommittedFeed, CommittedListener, CommittedReading
from mimamori.db import connect
from mimamori.settings import Settings

log = logging.getLogger(__name__)


CHANNEL = "mimamori_committed"
RESYNC = "resync"
_MAX_PAYLOAD = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
_LEADER_LOCK = 0x6D696D616D6F7231  # "mimamor1": the alert evaluator's advisory lock


def encode(readings: Iterable[CommittedReading]) -> list[str]:
    """Readings as NOTIFY payloads, each under the size limit."""
    chunks: list[str] = []
    current: list[str] = []
    size = 2
    for r in readings:
        item = json.dumps(
            [r.device_id, r.metric, r.time.isoformat(), r.value],
            separators=(",", ":"),
        )
        if current and size + len(item) + 1 > _MAX_PAYLOAD:
            chunks.append("[" + ",".join(current) + "]")
            current, size = [], 2
        current.append(item)
        size += len(item) + 1
    if current:
        chunks.append("[" + ",".join(current) + "]")
    return chunks


def decode(payload: str) -> list[Observation]:
    return [Observation(d, m, datetime.fromisoformat(t), float(v)) for d, m, t, v in json.loads(payload)]


class NotifyForwarder:
    """Subscribed to an ingestor's CommittedReadings: forwards batches without ever blocking ingest."""

    def __init__(self, pool: ConnectionPool, *, queue_max: int = 10_000) -> None:
        self._pool = pool
        self._queue: queue.Queue[list[CommittedReading]] = queue.Queue(maxsize=queue_max)
        self._overflow = threading.Event()
        self.forwarded = 0

    def on_readings(self, readings: Sequence[CommittedReading]) -> None:
        try:
            self._queue.put_nowait(list(readings))
        except queue.Full:
            self._overflow.set()  # the evaluator will rebuild from the database instead

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                batch = self._queue.get(timeout=0.5)
            except queue.Empty:
                batch = []
            try:
                with self._pool.connection() as conn:
                    for chunk in encode(batch):
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, chunk))
                    if self._overflow.is_set():
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, RESYNC))
                        self._overflow.clear()
                    conn.commit()
                self.forwarded += len(batch)
            except psycopg.Error as exc:
                log.warning("forwarding committed readings to the alert evaluator failed: %s", str(exc)[:200])
                self._overflow.set()
                stop.wait(1.0)


def start_forwarding(pool: ConnectionPool, committed: CommittedFeed, stop: threading.Event) -> NotifyForwarder:
    """Forward what a process commits (MQTT batches in `mimamori ingest`, HTTP pushes in `mimamori api`) to the one
    `mimamori alerts run` evaluator, on a thread that ends with ``stop``."""
    forwarder = NotifyForwarder(pool)
    committed.subscribe(forwarder.on_readings)
    threading.Thread(target=forwarder.run, args=(stop,), name="alerts-forward", daemon=True).start()
    return forwarder


class ReadingListener:
    """LISTENs for forwarded readings and hands them to the engine; asks for a rebuild after any gap."""

    def __init__(self, settings: Settings, engine: AlertEngine, also: Sequence[CommittedListener] = ()) -> None:
        """``also``: further listeners of the readings (the STA MQTT publisher); the engine alone rebuilds."""
        self.settings = settings
        self.engine = engine
        self._also = tuple(also)

    def run(self, stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                with connect(self.settings.dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.engine.request_resync()  # anything sent before LISTEN took effect is read from the DB
                    delay = 0.5
                    while not stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if note.payload == RESYNC:
                                self.engine.request_resync()
                            else:
                                readings = decode(note.payload)
                                self.engine.on_readings(readings)
                                for listener in self._also:
                                    listener(readings)
            except (psycopg.Error, OSError) as exc:
                log.warning("alert feed connection lost, reconnecting: %s", str(exc)[:200])
            except Exception as exc:  # an unreadable payload: rebuild rather than guess
                log.error("alert feed: bad notification (%s), rebuilding from the database", exc)
                self.engine.request_resync()
            stop.wait(delay)
            delay = min(delay * 2, 10.0)


@contextmanager
def leadership(settings: Settings, stop: threading.Event, *, poll_s: float = 2.0) -> Iterator[bool]:
    """Hold the evaluator's advisory lock while inside; yields False if ``stop`` came before it was ours."""
    conn = connect(settings.dsn, autocommit=True)
    try:
        announced = False
        while not stop.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LEADER_LOCK,)).fetchone()
            if row and row[0]:
                break
            if not announced:
                log.info("another process evaluates alerts; standing by")
                announced = True
            stop.wait(poll_s)
        else:
            yield False
            return
        yield True
    finally:
        conn.close()  # the lock goes with the session
