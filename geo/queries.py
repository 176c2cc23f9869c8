"""SQL of the geo package: stands, spatial look-ups, feature pages. Parameterised; tenant rules in the WHERE."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
import shapely
from psycopg import sql
from psycopg.types.json import Jsonb
from shapely.geometry import MultiPolygon, Polygon

from geo.features import Feature, FeaturePage, FeatureQuery
from geo.geometry import BBox
from geo.stand_model import Stand

_STAND_COLUMNS = (
    "stand_id, rinpan, rinpan_branch, shohan, shohan_branch, species_1, species_2, species_3,"
    " age_1, age_2, age_3, age_reference_year, age_class, area_ha, volume_m3, forest_type, ownership,"
    " protection_forest, site_index, density, height_m, slope_deg, elevation_m, attributes, source_file, source_crs"
)


def upsert_stands(
    conn: psycopg.Connection,
    stands: Iterable[Stand],
    *,
    source_file: str,
    source_crs: str,
) -> int:
    """Insert or replace stands by stand id (COPY into a scratch table, then one upsert). Returns rows written."""
    # One transaction: the scratch table empties itself at commit (also on an autocommit connection).
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS stands_incoming (LIKE stands INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy(f"COPY stands_incoming ({_STAND_COLUMNS}, geom) FROM STDIN") as copy:
            for s in stands:
                copy.write_row(
                    (
                        s.stand_id,
                        s.rinpan,
                        s.rinpan_branch,
                        s.shohan,
                        s.shohan_branch,
                        s.species_1,
                        s.species_2,
                        s.species_3,
                        s.age_1,
                        s.age_2,
                        s.age_3,
                        s.age_reference_year,
                        s.age_class,
                        s.area_ha,
                        s.volume_m3,
                        s.forest_type,
                        s.ownership,
                        list(s.protection_forest),
                        s.site_index,
                        s.density,
                        s.height_m,
                        s.slope_deg,
                        s.elevation_m,
                        Jsonb(s.attributes),
                        source_file,
                        source_crs,
                        shapely.to_wkb(shapely.set_srid(_multi(s.geom), 4326), hex=True, include_srid=True),
                    )
                )
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _STAND_COLUMNS.split(",")[1:])
        cur = conn.execute(
            f"INSERT INTO stands ({_STAND_COLUMNS}, geom) SELECT {_STAND_COLUMNS}, geom FROM stands_incoming"
            f" ON CONFLICT (stand_id) DO UPDATE SET {updates}, geom = excluded.geom, imported_at = now()"
        )
        conn.execute("TRUNCATE stands_incoming")
        return cur.rowcount


def _multi(geom: shapely.Geometry) -> shapely.Geometry:
    # The column holds MultiPolygons; a lone Polygon (from a caller other than the importer) is wrapped.
    return MultiPolygon([geom]) if isinstance(geom, Polygon) else geom


def count_stands(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM stands").fetchone()
    return int(row[0]) if row else 0


# --- stands as features ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandFilter:
    """Attribute filters for stands; every given one must hold."""

    species: str | None = None  # any of 樹種1..3
    age_min: int | None = None
    age_max: int | None = None
    as_of_year: int | None = None  # ages are moved from their reference year to this one
    ownership: str | None = None
    protection: str | None = None  # a designation, or '*' for any protection forest
    forest_type: str | None = None


# attributes stay an object (they were cast to text, so clients got a JSON string inside the JSON).
_STAND_FEATURE = "SELECT s.stand_id, ST_AsGeoJSON(s.geom, 7)::text, to_jsonb(s) - 'geom' FROM stands s"


def _stand_features(rows: Iterable[tuple[Any, ...]]) -> list[Feature]:
    return [Feature(r[0], orjson.loads(r[1]), r[2]) for r in rows]


def stand_features(conn: psycopg.Connection, q: FeatureQuery, attrs: StandFilter | None = None) -> FeaturePage:
    """A page of stands by bbox, equality filters on queryables and attribute filters."""
    attrs = attrs or StandFilter()
    where, params = _bbox_clause(sql.SQL("s.geom"), q.bbox)
    for name, value in q.filters.items():
        column = sql.Identifier("s", name)
        if name in ("rinpan", "age_class"):
            where.append(sql.SQL("{} = {}::int").format(column, sql.Placeholder(f"f_{name}")))
        else:
            where.append(sql.SQL("{} = {}").format(column, sql.Placeholder(f"f_{name}")))
        params[f"f_{name}"] = value
    if attrs.species is not None:
        where.append(sql.SQL("%(species)s IN (s.species_1, s.species_2, s.species_3)"))
        params["species"] = attrs.species
    if attrs.age_min is not None or attrs.age_max is not None:
        age = sql.SQL("(s.age_1 + coalesce(%(year)s::int - s.age_reference_year, 0))")
        params["year"] = attrs.as_of_year
        if attrs.age_min is not None:
            where.append(sql.SQL("{} >= %(age_min)s").format(age))
            params["age_min"] = attrs.age_min
        if attrs.age_max is not None:
            where.append(sql.SQL("{} <= %(age_max)s").format(age))
            params["age_max"] = attrs.age_max
    if attrs.ownership is not None:
        where.append(sql.SQL("s.ownership = %(ownership)s"))
        params["ownership"] = attrs.ownership
    if attrs.protection == "*":
        where.append(sql.SQL("cardinality(s.protection_forest) > 0"))
    elif attrs.protection is not None:
        where.append(sql.SQL("%(protection)s = ANY (s.protection_forest)"))
        params["protection"] = attrs.protection
    if attrs.forest_type is not None:
        where.append(sql.SQL("s.forest_type = %(forest_type)s"))
        params["forest_type"] = attrs.forest_type
    return _page(conn, sql.SQL(_STAND_FEATURE), where, sql.SQL("s.stand_id"), params, q, _stand_features)


def stand_species(conn: psycopg.Connection) -> list[str]:
    """Every species value the register holds in 樹種1–3."""
    rows = conn.execute(
        "SELECT DISTINCT v FROM stands s, unnest(ARRAY[s.species_1, s.species_2, s.species_3]) v"
        " WHERE v IS NOT NULL AND v <> '' ORDER BY v"
    ).fetchall()
    return [r[0] for r in rows]


def stand_feature(conn: psycopg.Connection, stand_id: str) -> Feature | None:
    rows = conn.execute(_STAND_FEATURE + " WHERE s.stand_id = %s", (stand_id,)).fetchall()
    found = _stand_features(rows)
    return found[0] if found else None


def stand_at(conn: psycopg.Connection, lon: float, lat: float) -> Feature | None:
    """The stand covering a point; where overlapping polygons (a register's error) both cover it, the smaller."""
    rows = conn.execute(
        _STAND_FEATURE + " WHERE ST_Intersects(s.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))"
        " ORDER BY ST_Area(s.geom), s.stand_id LIMIT 1",
        (lon, lat),
    ).fetchall()
    found = _stand_features(rows)
    return found[0] if found else None


def stands_in_area(conn: psycopg.Connection, area_id: str, tenant_id: str | None, limit: int) -> list[Feature] | None:
    """Stands intersecting a configured area; None when the area does not exist or is not the caller's."""
    area = conn.execute(
        "SELECT 1 FROM areas WHERE id = %s AND (%s::text IS NULL OR tenant_id = %s)", (area_id, tenant_id, tenant_id)
    ).fetchone()
    if area is None:
        return None
    rows = conn.execute(
        _STAND_FEATURE + " JOIN areas a ON ST_Intersects(s.geom, a.geom) WHERE a.id = %s ORDER BY s.stand_id LIMIT %s",
        (area_id, limit),
    ).fetchall()
    return _stand_features(rows)


def stands_intersecting(conn: psycopg.Connection, geometry: dict[str, object], limit: int) -> list[Feature]:
    """Stands intersecting a GeoJSON geometry in EPSG:4326 (an alert's area, a drawn polygon)."""
    rows = conn.execute(
        _STAND_FEATURE + " WHERE ST_Intersects(s.geom, ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326))"
        " ORDER BY s.stand_id LIMIT %s",
        (json.dumps(geometry), limit),
    ).fetchall()
    return _stand_features(rows)


# --- sensors in a stand ---------------------------------------------------------------------------------------

_LATEST = (
    "(SELECT jsonb_object_agg(lr.metric, jsonb_build_object('value', lr.value, 'time', lr.time))"
    " FROM latest_readings lr WHERE lr.device_id = d.id)"
)


def sensors_in_stand(conn: psycopg.Connection, stand_id: str, tenant_id: str | None) -> list[dict[str, Any]] | None:
    """Devices located inside a stand with their latest readings; None when there is no such stand."""
    if conn.execute("SELECT 1 FROM stands WHERE stand_id = %s", (stand_id,)).fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT d.id, d.name, d.device_type, d.status, ST_X(d.location), ST_Y(d.location),"
        f" coalesce({_LATEST}, '{{}}'::jsonb)"
        " FROM stands s JOIN devices d ON ST_Intersects(d.location, s.geom)"
        " WHERE s.stand_id = %(stand)s AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)"
        " ORDER BY d.id",
        {"stand": stand_id, "tenant": tenant_id},
    ).fetchall()
    return [
        {"id": r[0], "name": r[1], "device_type": r[2], "status": r[3], "lon": r[4], "lat": r[5], "latest": r[6]}
        for r in rows
    ]


def stand_summary(
    conn: psycopg.Connection, stand_id: str, tenant_id: str | None, start: datetime, end: datetime
) -> list[dict[str, Any]] | None:
    """Per metric, over the sensors inside a stand and [start, end): sensors, count, mean, min, max, last."""
    if conn.execute("SELECT 1 FROM stands WHERE stand_id = %s", (stand_id,)).fetchone() is None:
        return None
    rows = conn.execute(
        "WITH inside AS ("
        "  SELECT d.id FROM stands s JOIN devices d ON ST_Intersects(d.location, s.geom)"
        "  WHERE s.stand_id = %(stand)s AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s))"
        " SELECT r.metric, count(DISTINCT r.device_id), count(*), avg(r.value), min(r.value), max(r.value),"
        "  (array_agg(r.value ORDER BY r.time DESC))[1], max(r.time)"
        " FROM readings r JOIN inside ON r.device_id = inside.id"
        " WHERE r.time >= %(start)s AND r.time < %(end)s"
        " GROUP BY r.metric ORDER BY r.metric",
        {"stand": stand_id, "tenant": tenant_id, "start": start, "end": end},
    ).fetchall()
    return [
        {
            "metric": r[0],
            "sensors": r[1],
            "count": r[2],
            "avg": r[3],
            "min": r[4],
            "max": r[5],
            "last": r[6],
            "last_time": r[7],
        }
        for r in rows
    ]


# --- devices and areas as features ----------------------------------------------------------------------------

_DEVICE_FEATURE = (
    "SELECT d.id, ST_AsGeoJSON(d.location, 7)::text,"
    " jsonb_build_object('name', d.name, 'tenant_id', d.tenant_id, 'device_type', d.device_type,"
    "   'status', d.status, 'last_seen', l.last_seen, 'last_reading', l.last_reading, 'online', l.online)"
    f" || coalesce({_LATEST}, '{{}}'::jsonb)"
    " FROM devices d LEFT JOIN device_liveness l ON l.device_id = d.id"
)


def _device_features(rows: Iterable[tuple[Any, ...]]) -> list[Feature]:
    out = []
    for device_id, geometry, props in rows:
        flat: dict[str, object] = {}
        for key, value in props.items():
            # Latest readings become one property per metric (and its time): flat columns for QGIS and GDAL.
            if isinstance(value, dict) and "value" in value:
                flat[key] = value["value"]
                flat[f"{key}_time"] = value["time"]
            else:
                flat[key] = value
        out.append(Feature(device_id, orjson.loads(geometry) if geometry else None, flat))
    return out


def device_features(conn: psycopg.Connection, q: FeatureQuery) -> FeaturePage:
    where, params = _feature_where("d", "location", sql.SQL("l.last_reading"), q)
    return _page(conn, sql.SQL(_DEVICE_FEATURE), where, sql.SQL("d.id"), params, q, _device_features)


def device_feature(conn: psycopg.Connection, device_id: str, tenant_id: str | None) -> Feature | None:
    return _one_feature(conn, _DEVICE_FEATURE, "d", device_id, tenant_id, _device_features)


_AREA_FEATURE = (
    "SELECT a.id, ST_AsGeoJSON(a.geom, 7)::text,"
    " jsonb_build_object('kind', a.kind, 'name', a.name, 'tenant_id', a.tenant_id, 'updated_at', a.updated_at)"
    " || a.properties FROM areas a"
)


def _plain_features(rows: Iterable[tuple[Any, ...]]) -> list[Feature]:
    return [Feature(r[0], orjson.loads(r[1]) if r[1] else None, r[2]) for r in rows]


def area_features(conn: psycopg.Connection, q: FeatureQuery) -> FeaturePage:
    where, params = _feature_where("a", "geom", sql.SQL("a.updated_at"), q)
    return _page(conn, sql.SQL(_AREA_FEATURE), where, sql.SQL("a.id"), params, q, _plain_features)


def area_feature(conn: psycopg.Connection, area_id: str, tenant_id: str | None) -> Feature | None:
    return _one_feature(conn, _AREA_FEATURE, "a", area_id, tenant_id, _plain_features)


def _one_feature(
    conn: psycopg.Connection,
    select: str,
    alias: str,
    feature_id: str,
    tenant_id: str | None,
    convert: Callable[[Iterable[tuple[Any, ...]]], list[Feature]],
) -> Feature | None:
    """One feature of a tenant-owned collection by id; None when missing or another tenant's."""
    where = f" WHERE {alias}.id = %(id)s AND (%(tenant)s::text IS NULL OR {alias}.tenant_id = %(tenant)s)"
    found = convert(conn.execute(select + where, {"id": feature_id, "tenant": tenant_id}).fetchall())
    return found[0] if found else None


def upsert_area(
    conn: psycopg.Connection,
    *,
    area_id: str,
    kind: str,
    name: str,
    geometry: shapely.Geometry,
    tenant_id: str | None = None,
    properties: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO areas (id, kind, name, tenant_id, properties, geom)"
        " VALUES (%s, %s, %s, %s, %s, ST_GeomFromEWKB(%s))"
        " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, name = excluded.name, tenant_id = excluded.tenant_id,"
        " properties = excluded.properties, geom = excluded.geom, updated_at = now()",
        (
            area_id,
            kind,
            name,
            tenant_id,
            Jsonb(properties or {}),
            shapely.to_wkb(shapely.set_srid(geometry, 4326), include_srid=True),
        ),
    )


# --- shared pieces --------------------------------------------------------------------------------------------


def _feature_where(
    alias: str, geometry: str, time_column: sql.Composable, q: FeatureQuery
) -> tuple[list[sql.Composable], dict[str, Any]]:
    """Bbox, tenant, datetime and equality filters of a tenant-owned collection aliased ``alias``."""
    where, params = _bbox_clause(sql.Identifier(alias, geometry), q.bbox)
    _tenant_clause(where, params, sql.Identifier(alias, "tenant_id"), q.tenant_id)
    _time_clause(where, params, time_column, q)
    for name, value in q.filters.items():
        where.append(sql.SQL("{} = {}").format(sql.Identifier(alias, name), sql.Placeholder(f"f_{name}")))
        params[f"f_{name}"] = value
    return where, params


def _bbox_clause(column: sql.Composable, bbox: BBox | None) -> tuple[list[sql.Composable], dict[str, Any]]:
    if bbox is None:
        return [], {}
    clause = sql.SQL("{} && ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326)").format(column)
    # && alone is an index-only box test; ST_Intersects keeps polygons whose box but not shape touches out.
    exact = sql.SQL("ST_Intersects({}, ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, 4326))").format(column)
    params = {"west": bbox.west, "south": bbox.south, "east": bbox.east, "north": bbox.north}
    return [clause, exact], params


def _tenant_clause(
    where: list[sql.Composable], params: dict[str, Any], column: sql.Composable, tenant_id: str | None
) -> None:
    if tenant_id is not None:
        where.append(sql.SQL("{} = %(tenant)s").format(column))
        params["tenant"] = tenant_id


def _time_clause(where: list[sql.Composable], params: dict[str, Any], column: sql.Composable, q: FeatureQuery) -> None:
    if q.start is not None:
        where.append(sql.SQL("{} >= %(t_start)s").format(column))
        params["t_start"] = q.start
    if q.end is not None:
        where.append(sql.SQL("{} <= %(t_end)s").format(column))
        params["t_end"] = q.end


def _page(
    conn: psycopg.Connection,
    select: sql.Composable,
    where: list[sql.Composable],
    order: sql.Composable,
    params: dict[str, Any],
    q: FeatureQuery,
    build: Callable[[Iterable[tuple[Any, ...]]], list[Feature]],
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


# --- time series ----------------------------------------------------------------------------------------------

_RAW_AGG = {
    "avg": "avg(r.value)",
    "min": "min(r.value)",
    "max": "max(r.value)",
    "sum": "sum(r.value)",
    "count": "count(*)::float8",
    "last": "(array_agg(r.value ORDER BY r.time DESC))[1]",
}
# Rolling continuous-aggregate rows up into wider buckets: exact for every aggregate (avg via sum and count).
_ROLLUP_AGG = {
    "avg": "sum(r.sum) / sum(r.count)",
    "min": "min(r.min)",
    "max": "max(r.max)",
    "sum": "sum(r.sum)",
    "count": "sum(r.count)::float8",
    "last": "(array_agg(r.last ORDER BY r.bucket DESC))[1]",
}
_DEVICE_IS_VISIBLE = "id = %(device)s AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)"
_VISIBLE_DEVICE = f"SELECT 1 FROM devices WHERE {_DEVICE_IS_VISIBLE}"


def _metric_filter(metric: str | None) -> sql.Composable:
    # Two statements rather than "(%(metric)s IS NULL OR r.metric = %(metric)s)": once prepared, that form's
    # generic plan cannot put the metric into the index condition and reads every metric of the device.
    return sql.SQL("r.metric = %(metric)s") if metric is not None else sql.SQL("TRUE")


def _visible_series(
    conn: psycopg.Connection, query: sql.Composable, params: dict[str, Any]
) -> list[tuple[datetime, str, float]] | None:
    """Run a series ``query``, and in the same round trip learn whether the caller may see the device at all.

    A marker row (metric NULL, sorted first) stands for "visible"; the series follows it. No rows: not visible
    (``query`` must check visibility itself too, so a hidden device's rows never come without the marker).
    """
    rows = conn.execute(
        sql.SQL(
            "SELECT * FROM (SELECT NULL::timestamptz AS t, NULL::text AS metric, NULL::float8 AS v"
            f" FROM devices WHERE {_DEVICE_IS_VISIBLE} UNION ALL ({{}})) s ORDER BY metric NULLS FIRST, t"
        ).format(query),
        params,
        binary=True,  # times and values as they are stored: no text to parse per point
    ).fetchall()
    return rows[1:] if rows else None


def raw_series(
    conn: psycopg.Connection,
    device_id: str,
    tenant_id: str | None,
    metric: str | None,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[tuple[datetime, str, float]] | None:
    """Stored readings in [start, end), at most ``limit`` rows (time, metric, value); None for a device the
    caller may not see."""
    query = sql.SQL(
        "SELECT r.time, r.metric, r.value FROM readings r"
        f" WHERE r.device_id = %(device)s AND EXISTS ({_VISIBLE_DEVICE})"
        " AND {metric} AND r.time >= %(start)s AND r.time < %(end)s ORDER BY r.metric, r.time LIMIT %(limit)s"
    ).format(metric=_metric_filter(metric))
    params = {"device": device_id, "tenant": tenant_id, "metric": metric, "start": start, "end": end, "limit": limit}
    return _visible_series(conn, query, params)


# From when on a continuous aggregate may lack readings of a time range: the earliest write since its last refresh
# there (TimescaleDB's invalidation logs) below its watermark (above it, real-time aggregation reads raw rows anyway).
# Catalog tables of TimescaleDB's own, checked against 2.28.3: where they cannot be read, nothing is trusted.
_AGGREGATE_STALE_FROM = """
SELECT min(greatest(x.lowest, _timescaledb_functions.to_unix_microseconds(%(start)s)))
FROM _timescaledb_catalog.continuous_agg ca
CROSS JOIN LATERAL (SELECT least(_timescaledb_functions.to_unix_microseconds(%(end)s),
                                 _timescaledb_functions.cagg_watermark(ca.mat_hypertable_id)) AS upto) w
CROSS JOIN LATERAL (
    SELECT m.lowest_modified_value AS lowest, m.greatest_modified_value AS greatest
    FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log m
    WHERE m.materialization_id = ca.mat_hypertable_id
    UNION ALL
    SELECT h.lowest_modified_value, h.greatest_modified_value
    FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log h
    WHERE h.hypertable_id = ca.raw_hypertable_id
) x
CROSS JOIN LATERAL (  -- before the oldest chunk there are no raw rows to miss (TimescaleDB clamps its refreshes
                    -- to the data, and logs dropped chunks as invalidations): the aggregate is all there is
    SELECT coalesce(_timescaledb_functions.to_unix_microseconds(min(c.range_start)), 0) AS oldest
    FROM timescaledb_information.chunks c
    WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = 'readings'
) d
WHERE ca.user_view_schema = current_schema() AND ca.user_view_name = %(view)s
  AND x.lowest < w.upto AND x.greatest >= _timescaledb_functions.to_unix_microseconds(%(start)s)
  AND x.greatest >= d.oldest
"""


def aggregate_stale_from(conn: psycopg.Connection, view: str, start: datetime, end: datetime) -> datetime | None:
    """The earliest time in [start, end) from which ``view`` may not yet hold every reading; None when it does."""
    try:
        with conn.transaction():
            row = conn.execute(_AGGREGATE_STALE_FROM, {"view": view, "start": start, "end": end}).fetchone()
            known = conn.execute(
                "SELECT 1 FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = %s", (view,)
            ).fetchone()
    except psycopg.Error:
        return start
    if known is None:
        return start
    if row is None or row[0] is None:
        return None
    return datetime.fromtimestamp(row[0] / 1_000_000, tz=start.tzinfo)


def bucketed_series(
    conn: psycopg.Connection,
    device_id: str,
    tenant_id: str | None,
    metric: str | None,
    start: datetime,
    end: datetime,
    width: timedelta,
    agg: str,
    origin: datetime,
    source: str | None,
    limit: int,
) -> list[tuple[datetime, str, float]] | None:
    """One value per bucket and metric: from readings with date_bin, or rolled up from a continuous aggregate;
    None for a device the caller may not see.

    ``source`` names the continuous aggregate (TimescaleDB) or is None (plain readings). [start, end) must already
    be whole buckets, so both ways see exactly the same readings.
    """
    params = {
        "device": device_id,
        "tenant": tenant_id,
        "metric": metric,
        "start": start,
        "end": end,
        "width": width,
        "origin": origin,
        "limit": limit,
    }
    if source is None:
        query = sql.SQL(
            "SELECT date_bin(%(width)s, r.time, %(origin)s) AS b, r.metric, {agg} FROM readings r"
            " WHERE r.device_id = %(device)s AND EXISTS (" + _VISIBLE_DEVICE + ")"
            " AND {metric} AND r.time >= %(start)s AND r.time < %(end)s"
            " GROUP BY b, r.metric ORDER BY r.metric, b LIMIT %(limit)s"
        ).format(agg=sql.SQL(_RAW_AGG[agg]), metric=_metric_filter(metric))
    else:
        if source not in ("readings_10m", "readings_1h", "readings_1d"):
            raise ValueError(f"not a continuous aggregate: {source}")
        query = sql.SQL(
            "SELECT date_bin(%(width)s, r.bucket, %(origin)s) AS b, r.metric, {agg} FROM {view} r"
            " WHERE r.device_id = %(device)s AND EXISTS (" + _VISIBLE_DEVICE + ")"
            " AND {metric} AND r.bucket >= %(start)s AND r.bucket < %(end)s"
            " GROUP BY b, r.metric ORDER BY r.metric, b LIMIT %(limit)s"
        ).format(agg=sql.SQL(_ROLLUP_AGG[agg]), view=sql.Identifier(source), metric=_metric_filter(metric))
    return _visible_series(conn, query, params)


# --- alerts as features (the alerts engineer's table, migration 0020; read only here) --------------------------

_ALERT_FEATURE = (
    "SELECT a.id::text, ST_AsGeoJSON(coalesce(a.area, a.location), 7)::text,"
    " jsonb_build_object('rule_id', a.rule_id, 'subject', a.subject, 'hazard', a.hazard, 'title_en', a.title_en,"
    "   'title_ja', a.title_ja, 'device_id', a.device_id, 'tenant_id', a.tenant_id, 'state', a.state,"
    "   'level', a.level, 'peak_level', a.peak_level, 'value', a.value, 'opened_at', a.opened_at,"
    "   'updated_at', a.updated_at, 'resolved_at', a.resolved_at, 'closed_at', a.closed_at)"
    " FROM alerts a"
)


def alerts_table_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass('alerts') IS NOT NULL").fetchone()
    return bool(row and row[0])


def alert_features(conn: psycopg.Connection, q: FeatureQuery) -> FeaturePage:
    """Active alerts; with a time interval, every alert whose lifetime overlaps it (the history)."""
    where, params = _bbox_clause(sql.SQL("coalesce(a.area, a.location)"), q.bbox)
    _tenant_clause(where, params, sql.SQL("a.tenant_id"), q.tenant_id)
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
    return _page(
        conn, sql.SQL(_ALERT_FEATURE), where, sql.SQL("a.opened_at DESC, a.id DESC"), params, q, _plain_features
    )


def alert_feature(conn: psycopg.Connection, alert_id: str, tenant_id: str | None) -> Feature | None:
    if not alert_id.isdigit():
        return None
    rows = conn.execute(
        _ALERT_FEATURE + " WHERE a.id = %(id)s AND (%(tenant)s::text IS NULL OR a.tenant_id = %(tenant)s)",
        {"id": int(alert_id), "tenant": tenant_id},
    ).fetchall()
    found = _plain_features(rows)
    return found[0] if found else None


def stands_for_alert(
    conn: psycopg.Connection, alert_id: int, tenant_id: str | None, limit: int
) -> list[Feature] | None:
    """Stands intersecting an alert's area (or containing its location); None when the alert is not visible."""
    seen = conn.execute(
        "SELECT 1 FROM alerts WHERE id = %(id)s AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)",
        {"id": alert_id, "tenant": tenant_id},
    ).fetchone()
    if seen is None:
        return None
    rows = conn.execute(
        _STAND_FEATURE + " JOIN alerts a ON ST_Intersects(s.geom, coalesce(a.area, a.location))"
        " WHERE a.id = %s ORDER BY s.stand_id LIMIT %s",
        (alert_id, limit),
    ).fetchall()
    return _stand_features(rows)


def layer_extent(conn: psycopg.Connection, table: str, column: str) -> tuple[float, float, float, float] | None:
    """The planner's estimate of a layer's extent (cheap; refreshed by ANALYZE), or None when unknown."""
    if (table, column) not in {("stands", "geom"), ("devices", "location"), ("areas", "geom"), ("alerts", "location")}:
        raise ValueError(f"no such layer column: {table}.{column}")
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ST_EstimatedExtent(%s, %s) e",
                (table, column),
            ).fetchone()
    except psycopg.Error:
        return None  # no statistics yet
    if row is None or row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


# --- vector tiles ---------------------------------------------------------------------------------------------

# Each layer: its rows in the tile (geometry in EPSG:3857 clipped to the tile) with the attributes TileJSON lists.
_TILE_ROWS = {
    "stands": (
        "SELECT ST_AsMVTGeom(ST_Transform(s.geom, 3857), t.env, 4096, 64, true) AS geom, s.stand_id,"
        " s.species_1, s.age_1, s.age_class, s.area_ha, s.ownership, s.forest_type,"
        " cardinality(s.protection_forest) > 0 AS protected"
        " FROM stands s, t WHERE s.geom && t.env4326"
    ),
    # Zoomed out: compartments (stand_compartments, migration 0035, already in EPSG:3857 and simplified).
    "compartments": (
        "SELECT ST_AsMVTGeom(c.geom, t.env, 4096, 64, true) AS geom,"
        " c.rinpan::text || CASE WHEN c.rinpan_branch > 0 THEN '.' || c.rinpan_branch ELSE '' END AS compartment,"
        " c.stands, c.area_ha, c.species_1, c.protected"
        " FROM stand_compartments c, t WHERE c.geom && t.env"
    ),
    "devices": (
        "SELECT ST_AsMVTGeom(ST_Transform(d.location, 3857), t.env, 4096, 64, true) AS geom, d.id, d.name,"
        " d.device_type, d.status, l.online"
        " FROM devices d LEFT JOIN device_liveness l ON l.device_id = d.id, t"
        " WHERE d.location && t.env4326 AND (%(tenant)s::text IS NULL OR d.tenant_id = %(tenant)s)"
    ),
    "alerts": (
        "SELECT ST_AsMVTGeom(ST_Transform(coalesce(a.area, a.location), 3857), t.env, 4096, 64, true) AS geom,"
        " a.id, a.hazard, a.level, a.state, a.title_en"
        " FROM alerts a, t WHERE coalesce(a.area, a.location) && t.env4326"
        " AND a.state IN ('open', 'acknowledged') AND (%(tenant)s::text IS NULL OR a.tenant_id = %(tenant)s)"
    ),
}


_TILE_QUERY = (
    "WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env,"
    "   ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326) AS env4326),"
    " mvt AS ({rows} LIMIT %(max)s),"
    " tile AS (SELECT coalesce(ST_AsMVT(mvt, %(layer)s, 4096, 'geom'), ''::bytea) AS body"
    "   FROM mvt WHERE geom IS NOT NULL)"
)


def tile(
    conn: psycopg.Connection, layer: str, z: int, x: int, y: int, tenant_id: str | None, max_features: int
) -> bytes:
    """One Mapbox Vector Tile of a layer; empty bytes when nothing is in it."""
    row = conn.execute(
        _TILE_QUERY.format(rows=_TILE_ROWS[layer]) + " SELECT body FROM tile",
        {"z": z, "x": x, "y": y, "tenant": tenant_id, "max": max_features, "layer": layer},
        binary=True,
    ).fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""


def stand_tile(
    conn: psycopg.Connection, z: int, x: int, y: int, *, source: str, max_features: int, cache: bool
) -> bytes:
    """A stand tile (the same for every caller who may see stands), from the tile cache when it holds one.

    ``source`` is "stands" or "compartments" (geo.tiles.stand_tile_source). A rendered tile is stored under the
    stands' version read in the same snapshot as the stands themselves, so a tile rendered while an import
    commits is stored under the old version and never served after it.
    """
    if source not in ("stands", "compartments"):
        raise ValueError(f"not a stand tile source: {source}")
    params = {"z": z, "x": x, "y": y, "tenant": None, "max": max_features, "layer": "stands"}
    if not cache:
        sql_text = _TILE_QUERY.format(rows=_TILE_ROWS[source]) + " SELECT body FROM tile"
        row = conn.execute(sql_text, params, binary=True).fetchone()
        return bytes(row[0]) if row else b""
    hit = conn.execute(
        "SELECT c.body FROM tile_cache c JOIN tile_layer_versions v ON v.layer = c.layer AND v.version = c.version"
        " WHERE c.layer = 'stands' AND c.z = %(z)s AND c.x = %(x)s AND c.y = %(y)s",
        params,
        binary=True,  # the tile's bytes as they are, not hex text twice their size to decode
    ).fetchone()
    if hit is not None:
        return bytes(hit[0])
    row = conn.execute(
        _TILE_QUERY.format(rows=_TILE_ROWS[source])
        + ", stored AS (INSERT INTO tile_cache (layer, version, z, x, y, body)"
        "   SELECT 'stands', v.version, %(z)s, %(x)s, %(y)s, tile.body"
        "   FROM tile, tile_layer_versions v WHERE v.layer = 'stands' ON CONFLICT DO NOTHING)"
        " SELECT body FROM tile",
        params,
        binary=True,
    ).fetchone()
    return bytes(row[0]) if row else b""
