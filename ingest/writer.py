"""Writes a batch of message outcomes in one transaction, and hands committed readings on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.contract import Reading
from ingest.pipeline import Outcome, merge_liveness
from ingest.queries import insert_dead_letters, insert_readings, upsert_liveness
from mimamori import metrics

log = logging.getLogger(__name__)

ReadingListener = Callable[[list[Reading]], None]


@dataclass(frozen=True, slots=True)
class BatchResult:
    stored: int  # new readings
    duplicates: int  # readings already stored (redelivery, repeated sends)
    dead: int


class CommittedReadings:
    """Fan-out of committed readings to in-process listeners (the alert engine subscribes here)."""

    def __init__(self) -> None:
        self._listeners: list[ReadingListener] = []

    def subscribe(self, listener: ReadingListener) -> None:
        self._listeners.append(listener)

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def publish(self, readings: list[Reading]) -> None:
        for listener in self._listeners:
            try:
                listener(readings)
            except Exception:  # a broken listener must not stop ingest; the readings are already stored
                log.exception("committed-reading listener failed")


def write_batch(
    conn: psycopg.Connection, outcomes: list[Outcome], *, return_new: bool = True
) -> tuple[BatchResult, list[Reading]]:
    """One transaction: readings, latest values, dead letters and liveness of a whole batch."""
    readings = [r for o in outcomes for r in o.readings]
    dead = [d for o in outcomes for d in o.dead]
    liveness = merge_liveness([o.liveness for o in outcomes if o.liveness is not None])
    top_level = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        inserted, new = insert_readings(conn, readings, return_new=return_new, top_level=top_level)
        insert_dead_letters(conn, dead)
        upsert_liveness(conn, liveness)
    return BatchResult(inserted, len(readings) - inserted, len(dead)), new


class BatchWriter:
    """Commits batches, retrying with capped exponential back-off while the database is unavailable."""

    def __init__(
        self,
        pool: ConnectionPool,
        committed: CommittedReadings | None = None,
        *,
        max_backoff_s: float = 10.0,
    ) -> None:
        self._pool = pool
        self.committed = committed or CommittedReadings()
        self._max_backoff = max_backoff_s
        self.db_available = True
        metrics.DATABASE_AVAILABLE.set(1)

    def write(
        self, outcomes: list[Outcome], stop: threading.Event | None = None, *, give_up_after_s: float | None = None
    ) -> BatchResult | None:
        """Commit, or keep retrying until committed.

        None when ``stop`` is set, or ``give_up_after_s`` has passed, before it could commit (nothing was stored).
        """
        delay = 0.1
        deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
        while True:
            try:
                with self._pool.connection(timeout=5) as conn:
                    result, new = write_batch(conn, outcomes, return_new=self.committed.has_listeners)
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
                if self.db_available:
                    log.warning("database unavailable, holding the batch and retrying: %s", str(exc).strip()[:200])
                self.db_available = False
                metrics.DATABASE_AVAILABLE.set(0)
                if deadline is not None and time.monotonic() + delay > deadline:
                    return None
                if stop is not None and stop.wait(delay):
                    return None
                if stop is None:
                    time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            if not self.db_available:
                log.info("database available again")
            self.db_available = True
            metrics.DATABASE_AVAILABLE.set(1)
            self.committed.publish(new)
            return result
