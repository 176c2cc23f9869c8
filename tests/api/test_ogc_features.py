"""OGC API – Features at /ogc, over HTTP against the real database, and read by GDAL's own OAPIF client."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shapely.geometry import box

from devices import upsert_device
from geo import Stand, upsert_area, upsert_stands
from tests.geo_support import api_client, role_keys, served

T = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def _stand(number: int, west: float, south: float, species: str) -> Stand:
    geom = box(west, south, west + 0.01, south + 0.01)
    return Stand(stand_id=f"7-{number}", rinpan=7, shohan=number, geom=geom, species_1=species, ownership="private")


@pytest.fixture
def world(db, city):
    db.execute("TRUNCATE stands, areas")
    upsert_stands(
        db,
        [_stand(i, 137.30 + 0.01 * i, 35.13, "スギ" if i % 2 else "ヒノキ") for i in range(1, 6)],
        source_file="test",
        source_crs="EPSG:4326",
    )
    upsert_area(db, area_id="asuke-slope", kind="slope", name="足助 slope", geometry=box(137.30, 35.13, 137.33, 35.15))
    upsert_area(
        db,
        area_id="acme-site",
        kind="district",
        name="Acme site",
        tenant_id="acme",
        geometry=box(137.49, 35.19, 137.51, 35.21),
    )
    db.execute(
        "INSERT INTO latest_readings (device_id, metric, time, value) VALUES"
        " ('gauge-1', 'water_level', %(t)s, 3.42), ('gauge-1', 'battery', %(t)s, 3.6)",
        {"t": T},
    )
    db.execute(
        "INSERT INTO device_liveness (device_id, last_seen, last_reading, online) VALUES"
        " ('gauge-1', %(t)s, %(t)s, true), ('rain-1', %(old)s, %(old)s, false)",
        {"t": T, "old": T - timedelta(days=3)},
    )
    has_alerts = db.execute("SELECT to_regclass('alerts') IS NOT NULL").fetchone()[0]
    if has_alerts:
        db.execute("TRUNCATE alerts CASCADE")
        db.execute(
            "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
            " peak_level, opened_at, resolved_at, location, area) VALUES"
            " ('river', 'gauge-1', 'threshold', 'flood', 'Yahagi caution', 'gauge-1', 'toyota-city', 'open', 2, 2,"
            "  %(t)s, NULL, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326), NULL),"
            " ('slope', 'x', 'rate', 'landslide', 'Asuke slope', NULL, 'toyota-city', 'resolved', 3, 3,"
            "  %(old)s, %(old_end)s, NULL, ST_SetSRID(ST_MakeEnvelope(137.305, 35.13, 137.325, 35.15), 4326))",
            {"t": T, "old": T - timedelta(days=2), "old_end": T - timedelta(days=1)},
        )
    return {"alerts": has_alerts}


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, world):
    with api_client(database_url) as c:
        yield c


def test_the_landing_page_and_conformance_need_no_key(client):
    landing = client.get("/ogc")
    assert landing.status_code == 200
    rels = {link["rel"]: link for link in landing.json()["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert client.get(rels["service-desc"]["href"]).status_code == 200
    conf = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf


def test_collections_are_listed_by_role(client, keys, world):
    city = [c["id"] for c in client.get("/ogc/collections", headers=keys["viewer"]).json()["collections"]]
    partner = [c["id"] for c in client.get("/ogc/collections", headers=keys["partner"]).json()["collections"]]
    expected = ["devices", "stands", "areas"] + (["alerts"] if world["alerts"] else [])
    assert city == expected
    assert "stands" not in partner
    assert client.get("/ogc/collections").status_code == 401
    one = client.get("/ogc/collections/stands", headers=keys["forestry"]).json()
    items_link = next(link for link in one["links"] if link["rel"] == "items")
    assert items_link["type"] == "application/geo+json"
    assert client.get("/ogc/collections/stands", headers=keys["partner"]).status_code == 403
    assert client.get("/ogc/collections/nope", headers=keys["viewer"]).status_code == 404


def test_devices_carry_status_and_latest_readings_as_properties(client, keys):
    r = client.get("/ogc/collections/devices/items", headers=keys["operator"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == 3
    gauge = next(f for f in body["features"] if f["id"] == "gauge-1")
    assert gauge["geometry"] == {"type": "Point", "coordinates": [137.179, 35.094]}
    props = gauge["properties"]
    assert (props["water_level"], props["battery"], props["online"], props["device_type"]) == (
        3.42,
        3.6,
        True,
        "river_gauge",
    )
    assert datetime.fromisoformat(props["water_level_time"]) == T


def test_devices_say_whether_they_are_silent_by_the_hub_s_one_rule(client, keys, db):
    """The map reads `silent` and `silent_since` from here (devices/silence.py); it judges nothing itself."""
    now = datetime.now(UTC)
    crisis = {"observation_start_m": 1.0, "danger_m": 3.0}
    heard = {"quiet-gauge": now - timedelta(hours=1), "fresh-gauge": now - timedelta(minutes=1)}
    heard |= {"crisis-low": now - timedelta(hours=5), "crisis-high": now - timedelta(hours=5)}
    for device in ("quiet-gauge", "fresh-gauge"):
        upsert_device(db, device_id=device, tenant_id="toyota-city", device_type="river_gauge", lon=137.2, lat=35.1)
    for device, level in (("crisis-low", 0.4), ("crisis-high", 1.5)):
        upsert_device(
            db,
            device_id=device,
            tenant_id="toyota-city",
            device_type="river_gauge_crisis",
            lon=137.3,
            lat=35.1,
            metadata=crisis,
        )
        db.execute(
            "INSERT INTO latest_readings (device_id, metric, time, value) VALUES (%s, 'water_level', %s, %s)",
            (device, heard[device], level),
        )
    for device, at in heard.items():
        db.execute(
            "INSERT INTO device_liveness (device_id, last_seen, last_reading, online) VALUES (%s, %s, %s, true)",
            (device, at, at),
        )

    def state(device: str) -> dict[str, object]:
        r = client.get(f"/ogc/collections/devices/items/{device}", headers=keys["viewer"])
        assert r.status_code == 200
        return r.json()["properties"]

    quiet = state("quiet-gauge")  # three 10-minute intervals gone: silent since the third ran out
    assert quiet["silent"] is True
    assert datetime.fromisoformat(quiet["silent_since"]) == heard["quiet-gauge"] + timedelta(minutes=30)
    assert (state("fresh-gauge")["silent"], state("fresh-gauge")["silent_since"]) == (False, None)
    # A crisis gauge below its observation-start level need only report daily; above it, at its interval.
    assert state("crisis-low")["silent"] is False
    assert state("crisis-high")["silent"] is True
    page = client.get("/ogc/collections/devices/items", headers=keys["viewer"]).json()
    by_id = {f["id"]: f["properties"]["silent"] for f in page["features"]}
    assert by_id["crisis-low"] is False and by_id["crisis-high"] is True and by_id["quiet-gauge"] is True
    # no message ever, or an offline status: silent too (acme's probe, the rain gauge of the fixture)
    assert by_id["acme-soil-1"] is True and by_id["rain-1"] is True


def test_paging_follows_next_links_through_every_feature_once(client, keys):
    seen: list[str] = []
    url: str | None = "/ogc/collections/stands/items?limit=2"
    pages = 0
    while url:
        body = client.get(url, headers=keys["forestry"]).json()
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        pages += 1
    assert seen == ["7-1", "7-2", "7-3", "7-4", "7-5"]
    assert pages == 3


def test_bbox_selects_features_that_touch_it(client, keys):
    r = client.get(
        "/ogc/collections/stands/items", params={"bbox": "137.325,35.12,137.345,35.16"}, headers=keys["viewer"]
    )
    assert [f["id"] for f in r.json()["features"]] == ["7-2", "7-3", "7-4"]  # 7-2 and 7-4 only share an edge
    far = client.get("/ogc/collections/stands/items", params={"bbox": "0,0,1,1"}, headers=keys["viewer"])
    assert far.json()["features"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"bbox": "137.3,35.1,137.3,35.2"},  # empty: zero width
        {"bbox": "137.4,35.1,137.3,35.2"},  # inverted
        {"bbox": "137.3,35.1,137.4"},
        {"bbox": "a,b,c,d"},
        {"limit": "0"},
        {"limit": "many"},
        {"offset": "-1"},
        {"datetime": "yesterday"},
        {"datetime": "2026-11-25T00:00:00Z/2026-11-24T00:00:00Z"},
        {"colour": "green"},
    ],
)
def test_bad_parameters_are_400_with_an_ogc_exception(client, keys, params):
    r = client.get("/ogc/collections/devices/items", params=params, headers=keys["viewer"])
    assert r.status_code == 400
    assert r.json()["code"] == "InvalidParameterValue"
    assert r.json()["description"]


def test_property_filters_and_datetime_narrow_devices(client, keys):
    def ids(**params: str) -> list[str]:
        body = client.get("/ogc/collections/devices/items", params=params, headers=keys["viewer"]).json()
        return [f["id"] for f in body["features"]]

    assert ids(device_type="river_gauge") == ["gauge-1"]
    assert ids(datetime=f"{(T - timedelta(hours=1)).isoformat()}/..") == ["gauge-1"]
    assert ids(datetime=f"../{(T - timedelta(days=2)).isoformat()}") == ["rain-1"]
    assert ids(datetime=T.isoformat()) == ["gauge-1"]


def test_stands_filter_by_species(client, keys):
    body = client.get("/ogc/collections/stands/items", params={"species_1": "スギ"}, headers=keys["forestry"]).json()
    assert [f["id"] for f in body["features"]] == ["7-1", "7-3", "7-5"]
    assert body["features"][0]["properties"]["ownership"] == "private"


def test_partners_see_only_their_tenants_devices_and_areas(client, keys):
    devices = client.get("/ogc/collections/devices/items", headers=keys["partner"]).json()
    areas = client.get("/ogc/collections/areas/items", headers=keys["partner"]).json()
    assert [f["id"] for f in devices["features"]] == ["acme-soil-1"]
    assert [f["id"] for f in areas["features"]] == ["acme-site"]
    assert client.get("/ogc/collections/devices/items/gauge-1", headers=keys["partner"]).status_code == 404
    assert client.get("/ogc/collections/stands/items", headers=keys["partner"]).status_code == 403


def test_a_single_feature_has_its_links(client, keys):
    r = client.get("/ogc/collections/areas/items/asuke-slope", headers=keys["viewer"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert (body["type"], body["id"], body["properties"]["kind"]) == ("Feature", "asuke-slope", "slope")
    assert {link["rel"] for link in body["links"]} == {"self", "alternate", "collection"}
    assert client.get("/ogc/collections/areas/items/nope", headers=keys["viewer"]).status_code == 404


def test_alerts_are_active_by_default_and_history_by_datetime(client, keys, world):
    if not world["alerts"]:
        pytest.skip("the alerts table (migration 0020) is not in this checkout yet")
    active = client.get("/ogc/collections/alerts/items", headers=keys["operator"]).json()
    assert [f["properties"]["title_en"] for f in active["features"]] == ["Yahagi caution"]
    window = f"{(T - timedelta(days=3)).isoformat()}/{T.isoformat()}"
    history = client.get("/ogc/collections/alerts/items", params={"datetime": window}, headers=keys["operator"]).json()
    assert sorted(f["properties"]["title_en"] for f in history["features"]) == ["Asuke slope", "Yahagi caution"]
    slope = next(f for f in history["features"] if f["properties"]["hazard"] == "landslide")
    assert slope["geometry"]["type"] == "Polygon"
    partner = client.get("/ogc/collections/alerts/items", headers=keys["partner"]).json()
    assert partner["features"] == []


# --- a real client: GDAL's OAPIF driver ------------------------------------------------------------------------


def _ogrinfo(url: str, header_file: str, *options: str, layer: str | None = None) -> str:
    # The key travels as a header, as QGIS sends it from an "API header" authentication configuration.
    command = ["ogrinfo", "--config", "GDAL_HTTP_HEADER_FILE", header_file, "-ro", *options, f"OAPIF:{url}/ogc"]
    done = subprocess.run(
        command + ([layer] if layer else []),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo (Debian gdal-bin) is not installed")
def test_ogrinfo_lists_and_reads_every_collection(database_url, world, keys, tmp_path):
    header_file = tmp_path / "headers.txt"
    header_file.write_text(f"X-API-Key: {keys['viewer']['X-API-Key']}\n")
    with served(database_url) as url:
        listing = _ogrinfo(url, str(header_file), "-q")
        expected = {"devices": 3, "stands": 5, "areas": 2} | ({"alerts": 1} if world["alerts"] else {})
        for name in expected:
            assert f": {name} (" in listing, listing
        for name, count in expected.items():
            summary = _ogrinfo(url, str(header_file), "-so", "-al", "-oo", "PAGE_SIZE=2", layer=name)  # forces paging
            assert f"Feature Count: {count}" in summary, summary
        detail = _ogrinfo(url, str(header_file), "-al", "-where", "device_type = 'river_gauge'", layer="devices")
        assert "water_level (Real) = 3.42" in detail, detail
        stands = _ogrinfo(url, str(header_file), "-al", "-spat", "137.335", "35.13", "137.345", "35.14", layer="stands")
        assert "stand_id (String) = 7-3" in stands, stands


# --- a real client: QGIS's OAPIF provider (PyQGIS, Debian's python3-qgis) ----------------------------------------

_SYSTEM_PYTHON = "/usr/bin/python3"


def _has_pyqgis() -> bool:
    probe = subprocess.run([_SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60)
    return probe.returncode == 0


def _qgis_read(url: str, key: str, *names: str, page_size: int = 2) -> dict:
    done = subprocess.run(
        [_SYSTEM_PYTHON, str(Path(__file__).parents[1] / "qgis_probe.py"), f"{url}/ogc", key, str(page_size), *names],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["layers"]


@pytest.mark.skipif(
    not Path(_SYSTEM_PYTHON).exists() or not _has_pyqgis(), reason="PyQGIS (Debian python3-qgis) is not installed"
)
def test_qgis_reads_every_collection_page_by_page_and_sees_only_its_tenant(database_url, world, keys, client):
    collections = ["devices", "stands", "areas", "alerts"]
    with served(database_url) as url:
        viewer = _qgis_read(url, keys["viewer"]["X-API-Key"], *collections)
        partner = _qgis_read(url, keys["partner"]["X-API-Key"], "devices")
        for name in collections:  # what the API itself answers, in one page, is what QGIS read page by page
            answer = client.get(f"/ogc/collections/{name}/items?limit=1000", headers=keys["viewer"]).json()
            expected_ids = sorted(str(f["id"]) for f in answer["features"])
            layer = viewer[name]
            assert layer["valid"], layer
            assert sorted(str(f["id"]) for f in layer["features"]) == expected_ids, name
    assert len(viewer["devices"]["features"]) == 3 and len(viewer["stands"]["features"]) == 5
    gauge = next(f for f in viewer["devices"]["features"] if f["id"] == "gauge-1")
    assert gauge["water_level"] == 3.42 and gauge["geometry"] == "Point" and gauge["device_type"] == "river_gauge"
    stand = next(f for f in viewer["stands"]["features"] if f["stand_id"] == "7-3")
    assert stand["geometry"] in ("Polygon", "MultiPolygon") and stand["species_1"]
    assert len(viewer["alerts"]["features"]) == (1 if world["alerts"] else 0)
    assert [f["id"] for f in partner["devices"]["features"]] == ["acme-soil-1"]  # another tenant's are not there
