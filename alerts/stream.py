"""The live stream for dashboards: alert events as server-sent events, resumable with Last-Event-ID.

The events table is the stream: an event's id is its SSE id, so a dashboard that reconnects with the last id it
saw gets every change it missed, in order, and then the live ones. Any API process can serve it, whichever process
evaluates the rules.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from alerts import store


@dataclass(frozen=True, slots=True)
class StreamFilter:
    tenant: str | None
    min_level: int | None = None
    bbox: tuple[float, float, float, float] | None = None


def _default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def event_json(row: dict[str, Any]) -> str:
    """One event with its alert, as the stream, MQTT and webhooks all carry it."""
    body = {
        "event_id": row["id"],
        "alert_id": row["alert_id"],
        "kind": row["kind"],
        "at": row["at"],
        "device_time": row["device_time"],
        "level": row["level"],
        "previous_level": row["previous_level"],
        "state": row["state"],
        "value": row["value"],
        "actor": row["actor"],
        "note": row["note"],
        "alert": row["alert"],
    }
    return json.dumps(body, default=_default, ensure_ascii=False, separators=(",", ":"))


def sse_message(row: dict[str, Any]) -> str:
    return f"id: {row['id']}\nevent: alert\ndata: {event_json(row)}\n\n"


def start_after(pool: ConnectionPool, last_event_id: str | None) -> int:
    """Where a stream starts: after the client's Last-Event-ID, or after the newest event (only new changes)."""
    if last_event_id is not None and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    with pool.connection() as conn:
        return store.newest_event_id(conn)


async def sse_events(
    pool: ConnectionPool,
    flt: StreamFilter,
    after_id: int,
    *,
    poll_s: float,
    keepalive_s: float,
    disconnected: Callable[[], Awaitable[bool]],
    sleep: Callable[[float], Awaitable[None]],
) -> AsyncIterator[str]:
    """SSE text, forever (until the client goes): missed events first, then live ones as they are stored."""

    def fetch(after: int) -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return store.events_after(conn, after, flt.tenant, min_level=flt.min_level, bbox=flt.bbox)

    yield f"retry: 2000\n: resuming after event {after_id}\n\n"
    last_sent = time.monotonic()
    while not await disconnected():
        rows = await run_in_threadpool(fetch, after_id)
        for row in rows:
            yield sse_message(row)
        if rows:
            after_id = rows[-1]["id"]
            last_sent = time.monotonic()
            continue  # more may be waiting
        if time.monotonic() - last_sent >= keepalive_s:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await sleep(poll_s)
