"""The coordinate reference systems the OGC API serves features in (OGC API – Features Part 2). Pure.

Geometries are stored in EPSG:4326 with longitude first (CRS84 order). A CRS here is named by its OGC URI; its
axis order is the one its EPSG definition gives (Part 2 requires it): EPSG:4326 and JGD2011 geographic (6668) are
latitude first, the JGD2011 plane rectangular zones (6669–6687) X = northing first, Web Mercator (3857) easting
first. Output whose first axis points north is flipped (ST_FlipCoordinates) after ST_Transform.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_PREFIX = "http://www.opengis.net/def/crs/EPSG/0/"

GEOGRAPHIC_SRIDS = frozenset({4326, 6668})  # degrees; the others are in metres

# The JGD2011 plane rectangular zones I–XIX (平面直角座標系); Aichi's forestry officers use zone VII, EPSG:6675.
JGD2011_ZONES = tuple(range(6669, 6688))


@dataclass(frozen=True)
class Crs:
    uri: str
    srid: int  # PostGIS SRID to ST_Transform to
    north_first: bool  # the first axis points north (lat/lon, or X = northing): flip after ST_Transform
    decimals: int  # output precision: 1e-7° (~1 cm) geographic; 3 (mm) for metres

    @property
    def geographic(self) -> bool:
        return self.srid in GEOGRAPHIC_SRIDS


def _epsg(code: int, *, north_first: bool, decimals: int) -> Crs:
    return Crs(f"{EPSG_PREFIX}{code}", code, north_first, decimals)


SUPPORTED: dict[str, Crs] = {
    c.uri: c
    for c in (
        Crs(CRS84, 4326, north_first=False, decimals=7),
        _epsg(4326, north_first=True, decimals=7),
        _epsg(6668, north_first=True, decimals=7),
        _epsg(3857, north_first=False, decimals=3),
        *(_epsg(code, north_first=True, decimals=3) for code in JGD2011_ZONES),
    )
}

STORAGE = SUPPORTED[CRS84]


class UnsupportedCrs(ValueError):
    """A ``crs`` or ``bbox-crs`` the API does not serve; its message names the supported URIs' pattern."""


def parse_crs(value: str | None, parameter: str = "crs") -> Crs:
    """The CRS a ``crs``/``bbox-crs`` parameter names (absent: CRS84). Also takes the ``[EPSG:6675]`` safe CURIE
    form some clients send."""
    if value is None or value == "":
        return STORAGE
    uri = value.strip()
    if uri.startswith("[EPSG:") and uri.endswith("]"):
        uri = EPSG_PREFIX + uri[6:-1]
    found = SUPPORTED.get(uri)
    if found is None:
        raise UnsupportedCrs(
            f"{parameter} {value!r} is not supported: use {CRS84} or {EPSG_PREFIX}<code> with code 4326, 6668, 3857"
            f" or {JGD2011_ZONES[0]}–{JGD2011_ZONES[-1]} (JGD2011 plane rectangular zones)"
        )
    return found


def crs_list() -> list[str]:
    """Every supported CRS URI, CRS84 first (the collections' ``crs`` and the global list)."""
    return list(SUPPORTED)


def bbox_to_storage_order(crs: Crs, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A bbox given in ``crs``'s own axis order as (min east, min north, max east, max north), ready for
    ST_MakeEnvelope(…, srid) then ST_Transform to 4326."""
    a1, b1, a2, b2 = bbox
    return (b1, a1, b2, a2) if crs.north_first else (a1, b1, a2, b2)


def geojson_sql(column: sql.Composable, crs: Crs) -> sql.Composable:
    """The GeoJSON text of a 4326 ``column`` in ``crs``: transformed, flipped to its axis order, at its precision.
    The SRID and precision come from SUPPORTED (never from the request), so they are written as literals."""
    geom: sql.Composable = column
    if crs.srid != STORAGE.srid:
        geom = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(crs.srid))
    if crs.north_first:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    return sql.SQL("ST_AsGeoJSON({}, {})::text").format(geom, sql.Literal(crs.decimals))


def envelope_sql(crs: Crs) -> sql.Composable:
    """A bbox-crs envelope in 4326, from %(west)s %(south)s %(east)s %(north)s in ``crs``'s east/north terms (see
    ``bbox_to_storage_order``). Densified by ST_Transform of the polygon, so a projected box keeps its corners."""
    box = sql.SQL("ST_MakeEnvelope(%(west)s, %(south)s, %(east)s, %(north)s, {})").format(sql.Literal(crs.srid))
    if crs.srid == STORAGE.srid:
        return box
    return sql.SQL("ST_Transform(ST_Segmentize({}, ST_Perimeter({}) / 64), 4326)").format(box, box)
