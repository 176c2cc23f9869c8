"""Writes a batch of message outcomes in one transaction, and hands committed readings on."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.contract import Reading, Reason, Rejection
from ingest.dead_letter_quota import DeadLetterQuota
from ingest.pipeline import Outcome, dead_letter, merge_liveness
from ingest.queries import insert_dead_letters, insert_readings, upsert_liveness
from mimamori import metrics
from mimamori.committed import CommittedListener

log = logging.getLogger(__name__)

ReadingListener = CommittedListener  # the hand-off contract of mimamori/committed.py


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
    with conn.transaction():
        inserted, new = insert_readings(conn, readings, return_new=return_new)
        insert_dead_letters(conn, dead)
        upsert_liveness(conn, liveness)
    return BatchResult(inserted, len(readings) - inserted, len(dead)), new


def refused(outcome: Outcome, error: BaseException, *, keep_payload: bool = True) -> Outcome:
    """The outcome of a message the database would not store: its dead letter alone, with the error as reason."""
    msg = outcome.message
    if msg is None:
        raise ValueError("an outcome without its message cannot be dead-lettered")
    detail = f"{type(error).__name__}: {str(error).strip()[:300]}"
    rej = Rejection(Reason.store_failed, detail)
    device = (
        outcome.dead[0].device_id if outcome.dead else (outcome.readings[0].device_id if outcome.readings else None)
    )
    tenant = outcome.dead[0].tenant_id if outcome.dead else None
    payload = None if not keep_payload else msg.payload
    return Outcome(dead=[dead_letter(msg, [rej], device, tenant, payload)], message=msg)


_ROLLBACK_RETRIES = 3  # a deadlock or serialisation failure is retried as it is this often, then the batch split


class BatchWriter:
    """Commits batches, retrying with capped exponential back-off while the database is unavailable.

    A batch the database refuses for any other reason (an error in the statement, a value it cannot take, a client
    out of memory) is never retried as it is: it is split in halves until the message at fault is alone, that one
    is dead-lettered with the database's reason, and the rest is committed.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        committed: CommittedReadings | None = None,
        *,
        max_backoff_s: float = 10.0,
        quota: DeadLetterQuota | None = None,
    ) -> None:
        self._pool = pool
        self.committed = committed or CommittedReadings()
        self._max_backoff = max_backoff_s
        self._quota = quota
        self.db_available = True
        metrics.DATABASE_AVAILABLE.set(1)

    def write(
        self, outcomes: list[Outcome], stop: threading.Event | None = None, *, give_up_after_s: float | None = None
    ) -> BatchResult | None:
        """Commit, or keep retrying while the database is unavailable; every outcome is stored or dead-lettered.

        None when ``stop`` is set, or ``give_up_after_s`` has passed, before it could commit: then not everything was
        stored (a part of a split batch may have been), and the sender must send it again (stored once all the same).
        """
        if self._quota is not None:
            outcomes = self._quota.apply(outcomes)
        deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
        return self._write(outcomes, stop, deadline)

    def _write(
        self, outcomes: list[Outcome], stop: threading.Event | None, deadline: float | None, *, last_try: bool = False
    ) -> BatchResult | None:
        delay = 0.1
        rollbacks = 0
        while True:
            try:
                with self._pool.connection(timeout=5) as conn:
                    result, new = write_batch(conn, outcomes, return_new=self.committed.has_listeners)
            except psycopg.errors.TransactionRollback as exc:  # deadlock, serialisation: the batch is not at fault
                rollbacks += 1
                if rollbacks <= _ROLLBACK_RETRIES:
                    continue
                return self._isolate(outcomes, exc, stop, deadline, last_try=last_try)
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
                if not isinstance(exc, PoolTimeout) and self._database_answers():
                    return self._isolate(outcomes, exc, stop, deadline, last_try=last_try)  # the batch, not the link
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
            except Exception as exc:  # anything else the batch made the database (or psycopg) refuse
                return self._isolate(outcomes, exc, stop, deadline, last_try=last_try)
            if not self.db_available:
                log.info("database available again")
            self.db_available = True
            metrics.DATABASE_AVAILABLE.set(1)
            self.committed.publish(new)
            return result

    def _database_answers(self) -> bool:
        """Whether the database still answers, on a connection of its own: tells a lost link from a bad batch."""
        try:
            with self._pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def _isolate(
        self,
        outcomes: list[Outcome],
        error: BaseException,
        stop: threading.Event | None,
        deadline: float | None,
        *,
        last_try: bool,
    ) -> BatchResult | None:
        if len(outcomes) > 1:
            metrics.BATCHES_SPLIT.inc()
            log.warning(
                "the database refused a batch of %d messages (%s: %s); splitting it to find the message at fault",
                len(outcomes),
                type(error).__name__,
                str(error).strip()[:200],
            )
            half = len(outcomes) // 2
            results = []
            for part in (outcomes[:half], outcomes[half:]):
                result = self._write(part, stop, deadline)
                if result is None:
                    return None
                results.append(result)
            return BatchResult(
                sum(r.stored for r in results), sum(r.duplicates for r in results), sum(r.dead for r in results)
            )
        outcome = outcomes[0]
        msg = outcome.message
        source = msg.source if msg is not None else "mqtt"
        if msg is None or last_try:
            # Not even its dead letter without a payload could be stored: say so where operators look.
            metrics.MESSAGES_LOST.labels(source).inc()
            log.error(
                "a message could be neither stored nor dead-lettered (%s: %s); topic %r, key %s",
                type(error).__name__,
                str(error).strip()[:300],
                msg.topic[:200] if msg else None,
                msg.key if msg else None,
            )
            return BatchResult(0, 0, 0)
        metrics.MESSAGES_STORE_FAILED.labels(source).inc()
        log.error(
            "the database refused one message (%s: %s); dead-lettered as store_failed, topic %r",
            type(error).__name__,
            str(error).strip()[:300],
            msg.topic[:200],
        )
        keep_payload = not (outcome.dead and outcome.dead[0].reason is Reason.store_failed)
        return self._write(
            [refused(outcome, error, keep_payload=keep_payload)], stop, deadline, last_try=not keep_payload
        )
