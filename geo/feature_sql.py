"""How a feature collection's SQL is paged and filtered: the pieces every owner of a collection's table uses.

geo/ owns the shape of a feature page (bbox, tenant, datetime and equality filters, one row more than asked to
know whether another page follows); the SQL against each table stays with its owner (stands and areas here in
geo/queries.py, alerts in alerts/features.py), which passes its SELECT in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
import psycopg
from psycopg import sql

from geo.crs import envelope_sql
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
    # A bbox-crs box in metres becomes a densified 4326 polygon, evaluated once per query.
    box = envelope_sql(bbox.crs)
    # && alone is an index-only box test; ST_Intersects keeps polygons whose box but not shape touches out.
    clause = sql.SQL("{} && {}").format(column, box)
    exact = sql.SQL("ST_Intersects({}, {})").format(column, box)
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


def sort_order(
    sortby: Sequence[tuple[str, bool]], columns: Mapping[str, sql.Composable], default: sql.Composable
) -> sql.Composable:
    """An ORDER BY list: the requested keys (property, descending) as their owner's ``columns``, then the owner's
    ``default`` order, which must end in the id so that every order is total and pages are stable.

    Nulls sort as PostgreSQL's default does, as if above every value: last ascending, first descending. The keys
    are the collection's sortables, checked by the API; one without a column is a programming error.
    """
    keys: list[sql.Composable] = []
    for name, descending in sortby:
        if name not in columns:
            raise ValueError(f"no sort column for {name!r}")
        direction = sql.SQL("DESC NULLS FIRST") if descending else sql.SQL("ASC NULLS LAST")
        keys.append(sql.SQL("{} {}").format(columns[name], direction))
    return sql.SQL(", ").join([*keys, default])


def page(
    conn: psycopg.Connection,
    select: sql.Composable,
    where: list[sql.Composable],
    order: sql.Composable,
    params: dict[str, Any],
    q: FeatureQuery,
    build: Callable[[Rows], list[Feature]],
    table: tuple[str, str] | None = None,
) -> FeaturePage:
    """A page of ``select`` (whose FROM names the owner's table) under ``where`` in ``order``.

    ``table`` (name, alias): the page's rows are found first by their ``ctid`` alone, then only those are
    selected. PostgreSQL projects every row an OFFSET skips, so a deep page of GeoJSON (GDAL paging through
    100,000 stands) otherwise builds the GeoJSON of every stand before it: 3.5 s for a page at offset 99,000,
    against 0.2 s for the keys (bench.ogc_gdal)."""
    condition = sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    if table is None:
        query = sql.SQL("{} {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(select, condition, order)
    else:
        name, alias = table
        keys = sql.SQL("SELECT {}.ctid FROM {} {} {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(
            sql.Identifier(alias), sql.Identifier(name), sql.Identifier(alias), condition, order
        )
        query = sql.SQL("{} WHERE {}.ctid = ANY (ARRAY({})) ORDER BY {}").format(
            select, sql.Identifier(alias), keys, order
        )
    # One row more than asked: its presence says whether a next page exists, without counting every match.
    rows = conn.execute(query, {**params, "limit": q.limit + 1, "offset": q.offset}).fetchall()
    features = build(rows[: q.limit])
    matched = None
    if q.count:
        matched = matched_by_page(q, len(rows))
        if matched is None and q.offset == 0:
            # The page's own SELECT, counted: the planner drops its unused columns (no GeoJSON, no jsonb is
            # built), so this reads what the WHERE needs — for a bbox, the GiST index and the rows it finds.
            matched = count_matches(conn, sql.SQL("SELECT count(*) FROM ({} {}) m").format(select, condition), params)
    return FeaturePage(features, more=len(rows) > q.limit, matched=matched)


def matched_by_page(q: FeatureQuery, rows: int) -> int | None:
    """Every match, when a page of ``rows`` rows (one more than the limit asked for) already tells: the last page,
    not empty, ends the matches (its offset skipped exactly that many). None: it takes a count."""
    if 0 < rows <= q.limit or (rows == 0 and q.offset == 0):
        return q.offset + rows
    return None


# A count that would take longer is not made: the page goes without numberMatched (Part 1 lets it), rather than
# late. The stands' 100,000 take ~25 ms, ~150 ms within a bbox over all of them.
COUNT_TIMEOUT_MS = 1000


def count_matches(conn: psycopg.Connection, query: sql.Composable, params: dict[str, Any]) -> int | None:
    """A ``SELECT count(*) …``'s answer, or None when it runs over COUNT_TIMEOUT_MS (see ``within_count_budget``)."""

    def count() -> int:
        row = conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0

    return within_count_budget(conn, count)


def within_count_budget(conn: psycopg.Connection, count: Callable[[], int]) -> int | None:
    """Run ``count`` (statements on ``conn``) within COUNT_TIMEOUT_MS and without JIT; None when it runs over.

    PostGIS's cost of ST_Intersects makes a bbox over many rows look expensive enough for PostgreSQL to compile
    the count, which takes longer (~0.6 s) than counting. The settings last one transaction of its own, so only
    on an autocommit connection (the API's reads); inside a caller's transaction ``count`` runs as it is.
    """
    if not conn.autocommit:
        return count()
    try:
        with conn.transaction():
            conn.execute(
                "SELECT set_config('jit', 'off', true), set_config('statement_timeout', %s, true)",
                (str(COUNT_TIMEOUT_MS),),
            )
            return count()
    except psycopg.errors.QueryCanceled:
        return None


def as_doubles(properties: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Whole doubles back to floats, in place: jsonb writes a double precision 548 as ``548``, which GeoJSON
    readers (GDAL, from a first page) then type as an integer; orjson writes the float as ``548.0``."""
    for name in names:
        if type(properties.get(name)) is int:  # not a bool
            properties[name] = float(properties[name])
    return properties


def plain_features(rows: Rows, doubles: tuple[str, ...] = ()) -> list[Feature]:
    return [Feature(r[0], orjson.loads(r[1]) if r[1] else None, as_doubles(r[2], doubles)) for r in rows]


def one_feature(
    conn: psycopg.Connection,
    select: sql.Composable,
    alias: str,
    feature_id: str,
    tenant_id: str | None,
    convert: Callable[[Rows], list[Feature]],
) -> Feature | None:
    """One feature of a tenant-owned collection by id; None when missing or another tenant's."""
    where = sql.SQL(" WHERE {} = %(id)s AND (%(tenant)s::text IS NULL OR {} = %(tenant)s)").format(
        sql.Identifier(alias, "id"), sql.Identifier(alias, "tenant_id")
    )
    found = convert(conn.execute(select + where, {"id": feature_id, "tenant": tenant_id}).fetchall())
    return found[0] if found else None
