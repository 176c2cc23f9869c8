"""Series numbers: the integer that stands for a (device, metric) pair in series_readings (migration 0060).

Each connection remembers the numbers it has seen committed, so a batch of known series costs no lookup. A series
made in the caller's own transaction is used but not remembered: that transaction may still roll back (a batch
refused and split), and a remembered number without its row would store readings no view can see. Series rows
are never deleted, so a remembered number stays right for the connection's life.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection

import psycopg

Pair = tuple[str, str]  # (device_id, metric)

_known: weakref.WeakKeyDictionary[psycopg.Connection, dict[Pair, int]] = weakref.WeakKeyDictionary()

# In key order, so that concurrent writers making the same new series lock them in the same order.
_MAKE = """
INSERT INTO series (device_id, metric)
SELECT * FROM unnest(%s::text[], %s::text[]) AS p (device_id, metric) ORDER BY 1, 2
ON CONFLICT (device_id, metric) DO NOTHING
"""
# `mine`: made by this transaction (not yet committed). A new statement sees series that concurrent writers
# committed while this one's INSERT waited for them.
_FIND = """
SELECT s.series_id, s.device_id, s.metric, s.xmin = pg_current_xact_id()::xid AS mine
FROM series s JOIN unnest(%s::text[], %s::text[]) AS p (device_id, metric) USING (device_id, metric)
"""


def series_numbers(conn: psycopg.Connection, pairs: Collection[Pair]) -> dict[Pair, int]:
    """The series number of every pair, making the series that do not exist yet. Call inside the transaction
    that writes the readings, at its top level (a series made inside a savepoint would pass for committed)."""
    known = _known.setdefault(conn, {})
    missing = sorted(p for p in pairs if p not in known)
    if not missing:
        return {p: known[p] for p in pairs}
    devices = [d for d, _ in missing]
    metrics = [m for _, m in missing]
    conn.execute(_MAKE, (devices, metrics))
    found: dict[Pair, int] = {}
    for number, device, metric, mine in conn.execute(_FIND, (devices, metrics)):
        found[device, metric] = number
        if not mine:
            known[device, metric] = number
    return {p: known[p] if p in known else found[p] for p in pairs}


def forget(conn: psycopg.Connection) -> None:
    """Drop what a connection remembers (for tests that reset a database under a live connection)."""
    _known.pop(conn, None)
