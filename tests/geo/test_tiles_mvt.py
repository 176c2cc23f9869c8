"""Vector tiles and TileJSON, decoded with GDAL's MVT driver (through pyogrio) as a map client would read them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pyogrio
import pytest
from shapely.geometry import box

from geo import Stand, upsert_stands
from tests.geo_support import api_client, role_keys

MVT = "application/vnd.mapbox-vector-tile"


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The XYZ tile holding a position (the standard Web Mercator formula, written out independently)."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return z, x, y


@pytest.fixture
def world(db, city):
    db.execute("TRUNCATE stands")
    stands = [
        Stand(
            stand_id=f"3-{i}",
            rinpan=3,
            shohan=i,
            geom=box(137.30 + 0.002 * i, 35.13, 137.302 + 0.002 * i, 35.132),
            species_1="ヒノキ",
            age_1=40 + i,
            protection_forest=("水源かん養保安林",) if i == 1 else (),
        )
        for i in range(1, 4)
    ]
    upsert_stands(db, stands, source_file="test", source_crs="EPSG:4326")
    has_alerts = db.execute("SELECT to_regclass('alerts') IS NOT NULL").fetchone()[0]
    if has_alerts:
        db.execute("TRUNCATE alerts CASCADE")
        db.execute(
            "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
            " peak_level, opened_at, location) VALUES ('river', 'gauge-1', 'threshold', 'flood', 'Yahagi caution',"
            " 'gauge-1', 'toyota-city', 'open', 2, 2, %s, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326))",
            (datetime(2026, 11, 25, tzinfo=UTC),),
        )
    return {"alerts": has_alerts}


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, world):
    with api_client(database_url) as c:
        yield c


def decode(body: bytes, layer: str, z: int, x: int, y: int, tmp_path) -> list[dict]:
    path = tmp_path / f"{layer}-{z}-{x}-{y}.mvt"
    path.write_bytes(body)
    frame = pyogrio.read_dataframe(path, layer=layer, X=x, Y=y, Z=z)
    return frame.drop(columns="geometry").to_dict("records")


def test_a_stand_tile_holds_the_stands_with_their_attributes(client, keys, tmp_path):
    z, x, y = tile_of(137.303, 35.131, 14)
    r = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"])
    assert r.status_code == 200
    assert r.headers["content-type"] == MVT
    assert r.headers["cache-control"] == "private, max-age=3600"
    assert "X-API-Key" in r.headers["vary"]
    features = sorted(decode(r.content, "stands", z, x, y, tmp_path), key=lambda f: f["stand_id"])
    assert [f["stand_id"] for f in features] == ["3-1", "3-2", "3-3"]
    assert [f["age_1"] for f in features] == [41, 42, 43]
    assert [bool(f["protected"]) for f in features] == [True, False, False]


def test_an_empty_tile_is_204_with_the_same_cache_headers(client, keys):
    z, x, y = tile_of(139.7, 35.68, 14)  # Tokyo: no stands of ours
    r = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["viewer"])
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["cache-control"] == "private, max-age=3600"


def test_device_tiles_follow_tenant_rules(client, keys, tmp_path):
    z, x, y = tile_of(137.3, 35.15, 8)  # one tile over the whole city
    city = client.get(f"/v1/tiles/devices/{z}/{x}/{y}.mvt", headers=keys["viewer"])
    partner = client.get(f"/v1/tiles/devices/{z}/{x}/{y}.mvt", headers=keys["partner"])
    assert city.headers["cache-control"] == "private, max-age=30"
    assert sorted(f["id"] for f in decode(city.content, "devices", z, x, y, tmp_path)) == [
        "acme-soil-1",
        "gauge-1",
        "rain-1",
    ]
    assert [f["id"] for f in decode(partner.content, "devices", z, x, y, tmp_path)] == ["acme-soil-1"]
    assert client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["partner"]).status_code == 403
    assert client.get(f"/v1/tiles/devices/{z}/{x}/{y}.mvt").status_code == 401


def test_alert_tiles_show_active_alerts(client, keys, world, tmp_path):
    if not world["alerts"]:
        pytest.skip("the alerts table (migration 0020) is not in this checkout yet")
    z, x, y = tile_of(137.179, 35.094, 12)
    r = client.get(f"/v1/tiles/alerts/{z}/{x}/{y}.mvt", headers=keys["operator"])
    assert r.status_code == 200
    assert [f["title_en"] for f in decode(r.content, "alerts", z, x, y, tmp_path)] == ["Yahagi caution"]
    assert client.get(f"/v1/tiles/alerts/{z}/{x}/{y}.mvt", headers=keys["partner"]).status_code == 204


@pytest.mark.parametrize("address", ["14/99999/1", "23/0/0", "3/8/0", "3/0/-1"])
def test_tiles_that_do_not_exist_are_refused(client, keys, address):
    r = client.get(f"/v1/tiles/stands/{address}.mvt", headers=keys["viewer"])
    assert r.status_code == 404  # OGC API – Tiles; a malformed address is a 400 (tests/api/test_ogc_gdal.py)


def test_an_unknown_layer_is_404(client, keys):
    assert client.get("/v1/tiles/rivers/1/0/0.mvt", headers=keys["viewer"]).status_code == 404
    assert client.get("/v1/tiles/rivers.json", headers=keys["viewer"]).status_code == 404


def test_tilejson_describes_the_layer(client, keys):
    doc = client.get("/v1/tiles/stands.json", headers=keys["forestry"]).json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"][0].endswith("/v1/tiles/stands/{z}/{x}/{y}.mvt")
    assert doc["vector_layers"][0]["id"] == "stands"
    assert doc["vector_layers"][0]["fields"]["species_1"] == "String"
    assert len(doc["bounds"]) == 4
