"""SQL of the device registry, parameterised, one function per question."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from devices.catalogue import DeviceType, MetricSpec
from devices.records import DeviceInfo, DeviceRecord, DeviceState, Liveness
from devices.silence import LEVEL_METRIC, SilencePolicy, judge
from devices.validation import DeviceSpec
from geo.cql2 import columns_of, filter_clause
from geo.feature_sql import sort_order
from geo.features import COLLECTIONS


def sync_catalogue(conn: psycopg.Connection, types: dict[str, DeviceType]) -> None:
    """Upsert the catalogue; metrics no longer listed for a type are removed."""
    with conn.transaction():
        for t in types.values():
            conn.execute(
                "INSERT INTO device_types (id, name, name_ja, description, site_schema)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_ja = excluded.name_ja,"
                " description = excluded.description, site_schema = excluded.site_schema",
                (t.id, t.name, t.name_ja, t.description, Jsonb(t.site_schema)),
            )
            conn.execute(
                "DELETE FROM device_type_metrics WHERE device_type = %s AND NOT (metric = ANY(%s))",
                (t.id, list(t.metrics)),
            )
            for m in t.metrics.values():
                conn.execute(
                    "INSERT INTO device_type_metrics (device_type, metric, unit, min_value, max_value, alt_units)"
                    " VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (device_type, metric) DO UPDATE SET unit = excluded.unit,"
                    " min_value = excluded.min_value, max_value = excluded.max_value,"
                    " alt_units = excluded.alt_units",
                    (t.id, m.metric, m.unit, m.min_value, m.max_value, Jsonb(m.alt_units)),
                )


def metric_specs(conn: psycopg.Connection) -> dict[str, dict[str, MetricSpec]]:
    """Every device type's metrics, as stored in the database."""
    specs: dict[str, dict[str, MetricSpec]] = {}
    rows = conn.execute(
        "SELECT device_type, metric, unit, min_value, max_value, alt_units FROM device_type_metrics"
    ).fetchall()
    for dtype, metric, unit, lo, hi, alt in rows:
        alt_units = alt if isinstance(alt, dict) else json.loads(alt or "{}")
        specs.setdefault(dtype, {})[metric] = MetricSpec(
            metric, unit, lo, hi, {k: float(v) for k, v in alt_units.items()}
        )
    return specs


def active_devices(conn: psycopg.Connection) -> list[DeviceRecord]:
    """Every active device with its place, interval and site metadata (what alert rules bind to)."""
    rows = conn.execute(_RECORD_SELECT + " WHERE d.status = 'active'").fetchall()
    return [_record(r) for r in rows]


def all_devices(conn: psycopg.Connection) -> list[DeviceRecord]:
    return [_record(r) for r in conn.execute(_RECORD_SELECT).fetchall()]


def get_device_record(conn: psycopg.Connection, device_id: str) -> DeviceRecord | None:
    row = conn.execute(_RECORD_SELECT + " WHERE d.id = %s", (device_id,)).fetchone()
    return _record(row) if row else None


def upsert_tenant(conn: psycopg.Connection, tenant_id: str, name: str, kind: str = "partner") -> None:
    conn.execute(
        "INSERT INTO tenants (id, name, kind) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind",
        (tenant_id, name, kind),
    )


def upsert_device(
    conn: psycopg.Connection,
    *,
    device_id: str,
    tenant_id: str,
    device_type: str,
    name: str = "",
    lon: float | None = None,
    lat: float | None = None,
    status: str = "active",
    expected_interval: timedelta = timedelta(minutes=10),
    installed_on: date | None = None,
    metadata: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO devices (id, tenant_id, device_type, name, location, status, expected_interval,"
        " installed_on, metadata)"
        " VALUES (%(id)s, %(tenant)s, %(type)s, %(name)s,"
        " CASE WHEN %(lon)s::float8 IS NULL THEN NULL"
        "      ELSE ST_SetSRID(ST_MakePoint(%(lon)s::float8, %(lat)s::float8), 4326) END,"
        " %(status)s, %(interval)s, %(installed)s, %(meta)s)"
        " ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, device_type = excluded.device_type,"
        " name = excluded.name, location = excluded.location, status = excluded.status,"
        " expected_interval = excluded.expected_interval, installed_on = excluded.installed_on,"
        " metadata = excluded.metadata, updated_at = now()",
        {
            "id": device_id,
            "tenant": tenant_id,
            "type": device_type,
            "name": name,
            "lon": lon,
            "lat": lat,
            "status": status,
            "interval": expected_interval,
            "installed": installed_on,
            "meta": Jsonb(metadata or {}),
        },
    )


def latest_readings(
    conn: psycopg.Connection, device_id: str, tenant_id: str | None
) -> dict[str, tuple[datetime, float]] | None:
    """Newest (time, value) per metric of a device; None when it does not exist or is not ``tenant_id``'s.

    ``tenant_id`` None means the caller may see every tenant.
    """
    exists = conn.execute(
        "SELECT 1 FROM devices WHERE id = %s AND (%s::text IS NULL OR tenant_id = %s)",
        (device_id, tenant_id, tenant_id),
    ).fetchone()
    if not exists:
        return None
    rows = conn.execute(
        "SELECT metric, time, value FROM latest_readings WHERE device_id = %s ORDER BY metric", (device_id,)
    ).fetchall()
    return {metric: (t, v) for metric, t, v in rows}


# -- the one read model: records, and states (record, liveness, latest readings, silence) ---------------------

_RECORD_COLUMNS = (
    "d.id, d.tenant_id, d.device_type, d.status, d.name, ST_X(d.location), ST_Y(d.location), d.expected_interval,"
    " d.metadata, d.installed_on"
)
_RECORD_SELECT = f"SELECT {_RECORD_COLUMNS} FROM devices d"


def _record_fields(r: tuple[Any, ...]) -> tuple[Any, ...]:
    meta = r[8] if isinstance(r[8], dict) else json.loads(r[8] or "{}")
    return (*r[:8], meta, r[9])


def _record(r: tuple[Any, ...]) -> DeviceRecord:
    return DeviceRecord(*_record_fields(r))


# Latest readings as three typed arrays (times stay timestamptz, values float8), metric order.
_STATE_SELECT = (
    f"SELECT {_RECORD_COLUMNS}, l.last_seen, l.last_reading, l.online, x.metrics, x.times, x.vals"
    " FROM devices d LEFT JOIN device_liveness l ON l.device_id = d.id"
    " LEFT JOIN LATERAL (SELECT array_agg(lr.metric ORDER BY lr.metric) AS metrics,"
    "   array_agg(lr.time ORDER BY lr.metric) AS times, array_agg(lr.value ORDER BY lr.metric) AS vals"
    "   FROM latest_readings lr WHERE lr.device_id = d.id) x ON true"
)


@dataclass(frozen=True)
class StateFilter:
    """Which device states a page holds; every given filter must hold."""

    tenant_id: str | None = None  # whose devices the caller may see; None: every tenant
    bbox: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat
    bbox_srid: int = 4326  # or a projected CRS's: min easting, min northing, max easting, max northing (metres)
    reading_from: datetime | None = None  # latest reading at or after
    reading_to: datetime | None = None  # latest reading at or before
    equals: Mapping[str, str] = field(default_factory=dict)  # of STATE_FILTER_COLUMNS
    limit: int = 100
    offset: int = 0
    # Sort keys (property, descending) of STATE_SORT_COLUMNS, before the id (see geo.feature_sql.sort_order).
    order: tuple[tuple[str, bool], ...] = ()
    cql: object | None = None  # a CQL2 filter (geo.cql2.parse_filter's) over _StateColumns


STATE_FILTER_COLUMNS = frozenset({"device_type", "status", "tenant_id"})
# The state properties a page may be sorted by: those read from a column. Silence and metrics are judged or
# pivoted in Python (_states), so they sort nowhere.
STATE_SORT_COLUMNS: Mapping[str, sql.Composable] = {
    "name": sql.Identifier("d", "name"),
    "tenant_id": sql.Identifier("d", "tenant_id"),
    "device_type": sql.Identifier("d", "device_type"),
    "status": sql.Identifier("d", "status"),
    "last_seen": sql.Identifier("l", "last_seen"),
    "last_reading": sql.Identifier("l", "last_reading"),
    "online": sql.Identifier("l", "online"),
}
# What a CQL2 filter may name: the same columns (the devices', and device_liveness's as l).
_STATE_COLUMNS_CQL = columns_of(COLLECTIONS["devices"], "d", STATE_SORT_COLUMNS)
LATEST_PREFIX = "latest."
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class _StateColumns(Mapping[str, tuple[sql.Composable, str]]):
    """The state columns, and ``latest.<metric>``: a device's latest value of that metric (NULL when it has none),
    which NGSI-LD's q names a Device's measurement by. The metric is a literal of a catalogue-shaped name."""

    def __getitem__(self, name: str) -> tuple[sql.Composable, str]:
        if name in _STATE_COLUMNS_CQL:
            return _STATE_COLUMNS_CQL[name]
        metric = name.removeprefix(LATEST_PREFIX)
        if name.startswith(LATEST_PREFIX) and _METRIC_NAME.match(metric):
            latest = sql.SQL(
                "(SELECT lr.value FROM latest_readings lr WHERE lr.device_id = d.id AND lr.metric = {})"
            ).format(sql.Literal(metric))
            return latest, "number"
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(_STATE_COLUMNS_CQL)  # the metrics are open-ended: named, not listed

    def __len__(self) -> int:
        return len(_STATE_COLUMNS_CQL)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True


_STATE_FILTER_COLUMNS = _StateColumns()


def _states(rows: Iterable[tuple[Any, ...]], policy: SilencePolicy, now: datetime) -> list[DeviceState]:
    out = []
    for r in rows:
        device = _record(r)
        liveness = Liveness(r[10], r[11], r[12])
        latest = dict(zip(r[13], zip(r[14], r[15], strict=True), strict=True)) if r[13] else {}
        level = latest.get(LEVEL_METRIC)
        silence = judge(
            status=device.status,
            online=liveness.online,
            heard=liveness.heard,
            expected=device.expected_interval,
            metadata=device.metadata,
            level=level[1] if level else None,
            now=now,
            policy=policy,
        )
        out.append(DeviceState(device, liveness, latest, silence))
    return out


def _state_where(f: StateFilter) -> tuple[sql.Composable, dict[str, Any]]:
    where: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if f.bbox is not None:
        # && alone is an index-only box test; ST_Intersects keeps what only the box touches out.
        box = sql.SQL("ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, {})").format(sql.Literal(int(f.bbox_srid)))
        if f.bbox_srid != 4326:  # a box in metres: its densified outline in 4326, so the corners stay right
            box = sql.SQL("ST_Transform(ST_Segmentize({}, ST_Perimeter({}) / 64), 4326)").format(box, box)
        where.append(sql.SQL("d.location && {}").format(box))
        where.append(sql.SQL("ST_Intersects(d.location, {})").format(box))
        params.update(zip(("x0", "y0", "x1", "y1"), f.bbox, strict=True))
    if f.tenant_id is not None:
        where.append(sql.SQL("d.tenant_id = %(tenant)s"))
        params["tenant"] = f.tenant_id
    if f.reading_from is not None:
        where.append(sql.SQL("l.last_reading >= %(t_start)s"))
        params["t_start"] = f.reading_from
    if f.reading_to is not None:
        where.append(sql.SQL("l.last_reading <= %(t_end)s"))
        params["t_end"] = f.reading_to
    for name, value in f.equals.items():
        if name not in STATE_FILTER_COLUMNS:
            raise ValueError(f"devices cannot be filtered by {name!r}")
        where.append(sql.SQL("{} = {}").format(sql.Identifier("d", name), sql.Placeholder(f"f_{name}")))
        params[f"f_{name}"] = value
    filter_clause(where, params, f.cql, _STATE_FILTER_COLUMNS, sql.SQL("d.location"))
    return (sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")), params


def device_states(
    conn: psycopg.Connection, f: StateFilter, policy: SilencePolicy, now: datetime
) -> tuple[list[DeviceState], bool]:
    """A page of device states in the filter's order (then by id), and whether another page follows."""
    where, params = _state_where(f)
    order = sort_order(f.order, STATE_SORT_COLUMNS, sql.SQL("d.id"))
    query = sql.SQL("{} {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(sql.SQL(_STATE_SELECT), where, order)
    # One row more than asked: its presence says whether a next page exists, without counting every match.
    rows = conn.execute(query, {**params, "limit": f.limit + 1, "offset": f.offset}).fetchall()
    return _states(rows[: f.limit], policy, now), len(rows) > f.limit


def count_device_states(conn: psycopg.Connection, f: StateFilter) -> int:
    """How many devices the filter matches over every page (its limit and offset aside)."""
    where, params = _state_where(f)
    query = sql.SQL("SELECT count(*) FROM devices d LEFT JOIN device_liveness l ON l.device_id = d.id {}").format(where)
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def device_state(
    conn: psycopg.Connection, device_id: str, tenant_id: str | None, policy: SilencePolicy, now: datetime
) -> DeviceState | None:
    """One device's state; None when it does not exist or is not ``tenant_id``'s."""
    rows = conn.execute(
        _STATE_SELECT + " WHERE d.id = %(id)s AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)",
        {"id": device_id, "tenant": tenant_id},
    ).fetchall()
    found = _states(rows, policy, now)
    return found[0] if found else None


def device_states_within(
    conn: psycopg.Connection, within: bytes, tenant_id: str | None, policy: SilencePolicy, now: datetime
) -> list[DeviceState]:
    """The states of the devices located inside a geometry (EWKB in EPSG:4326: a stand's polygon), by id."""
    rows = conn.execute(
        _STATE_SELECT + " WHERE ST_Intersects(d.location, ST_GeomFromEWKB(%(within)s))"
        " AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s) ORDER BY d.id",
        {"within": within, "tenant": tenant_id},
    ).fetchall()
    return _states(rows, policy, now)


def readings_summary_within(
    conn: psycopg.Connection, within: bytes, tenant_id: str | None, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Per metric, over the devices inside a geometry (EWKB, EPSG:4326) and [start, end): devices, count, mean,
    min, max, the last value and its time."""
    rows = conn.execute(
        "WITH inside AS ("
        "  SELECT d.id FROM devices d WHERE ST_Intersects(d.location, ST_GeomFromEWKB(%(within)s))"
        "  AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s))"
        " SELECT r.metric, count(DISTINCT r.device_id), count(*), avg(r.value), min(r.value), max(r.value),"
        "  (array_agg(r.value ORDER BY r.time DESC))[1], max(r.time)"
        " FROM readings r JOIN inside ON r.device_id = inside.id"
        " WHERE r.time >= %(start)s AND r.time < %(end)s"
        " GROUP BY r.metric ORDER BY r.metric",
        {"within": within, "tenant": tenant_id, "start": start, "end": end},
    ).fetchall()
    keys = ("metric", "sensors", "count", "avg", "min", "max", "last", "last_time")
    return [dict(zip(keys, r, strict=True)) for r in rows]


# A vector-tile layer's rows (geo's tile query supplies `t`: the tile's envelope in EPSG:3857 and 4326).
TILE_ROWS = (
    "SELECT ST_AsMVTGeom(ST_Transform(d.location, 3857), t.env, 4096, 64, true) AS geom, d.id, d.name,"
    " d.device_type, d.status, l.online"
    " FROM devices d LEFT JOIN device_liveness l ON l.device_id = d.id, t"
    " WHERE d.location && t.env4326 AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)"
)


def tenant_exists(conn: psycopg.Connection, tenant_id: str) -> bool:
    return conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is not None


def tenant_name(conn: psycopg.Connection, tenant_id: str) -> str | None:
    row = conn.execute("SELECT name FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return row[0] if row else None


# -- the registry as people and partner systems see it ------------------------------------------------------
# Every function taking ``tenant`` confines itself to that tenant in its SQL; None means "every tenant" and is
# only passed for callers that may see the whole hub (see devices.keys.Principal.sees_all_tenants).


@dataclass(frozen=True)
class DeviceFilter:
    tenant_id: str | None = None
    device_type: str | None = None
    status: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat
    text: str | None = None  # in id or name
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class TenantInfo:
    id: str
    name: str
    kind: str
    created_at: datetime
    devices: int


_DEVICE_SELECT = (
    f"SELECT {_RECORD_COLUMNS}, d.created_at, d.updated_at, c.device_id IS NOT NULL"
    " FROM devices d LEFT JOIN device_credentials c ON c.device_id = d.id"
)


def _info(r: tuple[Any, ...]) -> DeviceInfo:
    return DeviceInfo(*_record_fields(r), created_at=r[10], updated_at=r[11], has_credentials=r[12])


def catalogue_from_db(conn: psycopg.Connection) -> dict[str, DeviceType]:
    """The device types as the database holds them (loaded from catalogue.yaml by ``sync_catalogue``)."""
    specs = metric_specs(conn)
    rows = conn.execute("SELECT id, name, name_ja, description, site_schema FROM device_types ORDER BY id").fetchall()
    return {
        r[0]: DeviceType(
            id=r[0],
            name=r[1],
            name_ja=r[2],
            description=r[3],
            site_schema=dict(r[4] or {}),
            metrics=specs.get(r[0], {}),
        )
        for r in rows
    }


def get_device(conn: psycopg.Connection, device_id: str, tenant: str | None) -> DeviceInfo | None:
    row = conn.execute(
        _DEVICE_SELECT + " WHERE d.id = %(id)s AND (%(t)s::text IS NULL OR d.tenant_id = %(t)s)",
        {"id": device_id, "t": tenant},
    ).fetchone()
    return _info(row) if row else None


def list_devices(conn: psycopg.Connection, tenant: str | None, f: DeviceFilter) -> list[DeviceInfo]:
    bbox = f.bbox or (None, None, None, None)
    rows = conn.execute(
        _DEVICE_SELECT + " WHERE (%(scope)s::text IS NULL OR d.tenant_id = %(scope)s)"
        " AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)"
        " AND (%(type)s::text IS NULL OR d.device_type = %(type)s)"
        " AND (%(status)s::text IS NULL OR d.status = %(status)s)"
        " AND (%(x0)s::float8 IS NULL OR d.location && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326))"
        " AND (%(text)s::text IS NULL OR d.id ILIKE %(like)s OR d.name ILIKE %(like)s)"
        " ORDER BY d.id LIMIT %(limit)s OFFSET %(offset)s",
        {
            "scope": tenant,
            "tenant": f.tenant_id,
            "type": f.device_type,
            "status": f.status,
            "x0": bbox[0],
            "y0": bbox[1],
            "x1": bbox[2],
            "y1": bbox[3],
            "text": f.text,
            "like": f"%{f.text}%" if f.text else None,
            "limit": f.limit,
            "offset": f.offset,
        },
    ).fetchall()
    return [_info(r) for r in rows]


def device_owners(conn: psycopg.Connection, device_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(tenant, status) of each of ``device_ids`` that exists (to refuse moves between tenants, keep statuses)."""
    rows = conn.execute("SELECT id, tenant_id, status FROM devices WHERE id = ANY(%s)", (device_ids,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def tenant_ids(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT id FROM tenants").fetchall()}


def write_devices(conn: psycopg.Connection, specs: list[DeviceSpec]) -> dict[str, str]:
    """Insert or update devices in one statement; returns {id: 'created' | 'updated'} for rows that changed.

    Rows equal to what is stored are not touched (so re-importing a file changes nothing, not even
    ``updated_at``), a device never moves to another tenant here, and a spec without status keeps the stored one.
    Ids must be unique within ``specs``.
    """
    if not specs:
        return {}
    rows = conn.execute(
        "INSERT INTO devices AS d (id, tenant_id, device_type, name, location, status, expected_interval,"
        " installed_on, metadata)"
        " SELECT u.id, u.tenant, u.type, u.name,"
        " CASE WHEN u.lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(u.lon, u.lat), 4326) END,"
        " u.status, make_interval(secs => u.interval_s), u.installed, u.meta::jsonb"
        " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::float8[], %s::text[],"
        " %s::int[], %s::date[], %s::text[])"
        " AS u(id, tenant, type, name, lon, lat, status, interval_s, installed, meta)"
        " ON CONFLICT (id) DO UPDATE SET device_type = excluded.device_type, name = excluded.name,"
        " location = excluded.location, status = excluded.status, expected_interval = excluded.expected_interval,"
        " installed_on = excluded.installed_on, metadata = excluded.metadata, updated_at = now()"
        " WHERE d.tenant_id = excluded.tenant_id AND (d.device_type, d.name, d.location, d.status,"
        " d.expected_interval, d.installed_on, d.metadata) IS DISTINCT FROM (excluded.device_type, excluded.name,"
        " excluded.location, excluded.status, excluded.expected_interval, excluded.installed_on, excluded.metadata)"
        " RETURNING d.id, (xmax = 0)",
        (
            [s.id for s in specs],
            [s.tenant_id for s in specs],
            [s.device_type for s in specs],
            [s.name for s in specs],
            [s.lon for s in specs],
            [s.lat for s in specs],
            [str(s.status) for s in specs],
            [s.expected_interval_s for s in specs],
            [s.installed_on for s in specs],
            [json.dumps(s.metadata, sort_keys=True) for s in specs],
        ),
    ).fetchall()
    return {r[0]: "created" if r[1] else "updated" for r in rows}


def set_device_status(conn: psycopg.Connection, device_id: str, status: str, tenant: str | None) -> bool:
    cur = conn.execute(
        "UPDATE devices SET status = %(s)s, updated_at = now()"
        " WHERE id = %(id)s AND (%(t)s::text IS NULL OR tenant_id = %(t)s)",
        {"s": status, "id": device_id, "t": tenant},
    )
    return cur.rowcount == 1


def mark_credentials(conn: psycopg.Connection, device_id: str, username: str, rotated: bool = False) -> None:
    if rotated:
        conn.execute("UPDATE device_credentials SET rotated_at = now() WHERE device_id = %s", (device_id,))
    else:
        conn.execute(
            "INSERT INTO device_credentials (device_id, mqtt_username) VALUES (%s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET provisioned_at = now(), rotated_at = NULL",
            (device_id, username),
        )


def forget_credentials(conn: psycopg.Connection, device_id: str) -> bool:
    return conn.execute("DELETE FROM device_credentials WHERE device_id = %s", (device_id,)).rowcount == 1


def list_tenants(conn: psycopg.Connection, tenant: str | None) -> list[TenantInfo]:
    rows = conn.execute(
        "SELECT t.id, t.name, t.kind, t.created_at, count(d.id) FROM tenants t LEFT JOIN devices d"
        " ON d.tenant_id = t.id WHERE %(t)s::text IS NULL OR t.id = %(t)s GROUP BY t.id ORDER BY t.id",
        {"t": tenant},
    ).fetchall()
    return [TenantInfo(*r) for r in rows]


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, object]


def list_audit(conn: psycopg.Connection, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    rows = conn.execute(
        "SELECT at, actor, action, target, detail FROM audit_log WHERE %(a)s::text IS NULL OR action LIKE %(p)s"
        " ORDER BY id DESC LIMIT %(n)s",
        {"a": action, "p": f"{action}%", "n": limit},
    ).fetchall()
    return [AuditEntry(*r) for r in rows]
