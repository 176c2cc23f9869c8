"""The alert lifecycle: open -> acknowledged -> resolved -> closed, one alert per (rule, subject) while it lasts.

Rule transitions raise, escalate, de-escalate and resolve; people acknowledge (with a note), resolve by hand and
close. Every change writes an event with who, when, level and value, in the same transaction as the change.
"""

from __future__ import annotations

from typing import Any

import psycopg

from alerts import store
from alerts.evaluate import Transition
from alerts.model import SubjectPlace
from mimamori.errors import NotFound, ValidationError


def apply_transition(
    conn: psycopg.Connection,
    *,
    rule_id: str,
    rule_kind: str,
    hazard: str,
    title_en: str,
    title_ja: str,
    subject: str,
    place: SubjectPlace,
    transition: Transition,
) -> int | None:
    """Bring the stored alert of (rule, subject) to the transition's level; the new event's id, if any.

    Judged against what is stored, not against the transition's own ``previous``: an alert an operator resolved
    by hand while the condition still holds is opened anew on the next change.
    """
    found = store.find_active(conn, rule_id, subject)
    actor = f"rule:{rule_id}"
    t = transition
    if t.level > 0:
        if found is None:
            alert_id = store.insert_alert(
                conn,
                store.NewAlert(
                    rule_id=rule_id,
                    subject=subject,
                    rule_kind=rule_kind,
                    hazard=hazard,
                    title_en=title_en,
                    title_ja=title_ja,
                    device_id=place.device_id,
                    tenant_id=place.tenant_id,
                    level=t.level,
                    value=t.value,
                    device_time=t.at,
                    location=place.location,
                    area_geojson=place.area_geojson,
                    buffer_m=place.buffer_m,
                ),
            )
            return store.insert_event(
                conn,
                alert_id,
                "raised",
                level=t.level,
                previous=0,
                state="open",
                value=t.value,
                device_time=t.at,
                actor=actor,
            )
        alert_id, stored = found
        if stored == t.level:
            return None
        store.set_level(conn, alert_id, t.level, t.value, t.at)
        state = conn.execute("SELECT state FROM alerts WHERE id = %s", (alert_id,)).fetchone()
        return store.insert_event(
            conn,
            alert_id,
            "escalated" if t.level > stored else "deescalated",
            level=t.level,
            previous=stored,
            state=state[0] if state else "open",
            value=t.value,
            device_time=t.at,
            actor=actor,
        )
    if found is None:
        return None
    alert_id, stored = found
    store.set_resolved(conn, alert_id, actor, t.value, t.at)
    return store.insert_event(
        conn,
        alert_id,
        "resolved",
        level=0,
        previous=stored,
        state="resolved",
        value=t.value,
        device_time=t.at,
        actor=actor,
    )


def _locked(conn: psycopg.Connection, alert_id: int, tenant: str | None) -> dict[str, Any]:
    row = store.lock_alert(conn, alert_id, tenant)
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return row


def acknowledge(conn: psycopg.Connection, alert_id: int, actor: str, note: str | None, tenant: str | None) -> int:
    """An operator has seen the alert and is on it. Only an open alert can be acknowledged."""
    with conn.transaction():
        row = _locked(conn, alert_id, tenant)
        if row["state"] != "open":
            raise ValidationError(f"alert {alert_id} is {row['state']}; only an open alert can be acknowledged")
        store.set_acknowledged(conn, alert_id, actor)
        return store.insert_event(
            conn,
            alert_id,
            "acknowledged",
            level=row["level"],
            previous=row["level"],
            state="acknowledged",
            value=None,
            device_time=None,
            actor=actor,
            note=note,
        )


def resolve(conn: psycopg.Connection, alert_id: int, actor: str, note: str | None, tenant: str | None) -> int:
    """Resolved by hand (the rule resolves by itself when its clear condition holds)."""
    with conn.transaction():
        row = _locked(conn, alert_id, tenant)
        if row["state"] not in store.ACTIVE:
            raise ValidationError(f"alert {alert_id} is already {row['state']}")
        store.set_resolved(conn, alert_id, actor, None, None)
        return store.insert_event(
            conn,
            alert_id,
            "resolved",
            level=0,
            previous=row["level"],
            state="resolved",
            value=None,
            device_time=None,
            actor=actor,
            note=note,
        )


def close(conn: psycopg.Connection, alert_id: int, actor: str, note: str | None, tenant: str | None) -> int:
    """Filed away after review. Only a resolved alert can be closed."""
    with conn.transaction():
        row = _locked(conn, alert_id, tenant)
        if row["state"] != "resolved":
            raise ValidationError(f"alert {alert_id} is {row['state']}; only a resolved alert can be closed")
        store.set_closed(conn, alert_id)
        return store.insert_event(
            conn,
            alert_id,
            "closed",
            level=0,
            previous=row["level"],
            state="closed",
            value=None,
            device_time=None,
            actor=actor,
            note=note,
        )
