"""SQL of the ingest path: batched, idempotent writes. A reading is stored once per (device, metric, time)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.contract import Reading
from ingest.pipeline import DeadLetter, Liveness
from ingest.series_numbers import series_numbers

# A batch that is all new (every batch but a redelivery, or one repeating a reading) is copied straight into
# series_readings by binary COPY, in a savepoint. A duplicate undoes that attempt alone, and the batch then goes
# through a per-connection staging table (binary COPY too) and INSERT … ON CONFLICT DO NOTHING, which makes
# redelivery harmless. Rows carry their series number (ingest/series_numbers.py), not the device and metric texts.
_COPY_ALL_NEW = "COPY series_readings (time, value, series_id, delay_cs) FROM STDIN (FORMAT BINARY)"
_ALL_NEW_TYPES = ("timestamptz", "float8", "int4", "int4")
_NOW = "SELECT now()"  # the receipt time reading_delay_cs() takes by default: the transaction's start
_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS staging_series_readings (
    time timestamptz NOT NULL, value float8 NOT NULL, series_id integer NOT NULL
) ON COMMIT DELETE ROWS
"""
_COPY_STAGING = "COPY staging_series_readings (time, value, series_id) FROM STDIN (FORMAT BINARY)"
_STAGING_TYPES = ("timestamptz", "float8", "int4")

_INSERT_FROM_STAGING = """
INSERT INTO series_readings (time, value, series_id, delay_cs)
SELECT time, value, series_id, reading_delay_cs(time) FROM staging_series_readings
ON CONFLICT (series_id, time) DO NOTHING
"""
# reading_delay_cs() (migration 0058) in Python: hundredths of a second, halves rounded away from zero as
# PostgreSQL rounds a numeric, saturated to an integer. Timedelta arithmetic: one subtraction and one division a row.
_CS, _HALF_CS, _NO_DELAY = timedelta(milliseconds=10), timedelta(milliseconds=5), timedelta(0)
_DELAY_MIN, _DELAY_MAX = -2147483648, 2147483647

# The newest reading of each device and metric in a batch, picked in Python (a few rows sent instead of a sort of
# the whole batch in the database), in key order so that concurrent ingestors lock rows in the same order.
_UPSERT_LATEST = """
INSERT INTO latest_readings AS l (device_id, metric, time, value)
SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::float8[])
ON CONFLICT (device_id, metric) DO UPDATE SET time = excluded.time, value = excluded.value
WHERE excluded.time > l.time
"""

# One statement per dead letter (psycopg pipelines them): an array of every payload in a batch would be one
# parameter of up to batch × 256 KiB, which libpq fails to allocate.
_INSERT_DEAD = """
INSERT INTO dead_letters (source, topic, device_id, tenant_id, reason, detail, payload, message_key, reasons, rejected)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (message_key, reason, coalesce(detail, '')) WHERE message_key IS NOT NULL DO NOTHING
"""

_KEPT_KEYS = "SELECT DISTINCT message_key FROM dead_letters WHERE message_key = ANY(%s)"

_COUNT_OVER_QUOTA = """
INSERT INTO dead_letter_overflow AS o
    (window_start, source, device_id, tenant_id, reason, messages, bytes, last_message_key)
SELECT date_trunc('hour', now()), * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[],
                                                 %s::bigint[], %s::text[])
ON CONFLICT (window_start, source, device_id, reason) DO UPDATE SET
    messages = o.messages + excluded.messages,
    bytes = o.bytes + excluded.bytes,
    last_message_key = excluded.last_message_key
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


def insert_readings(
    conn: psycopg.Connection, readings: list[Reading], *, return_new: bool
) -> tuple[int, list[Reading]]:
    """Store readings once per (device, metric, time) and keep latest_readings current.

    Returns how many were new, and — when ``return_new`` — which (for the alert engine; a redelivered
    reading is never returned twice). Must run inside the caller's transaction.
    """
    if not readings:
        return 0, []
    numbers = series_numbers(conn, {(r.device_id, r.metric) for r in readings})
    inserted = _copy_all_new(conn, readings, numbers)
    if inserted is not None:  # the common case: nothing of the batch was stored before
        new = readings if return_new else []
    else:
        rows = [(r.time, r.value, numbers[r.device_id, r.metric]) for r in readings]
        inserted, new = _insert_from_staging(conn, rows, numbers, return_new=return_new)
    conn.execute(_UPSERT_LATEST, _columns(newest_readings(readings), "device_id", "metric", "time", "value"))
    return inserted, new


def newest_readings(readings: list[Reading]) -> list[Reading]:
    """The newest reading of each device and metric (the first of equal times, as the readings table keeps the
    first), sorted by device and metric."""
    newest: dict[tuple[str, str], Reading] = {}
    for r in readings:
        key = (r.device_id, r.metric)
        kept = newest.get(key)
        if kept is None or r.time > kept.time:
            newest[key] = r
    return [newest[k] for k in sorted(newest)]


def _copy_all_new(conn: psycopg.Connection, readings: list[Reading], numbers: dict[tuple[str, str], int]) -> int | None:
    """Copy the readings straight into series_readings when none of them is stored yet; None when one is.

    ON CONFLICT inserts each row speculatively, and a staging table costs a write, a read and a truncation of
    every row: a batch that is all new does without both. A duplicate undoes this attempt alone (a savepoint),
    and the caller stores the batch with ON CONFLICT instead. A concurrent ingestor storing the same reading makes
    this one wait for its commit and then fail the same way. The delay is reading_delay_cs()'s of the
    transaction's own now(), computed here (inline: this loop runs for every reading).
    """
    found = conn.execute(_NOW).fetchone()
    received: datetime = found[0] if found else datetime.now(UTC)
    try:
        with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_ALL_NEW) as copy:
            copy.set_types(_ALL_NEW_TYPES)
            write = copy.write_row
            for r in readings:
                t = r.time
                d = received - t
                cs = (d + _HALF_CS) // _CS if d >= _NO_DELAY else -((_HALF_CS - d) // _CS)
                if not _DELAY_MIN <= cs <= _DELAY_MAX:
                    cs = _DELAY_MIN if cs < 0 else _DELAY_MAX
                write((t, r.value, numbers[r.device_id, r.metric], cs))
    except psycopg.errors.UniqueViolation:
        return None
    return len(readings)


def _insert_from_staging(
    conn: psycopg.Connection,
    rows: list[tuple[datetime, float, int]],
    numbers: dict[tuple[str, str], int],
    *,
    return_new: bool,
) -> tuple[int, list[Reading]]:
    """Store the readings through the staging table with ON CONFLICT DO NOTHING: how many were new, and — when
    ``return_new`` — which. Only here when something was stored already or repeated. (The new ones are not found
    by xmin afterwards: TimescaleDB cannot read xmin through a compressed chunk.)"""
    conn.execute(_CREATE_STAGING)
    with conn.cursor() as cur:
        with cur.copy(_COPY_STAGING) as copy:
            copy.set_types(_STAGING_TYPES)
            for row in rows:
                copy.write_row(row)
        new: list[Reading] = []
        if return_new:
            cur.execute(_INSERT_FROM_STAGING + " RETURNING time, series_id, value")
            pairs = {n: pair for pair, n in numbers.items()}
            new = [Reading(t, *pairs[n], v) for t, n, v in cur.fetchall()]
            inserted = len(new)
        else:
            cur.execute(_INSERT_FROM_STAGING)
            inserted = cur.rowcount
        cur.execute("TRUNCATE staging_series_readings")  # a later statement in this transaction must not see them
    return inserted, new


def insert_dead_letters(conn: psycopg.Connection, dead: list[DeadLetter]) -> None:
    """Keep each dead letter; those over their device's quota are only counted (dead_letter_overflow)."""
    kept = [d for d in dead if d.over_quota_bytes is None]
    if kept:
        with conn.cursor() as cur:
            cur.executemany(
                _INSERT_DEAD,
                [
                    (
                        d.source,
                        d.topic,
                        d.device_id,
                        d.tenant_id,
                        str(d.reason),
                        d.detail,
                        d.payload,
                        d.message_key,
                        Jsonb(d.reasons) if d.reasons is not None else None,
                        d.rejected,
                    )
                    for d in kept
                ],
            )
    over = [d for d in dead if d.over_quota_bytes is not None]
    if not over:
        return
    # A message redelivered after a lost connection may be over quota now and kept the first time: not twice.
    keys = [d.message_key for d in over]
    known = {r[0] for r in conn.execute(_KEPT_KEYS, (keys,))}
    counted: dict[tuple[str, str, str], list[Any]] = {}
    for d in over:
        if d.message_key in known:
            continue
        key = (d.source, d.device_id or "", str(d.reason))
        row = counted.setdefault(key, [d.source, key[1], d.tenant_id, key[2], 0, 0, None])
        row[4] += 1
        row[5] += d.over_quota_bytes
        row[6] = d.message_key
    if counted:
        rows = [counted[k] for k in sorted(counted)]  # key order: concurrent ingestors lock rows alike
        conn.execute(_COUNT_OVER_QUOTA, tuple([r[i] for r in rows] for i in range(7)))


def upsert_liveness(conn: psycopg.Connection, updates: list[Liveness]) -> None:
    if not updates:
        return
    rows = sorted(updates, key=lambda u: u.device_id)
    conn.execute(_UPSERT_LIVENESS, _columns(rows, "device_id", "seen", "last_reading", "online", "battery", "signal"))


def _columns(rows: Sequence[object], *fields: str) -> tuple[list[Any], ...]:
    """Rows as one list per field: the arrays an ``unnest()`` insert takes."""
    return tuple([getattr(r, f) for r in rows] for f in fields)
