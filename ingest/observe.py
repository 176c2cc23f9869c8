"""What a committed batch tells the operators: Prometheus metrics and one log line per dead letter.

Lag is measured per message, from the newest reading in it: for a live device that reading was taken just
before it was published, so device time → commit is the publish → commit lag (plus the device's clock skew).
One observation per message rather than per reading keeps the cost off the hot path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from ingest.pipeline import Message, Outcome
from ingest.writer import BatchResult
from mimamori import metrics

log = logging.getLogger("ingest.dead_letters")

_LOGGED_PER_BATCH = 20  # a misbehaving device must not flood the logs; the table keeps every one


def message_id(message: Message) -> str:
    """A short id for logs; the full key is ``dead_letters.message_key``, whose prefix this is."""
    return message.key[:16]


def record_batch(
    source: str, messages: Sequence[Message], outcomes: Sequence[Outcome], result: BatchResult, committed: datetime
) -> None:
    metrics.MESSAGES_RECEIVED.labels(source).inc(len(messages))
    metrics.READINGS_STORED.labels(source).inc(result.stored)
    metrics.READINGS_DUPLICATE.labels(source).inc(result.duplicates)
    metrics.BATCH_MESSAGES.observe(len(messages))
    logged = 0
    # Label look-ups once per batch, and one update per bucket for the whole batch: this runs on the ingest hot path.
    metrics.observe_many(
        metrics.RECEIVE_TO_COMMIT_SECONDS.labels(source),
        [max(0.0, (committed - message.received).total_seconds()) for message in messages],
    )
    metrics.observe_many(
        metrics.DEVICE_TO_COMMIT_SECONDS.labels(source),
        [max(0.0, (committed - _newest(outcome)).total_seconds()) for outcome in outcomes if outcome.readings],
    )
    for message, outcome in zip(messages, outcomes, strict=True):
        for dead in outcome.dead:
            if dead.over_quota_bytes is not None:
                continue  # counted apart (mimamori_ingest_dead_letters_over_quota), logged once per spell
            metrics.DEAD_LETTERS.labels(source, str(dead.reason)).inc()
            if logged < _LOGGED_PER_BATCH:
                logged += 1
                log.info(
                    "dead-lettered (%s): %s",
                    dead.reason,
                    dead.detail[:200],
                    extra={
                        "message_id": message_id(message),
                        "fields": {"source": source, "reason": str(dead.reason), "device_id": dead.device_id},
                    },
                )
    if logged == _LOGGED_PER_BATCH and result.dead > logged:
        log.info("… and %d more dead letters in this batch (see the dead_letters table)", result.dead - logged)


def _newest(outcome: Outcome) -> datetime:
    readings = outcome.readings
    return readings[0].time if len(readings) == 1 else max(r.time for r in readings)
