"""Anonymous answers (/open and /public) built at most once per few seconds per API process, then served from memory.

On a typhoon night the whole city asks the same few questions at once. Each answer (its body, its ETag, its status)
is built from the database by one request and kept for ``MIMAMORI_OPEN_FRESH_S`` seconds; every other request for
the same key in that time gets the built bytes, and requests that arrive while it is being built wait for that
one build instead of starting their own (cachetools' ``condition``). Readings therefore reach citizens at most that
many seconds late, a publication change made through this process at once (``clear``), one made elsewhere within
the same bound. Memory is bounded by the bytes kept (``MIMAMORI_OPEN_CACHE_MB``), least recently used first out;
an answer larger than the whole bound is served but not kept. 0 seconds turns the cache off.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from cachetools import TTLCache, cached
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


@dataclass(frozen=True, slots=True)
class Built:
    """One answer, ready to send: its ETag is computed once, when it is built."""

    body: bytes
    media_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""

    @classmethod
    def of(cls, body: bytes, media_type: str, status: int = 200, headers: dict[str, str] | None = None) -> Built:
        return cls(body, media_type, status, headers or {}, strong_etag(body))


def _matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): any listed tag, W/ or not, or *."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def send(built: Built, if_none_match: str | None, max_age_s: int) -> Response:
    """A built answer as a cacheable response: strong ETag (304 when the client has it), Cache-Control public for
    ``max_age_s``. Errors are sent as they are, without a validator."""
    if built.status != 200:
        return Response(built.body, status_code=built.status, media_type=built.media_type, headers=built.headers)
    headers = {"ETag": built.etag, "Cache-Control": f"public, max-age={max_age_s}", **built.headers}
    if _matches(if_none_match, built.etag):
        return Response(status_code=304, headers=headers)
    return Response(built.body, media_type=built.media_type, headers=headers)


def _size(built: Built) -> int:
    return len(built.body) + 512  # headers and the entry itself


class AnswerCache:
    def __init__(self, fresh_s: float, max_bytes: int) -> None:
        self.fresh_s = fresh_s
        self._lock = threading.Lock()
        self._cache: TTLCache[Hashable, Built] | None = None
        if fresh_s > 0:
            self._cache = TTLCache(maxsize=max_bytes, ttl=fresh_s, getsizeof=_size)
            build_once = cached(
                self._cache, key=lambda key, _build: key, lock=self._lock, condition=threading.Condition(self._lock)
            )
            self._build_once: Callable[[Hashable, Callable[[], Built]], Built] = build_once(lambda _key, build: build())

    def fresh(self, key: Hashable) -> Built | None:
        """The kept answer for ``key`` if it is still fresh (no thread hop: called on the event loop)."""
        if self._cache is None:
            return None
        with self._lock:
            return self._cache.get(key)

    async def get(self, key: Hashable, build: Callable[[], Built]) -> Built:
        """The fresh answer for ``key``, building it with ``build`` (blocking I/O, run in the thread pool) when
        there is none; concurrent callers of one key share one build. A build that raises is not kept."""
        hit = self.fresh(key)
        if hit is not None:
            return hit
        if self._cache is None:
            return await run_in_threadpool(build)
        return await run_in_threadpool(self._build_once, key, build)

    def clear(self) -> None:
        """Forget every answer (a dataset was published, changed or taken down through this process)."""
        if self._cache is not None:
            with self._lock:
                self._cache.clear()
