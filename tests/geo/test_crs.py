"""geo/crs.py: the supported CRSs, their axis order (checked against the EPSG definitions pyproj carries) and the
SQL that serves a 4326 geometry in them (checked against PostGIS and pyproj)."""

from __future__ import annotations

import orjson
import psycopg
import pytest
from psycopg import sql
from pyproj import CRS, Transformer

from geo.crs import (
    CRS84,
    EPSG_PREFIX,
    SUPPORTED,
    UnsupportedCrs,
    bbox_to_storage_order,
    crs_list,
    envelope_sql,
    geojson_sql,
    parse_crs,
)

# A point of a stand in Aichi (Shitara), lon/lat.
LON, LAT = 137.5634, 35.0921


def test_supported_list_has_crs84_first_and_every_jgd2011_zone() -> None:
    uris = crs_list()
    assert uris[0] == CRS84
    assert {f"{EPSG_PREFIX}{c}" for c in (4326, 6668, 3857, *range(6669, 6688))} <= set(uris)
    assert len(uris) == 1 + 3 + 19


@pytest.mark.parametrize("uri", [u for u in SUPPORTED if u != CRS84])
def test_axis_order_is_the_epsg_definitions(uri: str) -> None:
    code = int(uri.removeprefix(EPSG_PREFIX))
    assert SUPPORTED[uri].north_first == (CRS.from_epsg(code).axis_info[0].direction == "north")
    assert SUPPORTED[uri].srid == code


def test_parse_crs_defaults_to_crs84_and_takes_a_curie() -> None:
    assert parse_crs(None).uri == CRS84
    assert parse_crs("[EPSG:6675]").srid == 6675
    assert parse_crs(f"{EPSG_PREFIX}6675").north_first


@pytest.mark.parametrize("bad", [f"{EPSG_PREFIX}2443", "EPSG:6675", "http://example.com/crs", f"{EPSG_PREFIX}x"])
def test_parse_crs_refuses_others_with_a_clear_message(bad: str) -> None:
    with pytest.raises(UnsupportedCrs, match=r"bbox-crs .* is not supported: use"):
        parse_crs(bad, "bbox-crs")


def test_bbox_in_a_north_first_crs_is_reordered_to_east_north() -> None:
    assert bbox_to_storage_order(SUPPORTED[f"{EPSG_PREFIX}4326"], (35.0, 137.0, 35.5, 137.5)) == (
        137.0,
        35.0,
        137.5,
        35.5,
    )
    assert bbox_to_storage_order(SUPPORTED[CRS84], (137.0, 35.0, 137.5, 35.5)) == (137.0, 35.0, 137.5, 35.5)


def _served(db: psycopg.Connection, uri: str) -> list[float]:
    point = sql.SQL("ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)")
    row = db.execute(sql.SQL("SELECT {}").format(geojson_sql(point, SUPPORTED[uri])), {"lon": LON, "lat": LAT})
    got = row.fetchone()
    assert got is not None
    return list(orjson.loads(got[0])["coordinates"])


def test_zone_vii_output_is_northing_first_and_equals_postgis_and_pyproj(db: psycopg.Connection) -> None:
    x, y = _served(db, f"{EPSG_PREFIX}6675")
    east, north = db.execute(
        "SELECT ST_X(g), ST_Y(g) FROM ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), 6675) g", (LON, LAT)
    ).fetchone() or (0.0, 0.0)
    # pyproj in the EPSG axis order: (lat, lon) in, (X = northing, Y = easting) out.
    px, py = Transformer.from_crs(4326, 6675).transform(LAT, LON)
    assert (x, y) == (round(north, 3), round(east, 3))
    assert x == pytest.approx(px, abs=0.002) and y == pytest.approx(py, abs=0.002)
    assert -110_000 < x < -90_000 and 0 < y < 60_000  # zone VII origin 36°N 137°10′E: ~100 km north, east of it


def test_4326_is_lat_lon_and_crs84_lon_lat(db: psycopg.Connection) -> None:
    assert _served(db, f"{EPSG_PREFIX}4326") == [LAT, LON]
    assert _served(db, f"{EPSG_PREFIX}6668") == [LAT, LON]
    assert _served(db, CRS84) == [LON, LAT]


def test_envelope_in_zone_vii_covers_the_same_place(db: psycopg.Connection) -> None:
    zone = SUPPORTED[f"{EPSG_PREFIX}6675"]
    x, y = _served(db, zone.uri)
    west, south, east, north = bbox_to_storage_order(zone, (x - 100, y - 100, x + 100, y + 100))
    query = sql.SQL("SELECT ST_Intersects({}, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326))").format(
        envelope_sql(zone)
    )
    params = {"west": west, "south": south, "east": east, "north": north, "lon": LON, "lat": LAT}
    assert (db.execute(query, params).fetchone() or (False,))[0] is True
    params["west"], params["east"] = east + 1000, east + 2000  # a box 1 km east of the point
    assert (db.execute(query, params).fetchone() or (True,))[0] is False
