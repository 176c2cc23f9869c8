"""How much of the dead-letter table one device may fill: a token bucket of bytes per device. Pure; the clock is
passed in.

A device whose every message is refused (hostile, or broken in the field) could otherwise write its whole traffic,
payloads included, into dead_letters until the disk is full. Within its quota a refused message keeps its row and
payload; past it, the message is counted per device, reason and hour in ``dead_letter_overflow`` (a few dozen
bytes per hour, whatever it sends) until the bucket has refilled. Each process keeps its own buckets.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ingest.pipeline import Outcome
from mimamori import metrics

log = logging.getLogger(__name__)

ROW_OVERHEAD_BYTES = 512  # a dead-letter row without its payload: columns, summary, indexes
_MAX_BUCKETS = 100_000  # device ids come from topics and URLs; full buckets are dropped beyond this


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    burst_bytes: int  # what a device may write at once
    bytes_per_s: float  # and then, sustained


_LOG_EVERY_S = 60.0  # a device over quota is named in the log at most this often


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float
    refused: int = 0  # messages counted only, since the device was last named in the log
    logged_at: float = float("-inf")


class DeadLetterQuota:
    def __init__(self, config: QuotaConfig, clock: Callable[[], float]) -> None:
        self._cfg = config
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, device_key: str, cost: int) -> bool:
        """Whether a dead letter costing ``cost`` bytes may be kept in full for this device; takes the bytes if so."""
        now = self._clock()
        bucket = self._buckets.get(device_key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._forget_full(now)
            bucket = self._buckets[device_key] = _Bucket(float(self._cfg.burst_bytes), now)
        else:
            refill = (now - bucket.at) * self._cfg.bytes_per_s
            bucket.tokens = min(float(self._cfg.burst_bytes), bucket.tokens + refill)
            bucket.at = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return True
        bucket.refused += 1
        if now - bucket.logged_at >= _LOG_EVERY_S:
            log.warning(
                "device %r is over its dead-letter quota (%d bytes, then %g bytes/s): %d refused messages counted in "
                "dead_letter_overflow without their payloads since it was last named here",
                device_key,
                self._cfg.burst_bytes,
                self._cfg.bytes_per_s,
                bucket.refused,
            )
            bucket.logged_at, bucket.refused = now, 0
        return False

    def apply(self, outcomes: list[Outcome]) -> list[Outcome]:
        """The outcomes, with each dead letter over its device's quota marked to be counted instead of kept."""
        changed: list[Outcome] | None = None
        for i, outcome in enumerate(outcomes):
            if not outcome.dead:
                continue
            dead = outcome.dead[0]
            size = len(dead.payload or b"")
            if self.admit(dead.device_id or "", size + ROW_OVERHEAD_BYTES):
                continue
            if changed is None:
                changed = list(outcomes)
            metrics.DEAD_LETTERS_OVER_QUOTA.labels(dead.source, str(dead.reason)).inc()
            changed[i] = dataclasses.replace(
                outcome, dead=[dataclasses.replace(dead, payload=None, over_quota_bytes=size)]
            )
        return outcomes if changed is None else changed

    def _forget_full(self, now: float) -> None:
        cap, rate = float(self._cfg.burst_bytes), self._cfg.bytes_per_s
        for key in [k for k, b in self._buckets.items() if b.tokens + (now - b.at) * rate >= cap]:
            del self._buckets[key]
        if len(self._buckets) >= _MAX_BUCKETS:  # every one of them is spending: start again rather than grow
            self._buckets.clear()
