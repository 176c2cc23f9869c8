"""The delivery outbox: SQL of the distributors' cursors (``alert_dispatch_cursors``), webhook subscriptions
(``alert_webhooks``) and their deliveries with retries (``alert_webhook_deliveries``). Parameterised.

The events delivered are read from the alert store (alerts/store.py); nothing here changes an alert.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.store import bbox_params, events_after


def lock_cursor(conn: psycopg.Connection, consumer: str) -> int:
    """The consumer's position, locked until the transaction ends (one distributor of a kind at a time).

    A new consumer starts at the beginning, so events stored before it first ran (by a rebuild at start) are not
    skipped.
    """
    conn.execute(
        "INSERT INTO alert_dispatch_cursors (consumer, last_event_id) VALUES (%s, 0) ON CONFLICT DO NOTHING",
        (consumer,),
    )
    row = conn.execute(
        "SELECT last_event_id FROM alert_dispatch_cursors WHERE consumer = %s FOR UPDATE", (consumer,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def move_cursor(conn: psycopg.Connection, consumer: str, last_event_id: int) -> None:
    conn.execute(
        "UPDATE alert_dispatch_cursors SET last_event_id = %s, updated_at = now() WHERE consumer = %s",
        (last_event_id, consumer),
    )


def create_webhook(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    all_tenants: bool,
    url: str,
    secret: str,
    min_level: int,
    hazards: list[str] | None,
    bbox: tuple[float, float, float, float] | None,
    actor: str,
    format: str = "mimamori",
    subscription: dict[str, Any] | None = None,
) -> int:
    params = {
        "format": format,
        "subscription": Jsonb(subscription) if subscription is not None else None,
        "tenant": tenant_id,
        "all": all_tenants,
        "url": url,
        "secret": secret,
        "min_level": min_level,
        "hazards": hazards,
        "actor": actor,
        **bbox_params(bbox),
    }
    row = conn.execute(
        "INSERT INTO alert_webhooks (tenant_id, all_tenants, url, secret, min_level, hazards, bbox, created_by,"
        " format, subscription)"
        " VALUES (%(tenant)s, %(all)s, %(url)s, %(secret)s, %(min_level)s, %(hazards)s,"
        " CASE WHEN %(x0)s::float8 IS NULL THEN NULL"
        " ELSE ST_MakeEnvelope(%(x0)s::float8, %(y0)s::float8, %(x1)s::float8, %(y1)s::float8, 4326) END,"
        " %(actor)s, %(format)s, %(subscription)s) RETURNING id",
        params,
    ).fetchone()
    assert row is not None
    return int(row[0])


_WEBHOOK_COLUMNS = (
    "w.id, w.tenant_id, w.all_tenants, w.url, w.min_level, w.hazards, ST_AsGeoJSON(w.bbox)::json AS bbox,"
    " w.active, w.created_at, w.created_by, w.format, w.subscription"
)


def list_webhooks(conn: psycopg.Connection, tenant: str | None) -> list[dict[str, Any]]:
    """Subscriptions (never their secrets)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_WEBHOOK_COLUMNS} FROM alert_webhooks w WHERE %s::text IS NULL OR w.tenant_id = %s ORDER BY w.id",
            (tenant, tenant),
        ).fetchall()


def delete_webhook(conn: psycopg.Connection, webhook_id: int, tenant: str | None) -> bool:
    return (
        conn.execute(
            "DELETE FROM alert_webhooks WHERE id = %s AND (%s::text IS NULL OR tenant_id = %s)",
            (webhook_id, tenant, tenant),
        ).rowcount
        == 1
    )


def fan_out_deliveries(conn: psycopg.Connection, after_id: int, up_to_id: int) -> int:
    """Queue a delivery of each event in (after_id, up_to_id] to every active subscription it matches."""
    return conn.execute(
        "INSERT INTO alert_webhook_deliveries (webhook_id, event_id)"
        " SELECT w.id, e.id FROM alert_events e JOIN alerts a ON a.id = e.alert_id"
        " JOIN alert_webhooks w ON w.active"
        "  AND (w.all_tenants OR w.tenant_id = a.tenant_id)"
        "  AND greatest(e.level, coalesce(e.previous_level, 0)) >= w.min_level"
        "  AND (w.hazards IS NULL OR a.hazard = ANY(w.hazards))"
        "  AND (w.bbox IS NULL OR ST_Intersects(coalesce(a.area, a.location), w.bbox))"
        "  AND e.at >= w.created_at"  # a new subscription gets changes from now on, not the history
        " WHERE e.id > %s AND e.id <= %s"
        " ON CONFLICT (webhook_id, event_id) DO NOTHING",
        (after_id, up_to_id),
    ).rowcount


def claim_due_deliveries(conn: psycopg.Connection, limit: int) -> list[dict[str, Any]]:
    """Pending deliveries that are due, locked (SKIP LOCKED: several senders never send one twice at once)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT d.id, d.webhook_id, d.event_id, d.attempts, w.url, w.secret, w.format, w.subscription"
            " FROM alert_webhook_deliveries d"
            " JOIN alert_webhooks w ON w.id = d.webhook_id"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= clock_timestamp() AND w.active"
            " ORDER BY d.next_attempt_at LIMIT %s FOR UPDATE OF d SKIP LOCKED",
            (limit,),
        ).fetchall()


def record_attempt(
    conn: psycopg.Connection,
    delivery_id: int,
    *,
    delivered: bool,
    give_up: bool,
    retry_in: timedelta,
    response_status: int | None,
    error: str | None,
) -> None:
    conn.execute(
        "UPDATE alert_webhook_deliveries SET attempts = attempts + 1, last_attempt_at = clock_timestamp(),"
        " response_status = %(status)s, error = %(error)s,"
        " status = CASE WHEN %(ok)s THEN 'delivered' WHEN %(give_up)s THEN 'failed' ELSE 'pending' END,"
        " delivered_at = CASE WHEN %(ok)s THEN clock_timestamp() END,"
        " next_attempt_at = clock_timestamp() + %(retry)s"
        " WHERE id = %(id)s",
        {
            "status": response_status,
            "error": error,
            "ok": delivered,
            "give_up": give_up,
            "retry": retry_in,
            "id": delivery_id,
        },
    )


def deliveries_of(
    conn: psycopg.Connection, webhook_id: int, tenant: str | None, limit: int
) -> list[dict[str, Any]] | None:
    """The subscription's delivery log, newest first; None when there is no such subscription for ``tenant``
    (another tenant's answers exactly as a missing one, not as an empty log)."""
    visible = conn.execute(
        "SELECT 1 FROM alert_webhooks WHERE id = %s AND (%s::text IS NULL OR tenant_id = %s)",
        (webhook_id, tenant, tenant),
    ).fetchone()
    if visible is None:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT d.id, d.event_id, d.status, d.attempts, d.next_attempt_at, d.last_attempt_at,"
            " d.response_status, d.error, d.delivered_at FROM alert_webhook_deliveries d"
            " JOIN alert_webhooks w ON w.id = d.webhook_id"
            " WHERE d.webhook_id = %s AND (%s::text IS NULL OR w.tenant_id = %s) ORDER BY d.id DESC LIMIT %s",
            (webhook_id, tenant, tenant, limit),
        ).fetchall()


def event_with_alert(conn: psycopg.Connection, event_id: int) -> dict[str, Any] | None:
    rows = events_after(conn, event_id - 1, None, limit=1)
    return rows[0] if rows and rows[0]["id"] == event_id else None
