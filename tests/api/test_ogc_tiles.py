"""OGC API – Tiles at /ogc (OGC 20-057): the documents' shape, the tiles the same as the XYZ route's, tenants,
errors as the standard says, and GDAL reading the tiles from a real server."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import morecantile
import pyogrio
import pytest
from pyproj import Transformer
from shapely.geometry import box

from api import ogc_tiles
from geo import Stand, upsert_stands
from mimamori.errors import NotFound, ValidationError
from tests.geo_support import api_client, role_keys, served

MVT = "application/vnd.mapbox-vector-tile"
WMQ = "WebMercatorQuad"
TILES_CONF = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf"
REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
HAS_OGRINFO = shutil.which("ogrinfo") is not None


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The XYZ tile (z, x, y) holding a position: the Web Mercator formula written out, not the hub's."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return z, x, y


@pytest.fixture
def world(db, city):
    db.execute("TRUNCATE stands")
    stands = [
        Stand(
            stand_id=f"4-{i}",
            rinpan=4,
            shohan=i,
            geom=box(137.30 + 0.002 * i, 35.13, 137.302 + 0.002 * i, 35.132),
            species_1="スギ",
            age_1=30 + i,
        )
        for i in range(1, 4)
    ]
    upsert_stands(db, stands, source_file="test", source_crs="EPSG:4326")
    db.execute("TRUNCATE alerts CASCADE")
    db.execute(
        "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
        " peak_level, opened_at, location) VALUES ('river', 'gauge-1', 'threshold', 'flood', 'Yahagi caution',"
        " 'gauge-1', 'toyota-city', 'open', 2, 2, %s, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326))",
        (datetime(2026, 11, 25, tzinfo=UTC),),
    )
    return {"keys": role_keys(db)}


@pytest.fixture
def keys(world):
    return world["keys"]


@pytest.fixture
def client(database_url, world):
    with api_client(database_url) as c:
        yield c


def decode(body: bytes, layer: str, z: int, x: int, y: int, tmp_path: Path) -> list[dict]:
    """The tile's features as GDAL's MVT driver reads them (georeferenced by the XYZ address)."""
    path = tmp_path / f"{layer}-{z}-{x}-{y}.mvt"
    path.write_bytes(body)
    frame = pyogrio.read_dataframe(path, layer=layer, X=x, Y=y, Z=z)
    # mvt_id: the tile's feature ids, which ST_AsMVT leaves unset (NaN, never equal to itself)
    return frame.drop(columns=["geometry", "mvt_id"], errors="ignore").to_dict("records")


def ogc_tile(collection: str, z: int, x: int, y: int) -> str:
    return f"/ogc/collections/{collection}/tiles/{WMQ}/{z}/{y}/{x}"  # row is y, column x


# --- pure: the documents and addresses -------------------------------------------------------------------------


def test_the_tile_matrix_set_is_morecantiles_own_and_reads_back_as_it():
    doc = ogc_tiles.tile_matrix_set_document(WMQ)
    assert morecantile.TileMatrixSet.model_validate(doc) == morecantile.tms.get(WMQ)
    assert doc["id"] == WMQ and doc["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    assert doc["uri"] == "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    assert [m["matrixWidth"] for m in doc["tileMatrices"][:4]] == [1, 2, 4, 8]
    with pytest.raises(NotFound):
        ogc_tiles.tile_matrix_set_document("WorldCRS84Quad")


def test_an_ogc_address_is_zoom_row_column():
    assert ogc_tiles.tile_address("devices", WMQ, "3", "1", "6") == (3, 6, 1)  # z, x=col, y=row
    assert ogc_tiles.tile_address("stands", WMQ, "22", str(2**22 - 1), "0") == (22, 0, 2**22 - 1)


@pytest.mark.parametrize(
    ("collection", "tms", "address"),
    [
        ("rivers", WMQ, ("1", "0", "0")),  # no such collection
        ("areas", WMQ, ("1", "0", "0")),  # a collection without tiles
        ("devices", "WorldCRS84Quad", ("1", "0", "0")),  # a tile matrix set not served
        ("devices", WMQ, ("23", "0", "0")),  # beyond the zooms served
        ("devices", WMQ, ("-1", "0", "0")),
        ("stands", WMQ, ("7", "0", "0")),  # stands are tiled from zoom 8
        ("devices", WMQ, ("3", "8", "0")),  # row outside the 8×8 matrix
        ("devices", WMQ, ("3", "0", "8")),  # column outside
        ("devices", WMQ, ("3", "-1", "0")),
        ("devices", WMQ, ("99999999999999999999", "0", "0")),
    ],
)
def test_an_address_naming_no_tile_is_not_found(collection, tms, address):
    with pytest.raises(NotFound):
        ogc_tiles.tile_address(collection, tms, *address)


@pytest.mark.parametrize(
    "address", [("a", "0", "0"), ("3", "1.5", "0"), ("3", "0", "1e2"), ("3", "٣", "0"), ("", "0", "0")]
)
def test_a_malformed_address_is_a_validation_error(address):
    with pytest.raises(ValidationError, match="whole number"):
        ogc_tiles.tile_address("devices", WMQ, *address)


def test_the_tileset_names_its_template_limits_and_layer():
    doc = ogc_tiles.tileset_document("http://hub", "stands", WMQ, (137.3, 35.1, 137.4, 35.2))
    assert doc["dataType"] == "vector"
    assert doc["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    assert doc["tileMatrixSetURI"] == morecantile.tms.get(WMQ).uri
    links = {link["rel"]: link for link in doc["links"]}
    assert links["self"]["href"] == "http://hub/ogc/collections/stands/tiles/WebMercatorQuad"
    assert links[REL_TILING_SCHEME]["href"] == "http://hub/ogc/tileMatrixSets/WebMercatorQuad"
    assert links["item"] == {
        "rel": "item",
        "type": MVT,
        "title": links["item"]["title"],
        "href": "http://hub/ogc/collections/stands/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}",
        "templated": True,
    }
    limits = doc["tileMatrixSetLimits"]
    assert [limit["tileMatrix"] for limit in limits] == [str(z) for z in range(8, 23)]
    assert limits[0] == {"tileMatrix": "8", "minTileRow": 0, "maxTileRow": 255, "minTileCol": 0, "maxTileCol": 255}
    (layer,) = doc["layers"]
    assert (layer["id"], layer["dataType"], layer["geometryDimension"]) == ("stands", "vector", 2)
    assert (layer["minTileMatrix"], layer["maxTileMatrix"]) == ("8", "22")
    assert layer["propertiesSchema"]["properties"]["species_1"] == {"type": "string"}
    assert layer["propertiesSchema"]["properties"]["age_1"] == {"type": "number"}
    assert layer["propertiesSchema"]["properties"]["protected"] == {"type": "boolean"}
    assert doc["boundingBox"] == {
        "lowerLeft": [137.3, 35.1],
        "upperRight": [137.4, 35.2],
        "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
    }
    devices = ogc_tiles.tileset_document("http://hub", "devices", WMQ, None)
    assert devices["layers"][0]["geometryDimension"] == 0 and "boundingBox" not in devices
    assert [limit["tileMatrix"] for limit in devices["tileMatrixSetLimits"]] == [str(z) for z in range(23)]
    assert "geometryDimension" not in ogc_tiles.tileset_document("http://hub", "alerts", WMQ, None)["layers"][0]


# --- over HTTP ---------------------------------------------------------------------------------------------------


def test_the_landing_page_conformance_and_collections_point_to_the_tiles(client, keys):
    landing = client.get("/ogc").json()
    schemes = [link for link in landing["links"] if link["rel"].endswith("/tiling-schemes")]
    assert [link["href"] for link in schemes] == ["http://testserver/ogc/tileMatrixSets"]
    conf = client.get("/ogc/conformance").json()["conformsTo"]
    for name in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt"):
        assert f"{TILES_CONF}/{name}" in conf
    assert "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf  # Features' classes still there
    docs = client.get("/ogc/collections", headers=keys["viewer"]).json()["collections"]
    tiled = {c["id"]: [link["href"] for link in c["links"] if link["rel"] == REL_TILESETS_VECTOR] for c in docs}
    assert tiled == {
        "devices": ["http://testserver/ogc/collections/devices/tiles"],
        "stands": ["http://testserver/ogc/collections/stands/tiles"],
        "areas": [],
        "alerts": ["http://testserver/ogc/collections/alerts/tiles"],
    }


def test_the_tile_matrix_sets_are_open_documents(client):
    listed = client.get("/ogc/tileMatrixSets")
    assert listed.status_code == 200
    (entry,) = listed.json()["tileMatrixSets"]
    assert entry["id"] == WMQ and entry["uri"] == morecantile.tms.get(WMQ).uri
    href = next(link["href"] for link in entry["links"] if link["rel"] == "self")
    doc = client.get(href)
    assert doc.status_code == 200 and doc.headers["content-type"].startswith("application/json")
    assert morecantile.TileMatrixSet.model_validate(doc.json()) == morecantile.tms.get(WMQ)
    missing = client.get("/ogc/tileMatrixSets/WorldCRS84Quad")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_the_tilesets_list_leads_to_the_tileset_and_its_tiles(client, keys, tmp_path):
    tilesets = client.get("/ogc/collections/stands/tiles", headers=keys["forestry"])
    assert tilesets.status_code == 200
    (entry,) = tilesets.json()["tilesets"]
    assert entry["dataType"] == "vector" and entry["tileMatrixSetURI"] == morecantile.tms.get(WMQ).uri
    rels = {link["rel"]: link["href"] for link in entry["links"]}
    assert rels[REL_TILING_SCHEME] == "http://testserver/ogc/tileMatrixSets/WebMercatorQuad"
    tileset = client.get(rels["self"], headers=keys["forestry"]).json()
    bbox = tileset["boundingBox"]  # the stands' extent
    assert bbox["lowerLeft"] == pytest.approx([137.302, 35.13]) and bbox["upperRight"] == pytest.approx(
        [137.308, 35.132]
    )
    template = next(link["href"] for link in tileset["links"] if link["rel"] == "item")
    z, x, y = tile_of(137.303, 35.131, 14)
    r = client.get(template.format(tileMatrix=z, tileRow=y, tileCol=x), headers=keys["forestry"])
    assert r.status_code == 200 and r.headers["content-type"] == MVT
    assert sorted(f["stand_id"] for f in decode(r.content, "stands", z, x, y, tmp_path)) == ["4-1", "4-2", "4-3"]


@pytest.mark.parametrize(
    ("collection", "lon", "lat", "z", "who"),
    [
        ("stands", 137.303, 35.131, 14, "forestry"),  # zoom 14: from the stand tile cache (rendered, then hit)
        ("stands", 137.303, 35.131, 9, "viewer"),  # compartments
        ("devices", 137.3, 35.15, 8, "viewer"),
        ("devices", 137.3, 35.15, 8, "partner"),
        ("alerts", 137.179, 35.094, 12, "operator"),
    ],
)
def test_a_tile_is_the_xyz_routes_tile(client, keys, tmp_path, collection, lon, lat, z, who):
    z, x, y = tile_of(lon, lat, z)
    xyz = client.get(f"/v1/tiles/{collection}/{z}/{x}/{y}.mvt", headers=keys[who])
    ogc = client.get(ogc_tile(collection, z, x, y), headers=keys[who])
    again = client.get(ogc_tile(collection, z, x, y), headers=keys[who])
    assert xyz.status_code == ogc.status_code == again.status_code == 200, ogc.text
    assert ogc.content == xyz.content == again.content
    assert ogc.headers["content-type"] == MVT
    for header in ("cache-control", "vary"):
        assert ogc.headers[header] == xyz.headers[header]
    features = decode(ogc.content, collection, z, x, y, tmp_path)
    assert features and features == decode(xyz.content, collection, z, x, y, tmp_path)


def test_tiles_keep_partners_to_their_tenant(client, keys, tmp_path):
    z, x, y = tile_of(137.3, 35.15, 8)
    city = client.get(ogc_tile("devices", z, x, y), headers=keys["viewer"])
    partner = client.get(ogc_tile("devices", z, x, y), headers=keys["partner"])
    assert sorted(f["id"] for f in decode(city.content, "devices", z, x, y, tmp_path)) == [
        "acme-soil-1",
        "gauge-1",
        "rain-1",
    ]
    assert [f["id"] for f in decode(partner.content, "devices", z, x, y, tmp_path)] == ["acme-soil-1"]
    assert partner.headers["cache-control"] == "private, max-age=30"
    z, x, y = tile_of(137.179, 35.094, 12)
    assert client.get(ogc_tile("alerts", z, x, y), headers=keys["partner"]).status_code == 204  # the city's alert
    z, x, y = tile_of(137.303, 35.131, 14)
    for path in (ogc_tile("stands", z, x, y), "/ogc/collections/stands/tiles", f"/ogc/collections/stands/tiles/{WMQ}"):
        assert client.get(path, headers=keys["partner"]).status_code == 403, path
        assert client.get(path).status_code == 401, path
    assert client.get("/ogc/collections/devices/tiles", headers=keys["partner"]).status_code == 200


def test_an_empty_tile_is_204(client, keys):
    z, x, y = tile_of(139.7, 35.68, 14)  # Tokyo: no stands of ours
    r = client.get(ogc_tile("stands", z, x, y), headers=keys["viewer"])
    assert r.status_code == 204 and r.content == b""
    assert r.headers["cache-control"] == "private, max-age=3600"


@pytest.mark.parametrize(
    "path",
    [
        "/ogc/collections/rivers/tiles",
        "/ogc/collections/areas/tiles",  # a collection, but not tiled
        f"/ogc/collections/areas/tiles/{WMQ}",
        "/ogc/collections/devices/tiles/WorldCRS84Quad",
        f"/ogc/collections/rivers/tiles/{WMQ}/1/0/0",
        f"/ogc/collections/areas/tiles/{WMQ}/1/0/0",
        "/ogc/collections/devices/tiles/WorldCRS84Quad/1/0/0",
        f"/ogc/collections/devices/tiles/{WMQ}/23/0/0",
        f"/ogc/collections/devices/tiles/{WMQ}/-1/0/0",
        f"/ogc/collections/stands/tiles/{WMQ}/7/50/113",  # stands start at tile matrix 8
        f"/ogc/collections/devices/tiles/{WMQ}/3/8/0",
        f"/ogc/collections/devices/tiles/{WMQ}/3/0/8",
        f"/ogc/collections/devices/tiles/{WMQ}/14/99999/1",
        f"/ogc/collections/devices/tiles/{WMQ}/99999999999999999999/0/0",
    ],
)
def test_what_does_not_exist_is_404(client, keys, path):
    r = client.get(path, headers=keys["admin"])
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"


@pytest.mark.parametrize("address", ["a/0/0", "3/1.5/0", "3/0/1e2", "3/0x1/0", "3/%201/0", "3/0/٣", "3/0/0.mvt"])
def test_a_malformed_address_is_ogcs_400(client, keys, address):
    r = client.get(f"/ogc/collections/devices/tiles/{WMQ}/{address}", headers=keys["viewer"])
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue" and "whole number" in body["description"]


def test_the_openapi_document_describes_the_tile_answers(client):
    doc = client.get("/openapi.json").json()
    path = "/ogc/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}"
    responses = doc["paths"][path]["get"]["responses"]
    assert MVT in responses["200"]["content"]
    assert {"204", "400", "404"} <= set(responses)
    assert "security" not in doc["paths"]["/ogc/tileMatrixSets"]["get"]


# --- GDAL reading the tiles from a real server ---------------------------------------------------------------------


def _ogrinfo(key: dict[str, str], tmp_path: Path, *args: str) -> str:
    headers = tmp_path / "headers.txt"
    headers.write_text(f"X-API-Key: {key['X-API-Key']}\n")
    command = ["ogrinfo", "--config", "GDAL_HTTP_HEADER_FILE", str(headers), "-ro", "-al", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not HAS_OGRINFO, reason="ogrinfo (Debian gdal-bin) is not installed")
def test_gdals_mvt_driver_reads_an_ogc_tile(database_url, world, keys, tmp_path):
    z, x, y = tile_of(137.303, 35.131, 14)
    with served(database_url) as url:
        # GDAL's MVT driver takes a URL ending in a whole number for a tileset directory, so the tile is named with
        # its format (?f=mvt); and the URL is z/y/x, not the z/x/y it would read from a path: Z, X, Y are given.
        tile_url = f"/vsicurl/{url}{ogc_tile('stands', z, x, y)}?f=mvt"
        options = ["-oo", f"Z={z}", "-oo", f"X={x}", "-oo", f"Y={y}"]
        summary = _ogrinfo(keys["forestry"], tmp_path, f"MVT:{tile_url}", *options)
        extent = _ogrinfo(keys["forestry"], tmp_path, "-so", f"MVT:{tile_url}", *options)
    assert "Layer name: stands" in summary and "Feature Count: 3" in summary, summary
    assert sorted(re.findall(r"stand_id \(String\) = (\S+)", summary)) == ["4-1", "4-2", "4-3"]
    found = re.search(r"Extent: \(([-\d.]+), ([-\d.]+)\) - \(([-\d.]+), ([-\d.]+)\)", extent)
    assert found, extent
    west, south, east, north = (float(v) for v in found.groups())
    lon_lat = Transformer.from_crs(3857, 4326, always_xy=True)
    (w, e), (s, n) = lon_lat.transform([west, east], [south, north])
    # where the stands are (137.302–137.308 E, 35.130–35.132 N), clipped to the tile (its 4096-unit grid)
    tile = morecantile.tms.get(WMQ).bounds(x, y, z)
    expected = (max(137.302, tile.left), max(35.13, tile.bottom), min(137.308, tile.right), min(35.132, tile.top))
    assert (w, s, e, n) == pytest.approx(expected, abs=1e-4)


def test_the_ogc_tile_takes_f_mvt_only(client, keys):
    z, x, y = tile_of(137.3, 35.15, 8)
    assert client.get(ogc_tile("devices", z, x, y) + "?f=mvt", headers=keys["viewer"]).status_code == 200
    r = client.get(ogc_tile("devices", z, x, y) + "?f=png", headers=keys["viewer"])
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"


def test_stand_tiles_share_the_xyz_routes_tile_cache(client, keys, db):
    z, x, y = tile_of(137.303, 35.131, 14)
    cached = "SELECT count(*) FROM tile_cache WHERE layer = 'stands' AND z = %s AND x = %s AND y = %s"
    assert db.execute(cached, (z, x, y)).fetchone()[0] == 0
    ogc = client.get(ogc_tile("stands", z, x, y), headers=keys["forestry"])
    assert ogc.status_code == 200
    assert db.execute(cached, (z, x, y)).fetchone()[0] == 1  # stored under the XYZ address z/x/y
    db.execute(
        "UPDATE tile_cache SET body = %s WHERE layer = 'stands' AND z = %s AND x = %s AND y = %s",
        (b"\x1a\x00", z, x, y),
    )
    # both routes now answer the stored body: one cache, not two
    assert client.get(ogc_tile("stands", z, x, y), headers=keys["viewer"]).content == b"\x1a\x00"
    assert client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["viewer"]).content == b"\x1a\x00"
