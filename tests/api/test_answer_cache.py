"""The anonymous answers' cache (api/answer_cache.py), pure: one build per key and freshness period however many
ask at once, a bounded memory, and nothing kept that should not be."""

from __future__ import annotations

import asyncio
import threading
import time

from api.answer_cache import AnswerCache, Built


class Builds:
    """A build that counts its calls (from any thread) and takes a little time, as a database visit would."""

    def __init__(self, body: bytes = b"{}", seconds: float = 0.05) -> None:
        self.calls = 0
        self.body, self.seconds = body, seconds
        self._lock = threading.Lock()

    def __call__(self) -> Built:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        return Built.of(self.body, "application/json")


async def _many(cache: AnswerCache, key: object, build: Builds, n: int) -> list[Built]:
    return list(await asyncio.gather(*(cache.get(key, build) for _ in range(n))))


def test_a_stampede_builds_each_answer_once():
    cache, build = AnswerCache(fresh_s=60, max_bytes=1 << 20), Builds()
    answers = asyncio.run(_many(cache, ("latest", "rivers"), build, 30))
    assert build.calls == 1
    assert {id(a) for a in answers} == {id(answers[0])} and answers[0].body == b"{}"
    assert answers[0].etag.startswith('"') and len(answers[0].etag) == 42


def test_keys_are_built_apart():
    cache, build = AnswerCache(fresh_s=60, max_bytes=1 << 20), Builds(seconds=0)
    asyncio.run(cache.get(("page", "ja", None), build))
    asyncio.run(cache.get(("page", "en", None), build))
    asyncio.run(cache.get(("page", "ja", None), build))
    assert build.calls == 2


def test_an_answer_is_built_again_once_it_is_stale():
    cache, build = AnswerCache(fresh_s=0.1, max_bytes=1 << 20), Builds(seconds=0)
    asyncio.run(cache.get("k", build))
    asyncio.run(cache.get("k", build))
    assert build.calls == 1
    time.sleep(0.15)
    asyncio.run(cache.get("k", build))
    assert build.calls == 2


def test_clear_forgets_every_answer():
    cache, build = AnswerCache(fresh_s=60, max_bytes=1 << 20), Builds(seconds=0)
    asyncio.run(cache.get("k", build))
    cache.clear()
    assert cache.fresh("k") is None
    asyncio.run(cache.get("k", build))
    assert build.calls == 2


def test_a_failed_build_is_not_kept():
    cache = AnswerCache(fresh_s=60, max_bytes=1 << 20)
    attempts = []

    def flaky() -> Built:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("database away")
        return Built.of(b"ok", "text/plain")

    try:
        asyncio.run(cache.get("k", flaky))
    except ConnectionError:
        pass
    else:
        raise AssertionError("the first build's error must reach the caller")
    assert asyncio.run(cache.get("k", flaky)).body == b"ok" and len(attempts) == 2


def test_memory_is_bounded_by_bytes_and_a_huge_answer_is_served_not_kept():
    cache = AnswerCache(fresh_s=60, max_bytes=10_000)
    huge = Builds(body=b"x" * 20_000, seconds=0)
    assert len(asyncio.run(cache.get("huge", huge)).body) == 20_000
    assert cache.fresh("huge") is None
    small = [Builds(body=b"y" * 3_000, seconds=0) for _ in range(5)]
    for i, build in enumerate(small):
        asyncio.run(cache.get(i, build))
    kept = [i for i in range(5) if cache.fresh(i) is not None]
    assert kept == [3, 4]  # ~3.5 kB each within 10 kB: the least recently used went first


def test_zero_seconds_turns_it_off():
    cache, build = AnswerCache(fresh_s=0, max_bytes=1 << 20), Builds(seconds=0)
    for _ in range(3):
        asyncio.run(cache.get("k", build))
    assert build.calls == 3 and cache.fresh("k") is None
