"""Per-key rate limit for HTTP push: an in-process token bucket per API key, a clear 429 with Retry-After.

Each API process limits on its own, so N processes admit up to N times the configured rate; that is the
intent (a partner's retry storm must not starve ingest), not a billing-grade quota.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from api.auth import principal
from devices.keys import Principal


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; pure: the time is passed in."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; returns 0 when allowed, else the seconds to wait until they would be there."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    """Buckets per key, bounded: the least recently seen keys are forgotten (a full bucket, which is harmless)."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, float(burst), max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, key: str, now: float) -> float:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(self.rate, self.burst, self.burst, now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
            return bucket.take(now)


def _limiter(request: Request) -> RateLimiter:
    state = request.app.state
    limiter = getattr(state, "push_rate_limiter", None)
    if limiter is None:
        settings = state.settings
        limiter = RateLimiter(settings.api_push_rate_per_s, settings.api_push_burst)
        state.push_rate_limiter = limiter
    return limiter  # type: ignore[no-any-return]


async def push_rate_limit(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """Dependency for push endpoints: 429 with Retry-After once a key exceeds its rate."""
    import time

    wait = _limiter(request).check(who.key_id, time.monotonic())
    if wait > 0:
        raise HTTPException(
            429,
            detail="rate limit exceeded for this API key; retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return who


def _open_limiter(request: Request) -> RateLimiter:
    state = request.app.state
    limiter = getattr(state, "open_rate_limiter", None)
    if limiter is None:
        settings = state.settings
        limiter = RateLimiter(settings.open_rate_per_s, settings.open_burst)
        state.open_rate_limiter = limiter
    return limiter  # type: ignore[no-any-return]


async def open_rate_limit(request: Request) -> None:
    """Dependency for the anonymous open-data endpoints: a bucket per client address (the TCP peer, as the server
    sees it), kept only in this process's memory and never logged; 429 with Retry-After past it."""
    import time

    client = request.client.host if request.client else ""
    wait = _open_limiter(request).check(client, time.monotonic())
    if wait > 0:
        raise HTTPException(
            429,
            detail="too many requests from this address; retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
