"""SQL of the geo package: stands, areas, spatial look-ups, tiles. Parameterised; tenant rules in the WHERE.

Devices and alerts are their owners' tables: their features, sensors in a stand and tile rows are asked of
devices/ and alerts/ (a stand's outline goes to them as EWKB), never read here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import shapely
from psycopg import sql
from psycopg.types.json import Jsonb
from shapely.geometry import MultiPolygon, Polygon

from geo.cql2 import columns_of, filter_clause
from geo.crs import STORAGE, Crs, geojson_sql
from geo.feature_sql import as_doubles, bbox_clause, feature_where, one_feature, page, plain_features, sort_order
from geo.features import COLLECTIONS, Feature, FeaturePage, FeatureQuery
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


# A stand's properties: every column but the geometry (attributes stay an object, not a JSON string inside the
# JSON). Not ``to_jsonb(s) - 'geom'``: to_jsonb writes the geometry too (PostGIS casts it to GeoJSON, at full
# precision) before it is dropped, which was ~3/4 of a 100-stand page's SQL time (25 of 31 ms on the benchmark's
# 100,000 stands; 7 ms without) and, on the cores the API shares with PostgreSQL, its tail against tipg.
STAND_PROPERTY_COLUMNS = (*(c.strip() for c in _STAND_COLUMNS.split(",")), "imported_at")
_STAND_PROPERTIES = "CROSS JOIN LATERAL (SELECT {}) p".format(", ".join(f"s.{c}" for c in STAND_PROPERTY_COLUMNS))
_STAND_FEATURE = f"SELECT s.stand_id, ST_AsGeoJSON(s.geom, 7)::text, to_jsonb(p) FROM stands s {_STAND_PROPERTIES}"


def _stand_select(crs: Crs) -> sql.Composable:
    """_STAND_FEATURE with the geometry in ``crs`` (OGC API Features Part 2)."""
    return sql.SQL("SELECT s.stand_id, {}, to_jsonb(p) FROM stands s {}").format(
        geojson_sql(sql.SQL("s.geom"), crs), sql.SQL(_STAND_PROPERTIES)
    )


_STAND_DOUBLES = COLLECTIONS["stands"].doubles()  # area_ha, volume_m3 …: written 548.0, never 548
_STAND_COLUMNS_CQL = columns_of(COLLECTIONS["stands"], "s")  # what a CQL2 filter may name: s.<property>
# Each sortable property is the stands column of its name (to_jsonb writes every column as itself).
_STAND_SORT_COLUMNS = {name: sql.Identifier("s", name) for name in COLLECTIONS["stands"].sortables}


def _stand_features(rows: Iterable[tuple[Any, ...]]) -> list[Feature]:
    return [Feature(r[0], orjson.loads(r[1]), as_doubles(r[2], _STAND_DOUBLES)) for r in rows]


def stand_features(conn: psycopg.Connection, q: FeatureQuery, attrs: StandFilter | None = None) -> FeaturePage:
    """A page of stands by bbox, equality filters on queryables and attribute filters."""
    attrs = attrs or StandFilter()
    where, params = bbox_clause(sql.SQL("s.geom"), q.bbox)
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
    filter_clause(where, params, q.filter, _STAND_COLUMNS_CQL, sql.SQL("s.geom"))
    order = sort_order(q.sortby, _STAND_SORT_COLUMNS, sql.SQL("s.stand_id"))
    return page(conn, _stand_select(q.crs), where, order, params, q, _stand_features, ("stands", "s"))


def stand_species(conn: psycopg.Connection) -> list[str]:
    """Every species value the register holds in 樹種1–3."""
    rows = conn.execute(
        "SELECT DISTINCT v FROM stands s, unnest(ARRAY[s.species_1, s.species_2, s.species_3]) v"
        " WHERE v IS NOT NULL AND v <> '' ORDER BY v"
    ).fetchall()
    return [r[0] for r in rows]


def stand_feature(conn: psycopg.Connection, stand_id: str, crs: Crs = STORAGE) -> Feature | None:
    rows = conn.execute(_stand_select(crs) + sql.SQL(" WHERE s.stand_id = %s"), (stand_id,)).fetchall()
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


def stands_intersecting(conn: psycopg.Connection, geometry: dict[str, object] | bytes, limit: int) -> list[Feature]:
    """Stands intersecting a geometry in EPSG:4326: GeoJSON (a drawn polygon) or EWKB (an alert's area, as its
    owner hands it over)."""
    shape = "ST_GeomFromEWKB(%s)" if isinstance(geometry, bytes) else "ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)"
    value = geometry if isinstance(geometry, bytes) else json.dumps(geometry)
    rows = conn.execute(
        _STAND_FEATURE + f" WHERE ST_Intersects(s.geom, {shape}) ORDER BY s.stand_id LIMIT %s", (value, limit)
    ).fetchall()
    return _stand_features(rows)


# --- a stand's outline, areas as features ---------------------------------------------------------------------


def stand_geometry(conn: psycopg.Connection, stand_id: str) -> bytes | None:
    """A stand's polygon as EWKB (EPSG:4326), for asking devices/ what lies inside it; None: no such stand."""
    row = conn.execute("SELECT ST_AsEWKB(geom) FROM stands WHERE stand_id = %s", (stand_id,), binary=True).fetchone()
    return bytes(row[0]) if row else None


_AREA_PROPERTIES = (
    "jsonb_build_object('kind', a.kind, 'name', a.name, 'tenant_id', a.tenant_id, 'updated_at', a.updated_at)"
    " || a.properties"
)


def _area_select(crs: Crs) -> sql.Composable:
    return sql.SQL("SELECT a.id, {}, {} FROM areas a").format(
        geojson_sql(sql.SQL("a.geom"), crs), sql.SQL(_AREA_PROPERTIES)
    )


# The sortables are the areas' own columns (not its open jsonb properties), each named as its property.
_AREA_SORT_COLUMNS = {name: sql.Identifier("a", name) for name in COLLECTIONS["areas"].sortables}


_AREA_COLUMNS_CQL = columns_of(COLLECTIONS["areas"], "a")


def area_features(conn: psycopg.Connection, q: FeatureQuery) -> FeaturePage:
    where, params = feature_where("a", "geom", sql.SQL("a.updated_at"), q)
    filter_clause(where, params, q.filter, _AREA_COLUMNS_CQL, sql.SQL("a.geom"))
    order = sort_order(q.sortby, _AREA_SORT_COLUMNS, sql.SQL("a.id"))
    return page(conn, _area_select(q.crs), where, order, params, q, plain_features, ("areas", "a"))


def area_feature(conn: psycopg.Connection, area_id: str, tenant_id: str | None, crs: Crs = STORAGE) -> Feature | None:
    return one_feature(conn, _area_select(crs), "a", area_id, tenant_id, plain_features)


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
# Devices' and alerts' rows are their owners' SQL (devices.queries.TILE_ROWS, alerts.features.TILE_ROWS), run here
# inside the same tile query: ``t`` is the tile's envelope, ``%(tenant)s`` the caller's tenant (None: every one).
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
}


_TILE_QUERY = (
    "WITH t AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS env,"
    "   ST_Transform(ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4326) AS env4326),"
    " mvt AS ({rows} LIMIT %(max)s),"
    " tile AS (SELECT coalesce(ST_AsMVT(mvt, %(layer)s, 4096, 'geom'), ''::bytea) AS body"
    "   FROM mvt WHERE geom IS NOT NULL)"
)


def tile(
    conn: psycopg.Connection,
    layer: str,
    rows: str,
    z: int,
    x: int,
    y: int,
    tenant_id: str | None,
    max_features: int,
) -> bytes:
    """One Mapbox Vector Tile of a layer whose ``rows`` (its owner's SQL) it holds; empty bytes when none."""
    row = conn.execute(
        _TILE_QUERY.format(rows=rows) + " SELECT body FROM tile",
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


def stand_summaries(conn: psycopg.Connection) -> list[tuple[int, str, int, float, float]]:
    """The forest register in aggregate, for open data: per compartment (林班) and first species, the number of
    stands, their area (ha) and volume (m³). Nothing of a single stand (its owner, its outline) is in it."""
    rows = conn.execute(
        "SELECT rinpan, coalesce(species_1, ''), count(*)::int, coalesce(sum(area_ha), 0)::float8,"
        " coalesce(sum(volume_m3), 0)::float8 FROM stands GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]
