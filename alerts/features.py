"""The alerts as a feature collection, a vector-tile layer and a place: SQL of the alerts table for geo's pages.

geo/ shapes the page (bbox, tenant, paging: geo.feature_sql); the SQL against ``alerts`` is here, with the table
it reads. Read only.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from geo.cql2 import columns_of, filter_clause
from geo.crs import STORAGE, Crs, geojson_sql
from geo.feature_sql import Rows, bbox_clause, page, plain_features, sort_order, tenant_clause
from geo.features import COLLECTIONS, Feature, FeaturePage, FeatureQuery
from mimamori.errors import NotFound

_ALERT_PROPERTIES = (
    "jsonb_build_object('rule_id', a.rule_id, 'subject', a.subject, 'hazard', a.hazard, 'title_en', a.title_en,"
    "   'title_ja', a.title_ja, 'device_id', a.device_id, 'tenant_id', a.tenant_id, 'state', a.state,"
    "   'level', a.level, 'peak_level', a.peak_level, 'value', a.value, 'opened_at', a.opened_at,"
    "   'updated_at', a.updated_at, 'resolved_at', a.resolved_at, 'closed_at', a.closed_at)"
)


def _alert_select(crs: Crs) -> sql.Composable:
    return sql.SQL("SELECT a.id::text, {}, {} FROM alerts a").format(
        geojson_sql(sql.SQL("coalesce(a.area, a.location)"), crs), sql.SQL(_ALERT_PROPERTIES)
    )


_DOUBLES = COLLECTIONS["alerts"].doubles()  # value: written 2.0, never 2
# Every property is the alerts column of its name (jsonb_build_object above), so each sorts by that column.
_SORT_COLUMNS = {name: sql.Identifier("a", name) for name in COLLECTIONS["alerts"].sortables}
_COLUMNS_CQL = columns_of(COLLECTIONS["alerts"], "a")  # what a CQL2 filter may name: a.<property>


def _alert_features(rows: Rows) -> list[Feature]:
    return plain_features(rows, _DOUBLES)


# The alerts' vector-tile rows, run inside geo's tile query (``t``: the tile's envelope; ``%(tenant)s``).
TILE_ROWS = (
    "SELECT ST_AsMVTGeom(ST_Transform(coalesce(a.area, a.location), 3857), t.env, 4096, 64, true) AS geom,"
    " a.id, a.hazard, a.level, a.state, a.title_en"
    " FROM alerts a, t WHERE coalesce(a.area, a.location) && t.env4326"
    " AND a.state IN ('open', 'acknowledged') AND (%(tenant)s::text IS NULL OR a.tenant_id = %(tenant)s)"
)


def alerts_table_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('alerts') IS NOT NULL").fetchone()
    return bool(row and row[0])


def alert_features(conn: psycopg.Connection, q: FeatureQuery) -> FeaturePage:
    """Active alerts; with a time interval, every alert whose lifetime overlaps it (the history)."""
    where, params = bbox_clause(sql.SQL("coalesce(a.area, a.location)"), q.bbox)
    tenant_clause(where, params, sql.SQL("a.tenant_id"), q.tenant_id)
    if q.start is None and q.end is None:
        where.append(sql.SQL("a.state IN ('open', 'acknowledged')"))
    else:
        if q.end is not None:
            where.append(sql.SQL("a.opened_at <= %(t_end)s"))
            params["t_end"] = q.end
        if q.start is not None:
            where.append(sql.SQL("coalesce(a.resolved_at, a.closed_at, 'infinity') >= %(t_start)s"))
            params["t_start"] = q.start
    for name, value in q.filters.items():
        cast = sql.SQL("::smallint") if name == "level" else sql.SQL("")
        where.append(sql.SQL("{} = {}{}").format(sql.Identifier("a", name), sql.Placeholder(f"f_{name}"), cast))
        params[f"f_{name}"] = value
    filter_clause(where, params, q.filter, _COLUMNS_CQL, sql.SQL("coalesce(a.area, a.location)"))
    order = sort_order(q.sortby, _SORT_COLUMNS, sql.SQL("a.opened_at DESC, a.id DESC"))
    return page(conn, _alert_select(q.crs), where, order, params, q, _alert_features, ("alerts", "a"))


def alert_feature(conn: psycopg.Connection, alert_id: str, tenant_id: str | None, crs: Crs = STORAGE) -> Feature | None:
    if not alert_id.isdigit():
        return None
    rows = conn.execute(
        _alert_select(crs) + sql.SQL(" WHERE a.id = %(id)s AND (%(tenant)s::text IS NULL OR a.tenant_id = %(tenant)s)"),
        {"id": int(alert_id), "tenant": tenant_id},
    ).fetchall()
    found = _alert_features(rows)
    return found[0] if found else None


def alert_geometry(conn: psycopg.Connection, alert_id: int, tenant_id: str | None) -> bytes | None:
    """An alert's area (or its point) as EWKB in EPSG:4326, for the stands it touches; None when it has no place.

    Raises NotFound when there is no such alert for ``tenant_id`` (None: every tenant)."""
    row = conn.execute(
        "SELECT ST_AsEWKB(coalesce(area, location)) FROM alerts"
        " WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)",
        {"id": alert_id, "tenant": tenant_id},
        binary=True,
    ).fetchone()
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return bytes(row[0]) if row[0] is not None else None
