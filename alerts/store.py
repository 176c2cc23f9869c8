"""The alert store: SQL of the tables ``alerts``, ``alert_events``, ``cap_messages`` and ``alert_rules``, and the
reads the engine starts from (active devices, window readings). Parameterised, one function per question.

Tenant confinement is in the SQL: every read that a person can reach takes ``tenant`` (None = the caller sees every
tenant). Delivery (cursors, webhook subscriptions, their deliveries and retries) is alerts/outbox.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.cap_messages import MSG_TYPE_OF_EVENT, CapMessage, identifier_for, place_names
from alerts.evaluate import Observation
from devices.queries import get_device_record, tenant_name

# -- API-managed rules ------------------------------------------------------------------------------


def api_rules(conn: psycopg.Connection) -> list[tuple[str, dict[str, Any], datetime, str]]:
    return [tuple(r) for r in conn.execute("SELECT id, body, updated_at, updated_by FROM alert_rules ORDER BY id")]  # type: ignore[misc]


def api_rules_version(conn: psycopg.Connection) -> tuple[int, datetime | None]:
    row = conn.execute("SELECT count(*), max(updated_at) FROM alert_rules").fetchone()
    assert row is not None
    return int(row[0]), row[1]


def save_api_rule(conn: psycopg.Connection, rule_id: str, body: dict[str, Any], actor: str) -> None:
    conn.execute(
        "INSERT INTO alert_rules (id, body, updated_by) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_by = excluded.updated_by,"
        " updated_at = clock_timestamp()",
        (rule_id, Jsonb(body), actor),
    )


def delete_api_rule(conn: psycopg.Connection, rule_id: str) -> bool:
    return conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule_id,)).rowcount == 1


# -- evaluation state ---------------------------------------------------------------------------------


def active_levels(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    """The level of every active alert, by (rule, subject): where the evaluator starts after a restart."""
    rows = conn.execute("SELECT rule_id, subject, level FROM alerts WHERE state IN ('open', 'acknowledged')")
    return {(r[0], r[1]): int(r[2]) for r in rows}


def window_readings(
    conn: psycopg.Connection, device_ids: list[str], metrics: list[str], span: timedelta
) -> list[Observation]:
    """Each device's readings of ``metrics`` within ``span`` before its own newest reading (device time)."""
    rows = conn.execute(
        "SELECT r.device_id, r.metric, r.time, r.value FROM readings r"
        " JOIN latest_readings l ON l.device_id = r.device_id AND l.metric = r.metric"
        " WHERE r.device_id = ANY(%s) AND r.metric = ANY(%s) AND r.time > l.time - %s"
        " ORDER BY r.time",
        (device_ids, metrics, span),
    ).fetchall()
    return [Observation(d, m, t, v) for d, m, t, v in rows]


def last_reading_times(conn: psycopg.Connection, device_ids: list[str]) -> dict[str, datetime]:
    rows = conn.execute(
        "SELECT device_id, max(time) FROM latest_readings WHERE device_id = ANY(%s) GROUP BY device_id",
        (device_ids,),
    ).fetchall()
    return {d: t for d, t in rows}


def latest_values(conn: psycopg.Connection, device_ids: list[str], metric: str) -> dict[str, float]:
    """The newest value of ``metric`` of each device that has one."""
    rows = conn.execute(
        "SELECT device_id, value FROM latest_readings WHERE device_id = ANY(%s) AND metric = %s", (device_ids, metric)
    ).fetchall()
    return {d: v for d, v in rows}


def devices_near_active_alerts(
    conn: psycopg.Connection, places: Mapping[str, tuple[float, float]], meters: float, other_than_rule: str
) -> set[str]:
    """Of the devices at ``places`` (id: lon, lat), those within ``meters`` of an active alert of another rule
    (its area, or its point)."""
    ids = list(places)
    rows = conn.execute(
        "SELECT p.id FROM unnest(%s::text[], %s::float8[], %s::float8[]) AS p(id, lon, lat) WHERE EXISTS ("
        " SELECT 1 FROM alerts a WHERE a.state IN ('open', 'acknowledged') AND a.rule_id <> %s"
        " AND a.subject <> p.id AND ST_DWithin(coalesce(a.area, a.location)::geography,"
        " ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)::geography, %s))",
        (ids, [places[i][0] for i in ids], [places[i][1] for i in ids], other_than_rule, meters),
    ).fetchall()
    return {r[0] for r in rows}


# -- alerts and their events -----------------------------------------------------------------------------------


_COLUMNS = (
    "a.id, a.rule_id, a.subject, a.rule_kind, a.hazard, a.title_en, a.title_ja, a.device_id, a.tenant_id, a.state,"
    " a.level, a.peak_level, a.value, a.device_time, a.opened_at, a.updated_at, a.acknowledged_at,"
    " a.acknowledged_by, a.resolved_at, a.resolved_by, a.closed_at,"
    " ST_AsGeoJSON(a.location)::json AS location, ST_AsGeoJSON(a.area, 6)::json AS area"
)


@dataclass(frozen=True, slots=True)
class NewAlert:
    rule_id: str
    subject: str
    rule_kind: str
    hazard: str
    title_en: str
    title_ja: str
    device_id: str | None
    tenant_id: str
    level: int
    value: float | None
    device_time: datetime
    location: tuple[float, float] | None  # lon, lat
    area_geojson: dict[str, Any] | None  # a configured polygon
    buffer_m: float  # otherwise a buffer around the location, when > 0


def find_active(conn: psycopg.Connection, rule_id: str, subject: str) -> tuple[int, int, str] | None:
    """(alert id, level, state) of the active alert of (rule, subject), locked for the change."""
    row = conn.execute(
        "SELECT id, level, state FROM alerts WHERE rule_id = %s AND subject = %s"
        " AND state IN ('open', 'acknowledged') FOR UPDATE",
        (rule_id, subject),
    ).fetchone()
    return (int(row[0]), int(row[1]), str(row[2])) if row else None


def insert_alert(conn: psycopg.Connection, a: NewAlert) -> int:
    lon, lat = a.location if a.location else (None, None)
    row = conn.execute(
        "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, title_ja, device_id, tenant_id, state,"
        " level, peak_level, value, device_time, location, area)"
        " SELECT %(rule)s, %(subject)s, %(kind)s, %(hazard)s, %(en)s, %(ja)s, %(device)s, %(tenant)s, 'open',"
        " %(level)s, %(level)s, %(value)s, %(dt)s, pt.p,"
        " CASE WHEN %(area)s::text IS NOT NULL THEN ST_SetSRID(ST_GeomFromGeoJSON(%(area)s::text), 4326)"
        "      WHEN pt.p IS NOT NULL AND %(buffer)s::float8 > 0"
        "      THEN ST_Buffer(pt.p::geography, %(buffer)s::float8, 16)::geometry"
        " END"
        " FROM (SELECT CASE WHEN %(lon)s::float8 IS NULL THEN NULL"
        "       ELSE ST_SetSRID(ST_MakePoint(%(lon)s::float8, %(lat)s::float8), 4326) END AS p) pt"
        " RETURNING id",
        {
            "rule": a.rule_id,
            "subject": a.subject,
            "kind": a.rule_kind,
            "hazard": a.hazard,
            "en": a.title_en,
            "ja": a.title_ja,
            "device": a.device_id,
            "tenant": a.tenant_id,
            "level": a.level,
            "value": a.value,
            "dt": a.device_time,
            "area": json.dumps(a.area_geojson) if a.area_geojson else None,
            "buffer": a.buffer_m,
            "lon": lon,
            "lat": lat,
        },
    ).fetchone()
    assert row is not None
    return int(row[0])


def set_level(conn: psycopg.Connection, alert_id: int, level: int, value: float | None, device_time: datetime) -> None:
    conn.execute(
        "UPDATE alerts SET level = %s, peak_level = greatest(peak_level, %s), value = %s, device_time = %s,"
        " updated_at = clock_timestamp() WHERE id = %s",
        (level, level, value, device_time, alert_id),
    )


# The columns a change of state may stamp (alerts/states.py names them): identifiers cannot be parameters.
_STAMPED = frozenset({"acknowledged_at", "resolved_at", "closed_at"})
_SIGNED = frozenset({"acknowledged_by", "resolved_by"})


def set_state(
    conn: psycopg.Connection,
    alert_id: int,
    state: str,
    *,
    at_column: str,
    by_column: str | None,
    actor: str,
    value: float | None = None,
    device_time: datetime | None = None,
) -> None:
    """Move the alert to ``state``, stamping ``at_column`` now and ``by_column`` with the actor; a rule's resolve
    also records its last value and device time."""
    if at_column not in _STAMPED or (by_column is not None and by_column not in _SIGNED):
        raise ValueError(f"not a lifecycle column: {at_column}, {by_column}")
    signed = sql.SQL(", {} = %(actor)s").format(sql.Identifier(by_column)) if by_column else sql.SQL("")
    conn.execute(
        sql.SQL(
            "UPDATE alerts SET state = %(state)s, {at} = clock_timestamp(){signed},"
            " value = coalesce(%(value)s, value), device_time = coalesce(%(dt)s, device_time),"
            " updated_at = clock_timestamp() WHERE id = %(id)s"
        ).format(at=sql.Identifier(at_column), signed=signed),
        {"state": state, "actor": actor, "value": value, "dt": device_time, "id": alert_id},
    )


def insert_event(
    conn: psycopg.Connection,
    alert_id: int,
    kind: str,
    *,
    level: int,
    previous: int | None,
    state: str,
    value: float | None,
    device_time: datetime | None,
    actor: str,
    note: str | None = None,
) -> int:
    # The acting key's name as it is now, kept with the event (an audit trail wants the name of the time).
    row = conn.execute(
        "INSERT INTO alert_events"
        " (alert_id, kind, level, previous_level, state, value, device_time, actor, actor_name, note)"
        " VALUES (%(alert)s, %(kind)s, %(level)s, %(previous)s, %(state)s, %(value)s, %(dt)s, %(actor)s,"
        " (SELECT nullif(btrim(name), '') FROM api_keys WHERE id = %(actor)s), %(note)s) RETURNING id",
        {
            "alert": alert_id,
            "kind": kind,
            "level": level,
            "previous": previous,
            "state": state,
            "value": value,
            "dt": device_time,
            "actor": actor,
            "note": note,
        },
    ).fetchone()
    assert row is not None
    # the change's CAP message (if it is one) is fixed now, in the same transaction: see alerts/cap_messages.py
    record_cap_message(conn, alert_id, int(row[0]), kind)
    return int(row[0])


def lock_alert(conn: psycopg.Connection, alert_id: int, tenant: str | None) -> dict[str, Any] | None:
    """The alert row, locked for a lifecycle change; None when missing or another tenant's."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, state, level FROM alerts WHERE id = %s AND (%s::text IS NULL OR tenant_id = %s) FOR UPDATE",
            (alert_id, tenant, tenant),
        ).fetchone()


# -- CAP messages (what each is: alerts/cap_messages.py) -------------------------------------------------


def record_cap_message(conn: psycopg.Connection, alert_id: int, event_id: int, kind: str) -> str | None:
    """Store the CAP message of a new event: its identifier, or None when the event is no message. Runs in the
    event's transaction, under the lock on the alert row every change takes: sequence numbers cannot race."""
    msg_type = MSG_TYPE_OF_EVENT.get(kind)
    if msg_type is None:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT a.subject, a.device_id, a.tenant_id, date_trunc('second', e.at) AS sent,"
            " (SELECT coalesce(max(m.seq), 0) + 1 FROM cap_messages m WHERE m.alert_id = a.id) AS seq"
            " FROM alerts a JOIN alert_events e ON e.id = %s AND e.alert_id = a.id WHERE a.id = %s",
            (event_id, alert_id),
        ).fetchone()
    assert row is not None, f"event {event_id} of alert {alert_id} was just stored"
    # The device's and the tenant's names, from their owner (devices/).
    device = get_device_record(conn, row["device_id"]) if row["device_id"] is not None else None
    row["device_name"] = device.name if device else None
    row["metadata"] = dict(device.metadata) if device else None
    row["tenant_name"] = tenant_name(conn, row["tenant_id"])
    seq = int(row["seq"])
    if seq == 1 and msg_type != "Alert":  # cannot happen: an alert's first event is 'raised'
        raise RuntimeError(f"alert {alert_id}: first CAP message would be a {kind} event")
    ja, en = place_names(row)
    identifier = identifier_for(alert_id, seq, row["sent"])
    conn.execute(
        "INSERT INTO cap_messages (alert_id, seq, event_id, identifier, sent, msg_type, area_ja, area_en)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (alert_id, seq, event_id, identifier, row["sent"], msg_type, ja, en),
    )
    return identifier


_CAP_SELECT = (
    "SELECT m.alert_id, m.seq, m.identifier, m.sent, m.msg_type, m.area_ja, m.area_en,"
    " e.kind, e.level, e.previous_level, e.state, e.value"
    " FROM cap_messages m JOIN alert_events e ON e.id = m.event_id"
)


def cap_messages_of(conn: psycopg.Connection, alert_id: int) -> list[CapMessage]:
    """Every CAP message of the alert, oldest first."""
    return cap_messages_of_alerts(conn, [alert_id]).get(alert_id, [])


def cap_messages_of_alerts(conn: psycopg.Connection, alert_ids: list[int]) -> dict[int, list[CapMessage]]:
    """The CAP messages of each alert, oldest first (one query for a whole feed)."""
    rows = conn.execute(_CAP_SELECT + " WHERE m.alert_id = ANY(%s) ORDER BY m.alert_id, m.seq", (alert_ids,)).fetchall()
    out: dict[int, list[CapMessage]] = {}
    for r in rows:
        message = CapMessage(*r)
        out.setdefault(message.alert_id, []).append(message)
    return out


# -- reading alerts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertFilter:
    states: list[str] | None = None
    min_level: int | None = None
    hazards: list[str] | None = None
    rule_kinds: list[str] | None = None
    bbox: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat
    since: datetime | None = None  # updated at or after
    until: datetime | None = None  # opened before
    limit: int = 100
    offset: int = 0


def bbox_params(bbox: tuple[float, float, float, float] | None) -> dict[str, float | None]:
    x0, y0, x1, y1 = bbox if bbox else (None, None, None, None)
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1}


_BBOX_SQL = (
    "(%(x0)s::float8 IS NULL OR ST_Intersects(coalesce(a.area, a.location),"
    " ST_MakeEnvelope(%(x0)s::float8, %(y0)s::float8, %(x1)s::float8, %(y1)s::float8, 4326)))"
)


def list_alerts(conn: psycopg.Connection, f: AlertFilter, tenant: str | None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {
        "tenant": tenant,
        "states": f.states,
        "min_level": f.min_level,
        "hazards": f.hazards,
        "kinds": f.rule_kinds,
        "since": f.since,
        "until": f.until,
        "limit": f.limit,
        "offset": f.offset,
        **bbox_params(f.bbox),
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM alerts a"
            " WHERE (%(tenant)s::text IS NULL OR a.tenant_id = %(tenant)s)"
            " AND (%(states)s::text[] IS NULL OR a.state = ANY(%(states)s))"
            " AND (%(min_level)s::int IS NULL OR a.level >= %(min_level)s)"
            " AND (%(hazards)s::text[] IS NULL OR a.hazard = ANY(%(hazards)s))"
            " AND (%(kinds)s::text[] IS NULL OR a.rule_kind = ANY(%(kinds)s))"
            " AND (%(since)s::timestamptz IS NULL OR a.updated_at >= %(since)s)"
            " AND (%(until)s::timestamptz IS NULL OR a.opened_at < %(until)s)"
            f" AND {_BBOX_SQL}"
            " ORDER BY a.level DESC, a.updated_at DESC, a.id DESC LIMIT %(limit)s OFFSET %(offset)s",
            params,
        ).fetchall()


def get_alert(conn: psycopg.Connection, alert_id: int, tenant: str | None) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM alerts a WHERE a.id = %s AND (%s::text IS NULL OR a.tenant_id = %s)",
            (alert_id, tenant, tenant),
        ).fetchone()


_EVENT_COLUMNS = (
    "e.id, e.alert_id, e.kind, e.at, e.device_time, e.level, e.previous_level, e.state, e.value, e.actor, e.note"
)


def events_of(conn: psycopg.Connection, alert_id: int) -> list[dict[str, Any]]:
    """An alert's history, with the acting person's name where the key had one (not in the distributed events)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_EVENT_COLUMNS}, e.actor_name FROM alert_events e WHERE e.alert_id = %s ORDER BY e.id",
            (alert_id,),
        ).fetchall()


def events_after(
    conn: psycopg.Connection,
    after_id: int,
    tenant: str | None,
    *,
    min_level: int | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Events newer than ``after_id`` with their alert (as it is now), oldest first: the live stream's source."""
    params: dict[str, Any] = {"after": after_id, "tenant": tenant, "min_level": min_level, "limit": limit}
    params.update(bbox_params(bbox))
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_EVENT_COLUMNS}, row_to_json(al) AS alert FROM alert_events e"
            f" JOIN LATERAL (SELECT {_COLUMNS} FROM alerts a WHERE a.id = e.alert_id) al ON true"
            " JOIN alerts a ON a.id = e.alert_id"
            " WHERE e.id > %(after)s AND (%(tenant)s::text IS NULL OR a.tenant_id = %(tenant)s)"
            " AND (%(min_level)s::int IS NULL OR greatest(e.level, coalesce(e.previous_level, 0)) >= %(min_level)s)"
            f" AND {_BBOX_SQL}"
            " ORDER BY e.id LIMIT %(limit)s",
            params,
        ).fetchall()
    return rows


def newest_event_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()
    return int(row[0]) if row else 0


def alert_with_events(conn: psycopg.Connection, alert_id: int, tenant: str | None) -> dict[str, Any] | None:
    found = get_alert(conn, alert_id, tenant)
    if found is None:
        return None
    return {**found, "events": events_of(conn, alert_id)}
