"""How a feature collection's SQL is paged and filtered: the pieces every owner of a collection's table uses.

geo/ owns the shape of a feature page (bbox, tenant, datetime and equality filters, one row more than asked to
know whether another page follows); the SQL against each table stays with its owner (stands and areas here in
geo/queries.py, alerts in alerts/features.py), which passes its SELECT in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson
import psycopg
from psycopg import sql

from geo.features import Feature, FeaturePage, FeatureQuery
from geo.geometry import BBox

Rows = Iterable[tuple[Any, ...]]


def feature_where(
    alias: str, geometry: str, time_column: sql.Composable, q: FeatureQuery
) -> tuple[list[sql.Composable], dict[str, Any]]:
    """Bbox, tenant, datetime and equality filters of a tenant-owned collection aliased ``alias``."""
    where, params = bbox_clause(sql.Identifier(alias, geometry), q.bbox)
    tenant_clause(where, params, sql.Identifier(alias, "tenant_id"), q.tenant_id)
    time_clause(where, params, time_column, q)
    for name, value in q.filters.items():
        where.append(sql.SQL("{} = {}").format(sql.Identifier(alias, name), sql.Placeholder(f"f_{name}")))
        params[f"f_{name}"] = value
    return where, params


def bbox_clause(column: sql.Composable, bbox: BBox | None) -> tuple[list[sql.Composable], dict[str, Any]]:
    if bbox is None:
        return [], {}
    clause = sql.SQL("{} && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)").format(column)
    # && alone is an index-only box test; ST_Intersects keeps polygons whose box but not shape touches out.
    exact = sql.SQL("ST_Intersects({}, ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326))").format(column)
    params = {"west": bbox.west, "south": bbox.south, "east": bbox.east, "north": bbox.north}
    return [clause, exact], params


def tenant_clause(
    where: list[sql.Composable], params: dict[str, Any], column: sql.Composable, tenant_id: str | None
) -> None:
    if tenant_id is not None:
        where.append(sql.SQL("{} = %(tenant)s").format(column))
        params["tenant"] = tenant_id


def time_clause(where: list[sql.Composable], params: dict[str, Any], column: sql.Composable, q: FeatureQuery) -> None:
    if q.start is not None:
        where.append(sql.SQL("{} >= %(t_start)s").format(column))
        params["t_start"] = q.start
    if q.end is not None:
        where.append(sql.SQL("{} <= %(t_end)s").format(column))
        params["t_end"] = q.end


def page(
    conn: psycopg.Connection,
    select: sql.Composable,
    where: list[sql.Composable],
    order: sql.Composable,
    params: dict[str, Any],
    q: FeatureQuery,
    build: Callable[[Rows], list[Feature]],
) -> FeaturePage:
    query = sql.SQL("{} {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(
        select,
        sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
        order,
    )
    # One row more than asked: its presence says whether a next page exists, without counting every match.
    rows = conn.execute(query, {**params, "limit": q.limit + 1, "offset": q.offset}).fetchall()
    features = build(rows[: q.limit])
    return FeaturePage(features, more=len(rows) > q.limit)


def plain_features(rows: Rows) -> list[Feature]:
    return [Feature(r[0], orjson.loads(r[1]) if r[1] else None, r[2]) for r in rows]


def one_feature(
    conn: psycopg.Connection,
    select: str,
    alias: str,
    feature_id: str,
    tenant_id: str | None,
    convert: Callable[[Rows], list[Feature]],
) -> Feature | None:
    """One feature of a tenant-owned collection by id; None when missing or another tenant's."""
    where = f" WHERE {alias}.id = %(id)s AND (%(tenant)s::text IS NULL OR {alias}.tenant_id = %(tenant)s)"
    found = convert(conn.execute(select + where, {"id": feature_id, "tenant": tenant_id}).fetchall())
    return found[0] if found else None
