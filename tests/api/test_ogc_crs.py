"""OGC API – Features Part 2 at /ogc: ``crs``, ``bbox-crs``, ``Content-Crs`` and the collections' CRS lists, over
HTTP against PostGIS, and read by GDAL's OAPIF driver (GDAL 3.12 as pyogrio carries it: Debian's 3.6 has no
``CRS`` open option) into a GeoPackage in EPSG:4326 and JGD2011 zone VII (EPSG:6675)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import psycopg
import pyogrio
import pytest
import shapely
from pyproj import Transformer

from geo.crs import CRS84, EPSG_PREFIX
from tests.api.test_ogc_features import client, keys, served, world  # noqa: F401 (fixtures and the live server)

ZONE_VII = f"{EPSG_PREFIX}6675"
EPSG_4326 = f"{EPSG_PREFIX}4326"
MERCATOR = f"{EPSG_PREFIX}3857"
COLLECTIONS = ("devices", "stands", "areas", "alerts")
_TABLE = {  # what PostGIS transforms, per collection, to check the API's coordinates against
    "devices": "SELECT id, location FROM devices",
    "stands": "SELECT stand_id, geom FROM stands",
    "areas": "SELECT id, geom FROM areas",
    "alerts": "SELECT id::text, coalesce(area, location) FROM alerts WHERE state IN ('open', 'acknowledged')",
}


def _postgis(db: psycopg.Connection, collection: str, srid: int, flip: bool, decimals: int) -> dict[str, Any]:
    geom = f"ST_Transform(g, {srid})" if srid != 4326 else "g"
    geom = f"ST_FlipCoordinates({geom})" if flip else geom
    rows = db.execute(f"SELECT id, ST_AsGeoJSON({geom}, {decimals})::text FROM ({_TABLE[collection]}) t(id, g)")
    return {r[0]: orjson.loads(r[1])["coordinates"] for r in rows.fetchall()}


def _flat(coordinates: Any) -> list[float]:
    if isinstance(coordinates, int | float):
        return [float(coordinates)]
    return [n for part in coordinates for n in _flat(part)]


def _items(client, keys, collection: str, **params: str) -> tuple[dict[str, Any], Any]:  # noqa: F811
    r = client.get(f"/ogc/collections/{collection}/items", params=params, headers=keys["operator"])
    assert r.status_code == 200, r.text
    return r.json(), r.headers


def test_collections_list_the_crss_they_serve_and_store(client, keys):  # noqa: F811
    listing = client.get("/ogc/collections", headers=keys["viewer"]).json()
    assert listing["crs"][0] == CRS84 and ZONE_VII in listing["crs"] and MERCATOR in listing["crs"]
    for c in listing["collections"]:
        assert c["crs"] == listing["crs"]
        assert c["storageCrs"] == CRS84
    assert (
        "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs"
        in client.get("/ogc/conformance").json()["conformsTo"]
    )


@pytest.mark.parametrize("collection", COLLECTIONS)
@pytest.mark.parametrize(
    ("uri", "srid", "flip", "decimals"),
    [(CRS84, 4326, False, 7), (EPSG_4326, 4326, True, 7), (ZONE_VII, 6675, True, 3), (MERCATOR, 3857, False, 3)],
)
def test_items_come_in_the_asked_crs_as_postgis_transforms_them(
    client,  # noqa: F811
    keys,  # noqa: F811
    db,
    world,  # noqa: F811
    collection: str,
    uri: str,
    srid: int,
    flip: bool,
    decimals: int,
):
    if collection == "alerts" and not world["alerts"]:
        pytest.skip("the alerts table is not in this checkout")
    params = {} if uri == CRS84 else {"crs": uri}
    body, headers = _items(client, keys, collection, **params)
    assert headers["Content-Crs"] == f"<{uri}>"
    got = {f["id"]: f["geometry"]["coordinates"] for f in body["features"] if f["geometry"]}
    expected = _postgis(db, collection, srid, flip, decimals)
    assert got and set(got) <= set(expected)
    # Devices are transformed in Python (pyproj), the others by PostGIS: both must give the same coordinates.
    for fid, coordinates in got.items():
        assert _flat(coordinates) == pytest.approx(_flat(expected[fid]), abs=10**-decimals), fid


def test_zone_vii_axis_order_is_northing_first(client, keys):  # noqa: F811
    body, _ = _items(client, keys, "devices", crs=ZONE_VII)
    gauge = next(f for f in body["features"] if f["id"] == "gauge-1")
    northing, easting = Transformer.from_crs("OGC:CRS84", "EPSG:6675").transform(137.179, 35.094)
    assert gauge["geometry"]["coordinates"] == pytest.approx([northing, easting], abs=1e-3)
    # The gauge lies south of zone VII's origin (36°N, 137°10′E) and just east of it: X < 0 < Y.
    assert gauge["geometry"]["coordinates"][0] < 0 < gauge["geometry"]["coordinates"][1]


def test_next_links_keep_the_crs(client, keys):  # noqa: F811
    body, _ = _items(client, keys, "stands", crs=ZONE_VII, limit="2")
    next_href = next(link["href"] for link in body["links"] if link["rel"] == "next")
    page = client.get(next_href, headers=keys["operator"])
    assert page.headers["Content-Crs"] == f"<{ZONE_VII}>"
    assert [f["id"] for f in page.json()["features"]] == ["7-3", "7-4"]


def test_one_feature_in_a_crs(client, keys, db):  # noqa: F811
    r = client.get("/ogc/collections/stands/items/7-2", params={"crs": ZONE_VII}, headers=keys["operator"])
    assert r.status_code == 200
    assert r.headers["Content-Crs"] == f"<{ZONE_VII}>"
    expected = _postgis(db, "stands", 6675, True, 3)["7-2"]
    assert r.json()["geometry"]["coordinates"] == expected
    plain = client.get("/ogc/collections/devices/items/gauge-1", headers=keys["operator"])
    assert plain.headers["Content-Crs"] == f"<{CRS84}>"
    assert plain.json()["geometry"]["coordinates"] == [137.179, 35.094]


def _zone_vii_box(west: float, south: float, east: float, north: float) -> tuple[float, float, float, float]:
    """A lon/lat box's corners in zone VII metres: (min easting, min northing, max easting, max northing)."""
    to_zone = Transformer.from_crs("OGC:CRS84", "EPSG:6675", always_xy=True)
    xs, ys = to_zone.transform([west, east, west, east], [south, south, north, north])
    return min(xs), min(ys), max(xs), max(ys)


@pytest.mark.parametrize("collection", ["stands", "devices", "areas"])
def test_a_bbox_in_zone_vii_selects_what_postgis_finds_in_it(client, keys, db, collection: str):  # noqa: F811
    e0, n0, e1, n1 = _zone_vii_box(137.17, 35.05, 137.345, 35.135)
    # In zone VII's own axis order: northing first.
    bbox = f"{n0},{e0},{n1},{e1}"
    body, _ = _items(client, keys, collection, bbox=bbox, **{"bbox-crs": ZONE_VII})
    rows = db.execute(
        f"SELECT id FROM ({_TABLE[collection]}) t(id, g)"
        " WHERE ST_Intersects(g, ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, 6675), 10), 4326))",
        (e0, n0, e1, n1),
    ).fetchall()
    expected = sorted(r[0] for r in rows)
    assert expected, "the box must hold something for the test to mean anything"
    assert sorted(f["id"] for f in body["features"]) == expected
    assert body["numberMatched"] == len(expected)


def test_a_latitude_first_bbox_crs_equals_the_crs84_bbox(client, keys):  # noqa: F811
    crs84, _ = _items(client, keys, "stands", bbox="137.325,35.12,137.345,35.16")
    lat_first, _ = _items(client, keys, "stands", bbox="35.12,137.325,35.16,137.345", **{"bbox-crs": EPSG_4326})
    assert [f["id"] for f in lat_first["features"]] == [f["id"] for f in crs84["features"]] == ["7-2", "7-3", "7-4"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("devices/items", {"crs": f"{EPSG_PREFIX}2443"}),  # JGD2000, not served
        ("devices/items", {"crs": "EPSG:6675"}),  # not a URI
        ("devices/items", {"bbox-crs": ZONE_VII}),  # without a bbox
        ("devices/items", {"bbox": "137.1,35.0,137.4,35.2", "bbox-crs": "http://example.com/crs"}),
        ("stands/items", {"bbox": "-60000,-30000,-70000,-20000", "bbox-crs": ZONE_VII}),  # inverted northing
        ("devices/items/gauge-1", {"crs": f"{EPSG_PREFIX}2443"}),
        ("devices/items/gauge-1", {"colour": "green"}),
    ],
)
def test_unsupported_crs_and_bad_boxes_are_400(client, keys, path: str, params: dict[str, str]):  # noqa: F811
    r = client.get(f"/ogc/collections/{path}", params=params, headers=keys["operator"])
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "InvalidParameterValue"


def test_the_safe_curie_form_is_taken(client, keys):  # noqa: F811
    body, headers = _items(client, keys, "devices", crs="[EPSG:6675]")
    assert headers["Content-Crs"] == f"<{ZONE_VII}>"
    assert body["numberReturned"] == 3


# --- GDAL's OAPIF driver copies a collection to a GeoPackage in a CRS (as ogr2ogr -oo CRS=… does) ---------------


_COPY = """
import sys, pyogrio
source, crs, target = sys.argv[1:]
frame = pyogrio.read_dataframe(source, layer="stands", CRS=crs, PAGE_SIZE="2")
pyogrio.write_dataframe(frame, target, layer="stands", driver="GPKG")
"""


@pytest.mark.parametrize(("crs", "srid"), [("EPSG:4326", 4326), ("EPSG:6675", 6675)])
def test_gdal_copies_the_stands_into_a_geopackage_in_the_asked_crs(
    database_url,
    world,  # noqa: F811
    keys,  # noqa: F811
    db,
    tmp_path,
    crs: str,
    srid: int,
):
    header_file = tmp_path / "headers.txt"
    header_file.write_text(f"X-API-Key: {keys['forestry']['X-API-Key']}\n")
    gpkg = tmp_path / f"stands-{srid}.gpkg"
    with served(database_url) as url:
        # In a process of its own, as ogr2ogr runs (GDAL would hold this one's GIL against the server thread).
        # PAGE_SIZE=2: the five stands come over three pages, each asked with crs= by GDAL itself.
        done = subprocess.run(
            [sys.executable, "-c", _COPY, f"OAPIF:{url}/ogc", crs, str(gpkg)],
            env={**os.environ, "GDAL_HTTP_HEADER_FILE": str(header_file)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    copied = pyogrio.read_dataframe(gpkg)
    if srid == 4326:  # GDAL asks EPSG:4326 of a server storing CRS84 as CRS84: the same datum, GIS order
        assert copied.crs.to_epsg() == 4326 or copied.crs.to_string() == "OGC:CRS84"
    else:
        assert copied.crs.to_epsg() == srid
    assert len(copied) == 5
    rows = db.execute(
        "SELECT stand_id, ST_AsBinary(ST_Transform(geom, %s)) FROM stands ORDER BY stand_id", (srid,)
    ).fetchall()
    expected = {r[0]: shapely.from_wkb(bytes(r[1])) for r in rows}
    # The GeoPackage holds GIS (x = easting/longitude) order, whatever the CRS's own axis order on the wire.
    for stand_id, geometry in zip(copied["stand_id"], copied.geometry, strict=True):
        tolerance = 1e-6 if srid == 4326 else 1e-2
        assert shapely.equals_exact(geometry, expected[stand_id], tolerance=tolerance), stand_id
    assert copied["volume_m3"].dtype.kind in "f" or copied["volume_m3"].isna().all()
