"""The alert lifecycle applied to the store: one alert per (rule, subject) while it lasts.

What may happen is decided in alerts/states.py (pure): the evaluator's transitions raise, escalate, de-escalate
and resolve (``apply_transition``); people acknowledge (with a note), resolve by hand and close, all through
``act`` and the one table of actions. Every change writes an event with who, when, level and value, in the same
transaction as the change.
"""

from __future__ import annotations

import psycopg

from alerts import store
from alerts.evaluate import Transition
from alerts.model import SubjectPlace
from alerts.states import ACTIONS, Action, RuleOp, rule_step, step_for
from mimamori.errors import NotFound


class StaleTransition(Exception):
    """The evaluator's transition starts from a level the stored alert is not at: its state needs a rebuild."""


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
    """Store the evaluator's transition of (rule, subject); the new event's id, if any.

    The event's kind is the transition's (alerts/states.py ``rule_step``). Raises StaleTransition, storing
    nothing, when the transition does not start from the stored level.
    """
    found = store.find_active(conn, rule_id, subject)
    t = transition
    step = rule_step(t, found[1] if found else None)
    if step is None:
        return None
    actor = f"rule:{rule_id}"
    if step.op is RuleOp.open:
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
        previous, state = 0, "open"
    elif step.op is RuleOp.stale or found is None:
        stored = found[1] if found else None
        raise StaleTransition(f"{rule_id}/{subject}: {t.change} from {t.previous}, stored level {stored}")
    elif step.op is RuleOp.change:
        alert_id, previous, state = found
        store.set_level(conn, alert_id, t.level, t.value, t.at)
    else:  # resolved by the rule's clear condition: the same stamps as a resolve by hand
        alert_id, previous, _ = found
        resolve = ACTIONS[Action.resolve]
        state = resolve.to_state
        store.set_state(
            conn,
            alert_id,
            state,
            at_column=resolve.at_column,
            by_column=resolve.by_column,
            actor=actor,
            value=t.value,
            device_time=t.at,
        )
    assert step.event is not None
    return store.insert_event(
        conn,
        alert_id,
        step.event,
        level=t.level,
        previous=previous,
        state=state,
        value=t.value,
        device_time=t.at,
        actor=actor,
    )


def act(
    conn: psycopg.Connection, alert_id: int, action: Action, actor: str, note: str | None, tenant: str | None
) -> int:
    """A person's action on an alert (alerts/states.py ``ACTIONS``); the new event's id.

    NotFound when the alert is missing or another tenant's; ValidationError when its state does not allow it.
    """
    with conn.transaction():
        row = store.lock_alert(conn, alert_id, tenant)
        if row is None:
            raise NotFound(f"alert {alert_id} not found")
        step = step_for(action, alert_id, row["state"])
        store.set_state(conn, alert_id, step.to_state, at_column=step.at_column, by_column=step.by_column, actor=actor)
        return store.insert_event(
            conn,
            alert_id,
            step.event,
            level=row["level"] if step.keeps_level else 0,
            previous=row["level"],
            state=step.to_state,
            value=None,
            device_time=None,
            actor=actor,
            note=note,
        )
