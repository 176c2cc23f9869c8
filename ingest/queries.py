"""SQL of the ingest path: batched, idempotent writes. A reading is stored once per (device, metric, time)."""

from __future__ import annotations

import psycopg

from ingest.contract import Reading
from ingest.pipeline import DeadLetter, Liveness

_INSERT_READINGS = """
INSERT INTO readings (time, device_id, metric, value)
SELECT * FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::float8[])
ON CONFLICT (device_id, metric, time) DO NOTHING
RETURNING time, device_id, metric, value
"""

_UPSERT_LATEST = """
INSERT INTO latest_readings AS l (device_id, metric, time, value)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::float8[])
ON CONFLICT (device_id, metric) DO UPDATE SET time = excluded.time, value = excluded.value
WHERE excluded.time > l.time
"""

_INSERT_DEAD = """
INSERT INTO dead_letters (source, topic, device_id, tenant_id, reason, detail, payload, message_key)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[],
                     %s::text[])
ON CONFLICT (message_key, reason, coalesce(detail, '')) WHERE message_key IS NOT NULL DO NOTHING
"""

_UPSERT_LIVENESS = """
INSERT INTO device_liveness AS d (device_id, last_seen, last_reading, online, battery, signal)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::bool[], %s::float8[], %s::float8[])
ON CONFLICT (device_id) DO UPDATE SET
    last_seen = greatest(d.last_seen, excluded.last_seen),
    last_reading = greatest(d.last_reading, excluded.last_reading),
    online = coalesce(excluded.online, d.online),
    battery = coalesce(excluded.battery, d.battery),
    signal = coalesce(excluded.signal, d.signal),
    updated_at = now()
"""


def insert_readings(conn: psycopg.Connection, readings: list[Reading]) -> list[Reading]:
    """Store readings; returns those that were new (a redelivered reading is not returned twice)."""
    if not readings:
        return []
    cur = conn.execute(
        _INSERT_READINGS,
        (
            [r.time for r in readings],
            [r.device_id for r in readings],
            [r.metric for r in readings],
            [r.value for r in readings],
        ),
    )
    return [Reading(*row) for row in cur.fetchall()]


def upsert_latest(conn: psycopg.Connection, readings: list[Reading]) -> None:
    newest: dict[tuple[str, str], Reading] = {}
    for r in readings:
        key = (r.device_id, r.metric)
        if key not in newest or r.time > newest[key].time:
            newest[key] = r
    if not newest:
        return
    rows = sorted(newest.values(), key=lambda r: (r.device_id, r.metric))  # stable lock order
    conn.execute(
        _UPSERT_LATEST,
        ([r.device_id for r in rows], [r.metric for r in rows], [r.time for r in rows], [r.value for r in rows]),
    )


def insert_dead_letters(conn: psycopg.Connection, dead: list[DeadLetter]) -> None:
    if not dead:
        return
    conn.execute(
        _INSERT_DEAD,
        (
            [d.source for d in dead],
            [d.topic for d in dead],
            [d.device_id for d in dead],
            [d.tenant_id for d in dead],
            [str(d.reason) for d in dead],
            [d.detail for d in dead],
            [d.payload for d in dead],
            [d.message_key for d in dead],
        ),
    )


def upsert_liveness(conn: psycopg.Connection, updates: list[Liveness]) -> None:
    if not updates:
        return
    rows = sorted(updates, key=lambda u: u.device_id)
    conn.execute(
        _UPSERT_LIVENESS,
        (
            [u.device_id for u in rows],
            [u.seen for u in rows],
            [u.last_reading for u in rows],
            [u.online for u in rows],
            [u.battery for u in rows],
            [u.signal for u in rows],
        ),
    )
