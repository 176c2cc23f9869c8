"""OGC API – Features Part 3 filters (CQL2) on /ogc/collections/{id}/items, over HTTP against the real PostGIS."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from shapely.geometry import Polygon, box

from geo import Stand, upsert_area, upsert_stands
from tests.api.test_ogc_features import served
from tests.geo_support import api_client, role_keys

T = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
SPECIES = ["スギ", "ヒノキ", "アカマツ"]
CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/"


def _stand(i: int) -> Stand:
    west, south = 137.30 + 0.01 * (i % 5), 35.13 + 0.01 * (i // 5)
    return Stand(
        stand_id=f"8-{i:02d}",
        rinpan=8,
        shohan=i,
        geom=box(west, south, west + 0.01, south + 0.01),
        species_1=SPECIES[i % 3],
        volume_m3=100.0 * i,
        area_ha=1.0 + i % 4,
        age_1=10 + 2 * i,
        ownership="national" if i % 4 == 0 else "private",
    )


STANDS = [_stand(i) for i in range(20)]


@pytest.fixture
def world(db, city):
    db.execute("TRUNCATE stands, areas")
    upsert_stands(db, STANDS, source_file="test", source_crs="EPSG:4326")
    upsert_area(db, area_id="asuke-slope", kind="slope", name="足助 slope", geometry=box(137.30, 35.13, 137.33, 35.15))
    upsert_area(db, area_id="inabu", kind="evacuation_zone", name="稲武", geometry=box(137.4, 35.2, 137.5, 35.3))
    acme = box(137.49, 35.19, 137.51, 35.21)
    upsert_area(db, area_id="acme-site", kind="district", name="Acme", tenant_id="acme", geometry=acme)
    db.execute(
        "INSERT INTO device_liveness (device_id, last_seen, last_reading, online) VALUES"
        " ('gauge-1', %(t)s, %(t)s, true), ('rain-1', %(old)s, %(old)s, false)",
        {"t": T, "old": T - timedelta(days=3)},
    )
    db.execute("TRUNCATE alerts CASCADE")
    db.execute(
        "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
        " peak_level, value, opened_at, resolved_at, location, area) VALUES"
        " ('river', 'gauge-1', 'threshold', 'flood', 'Yahagi caution', 'gauge-1', 'toyota-city', 'open', 2, 2, 4.0,"
        "  %(t)s, NULL, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326), NULL),"
        " ('rain', 'rain-1', 'threshold', 'flood', 'Heavy rain', 'rain-1', 'toyota-city', 'open', 1, 1, 30.5,"
        "  %(early)s, NULL, ST_SetSRID(ST_MakePoint(137.36, 35.23), 4326), NULL),"
        " ('slope', 'x', 'rate', 'landslide', 'Asuke slope', NULL, 'toyota-city', 'resolved', 3, 3, NULL,"
        "  %(old)s, %(old_end)s, NULL, ST_SetSRID(ST_MakeEnvelope(137.305, 35.13, 137.325, 35.15), 4326))",
        {"t": T, "early": T - timedelta(hours=6), "old": T - timedelta(days=2), "old_end": T - timedelta(days=1)},
    )


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, world):
    with api_client(database_url) as c:
        yield c


def _items(client, keys, collection: str, who: str = "viewer", **params: Any) -> dict[str, Any]:
    r = client.get(f"/ogc/collections/{collection}/items", params=params, headers=keys[who])
    assert r.status_code == 200, r.text
    return r.json()


def _ids(client, keys, collection: str, who: str = "viewer", **params: Any) -> list[str]:
    return [f["id"] for f in _items(client, keys, collection, who, **params)["features"]]


def _expected(predicate) -> list[str]:
    return [s.stand_id for s in STANDS if predicate(s)]


def test_conformance_declares_part_3_filter_and_the_cql2_classes(client):
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    for name in ("cql2-text", "cql2-json", "basic-cql2", "advanced-comparison-operators", "spatial-functions"):
        assert CQL2 + name in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter" in conformance
    assert CQL2 + "accent-insensitive-comparison" not in conformance and CQL2 + "array-functions" not in conformance


def test_the_ogc_example_filters_stands_in_cql2_text_and_cql2_json(client, keys):
    text = "species_1 = 'スギ' AND volume_m3 > 500"
    expected = _expected(lambda s: s.species_1 == "スギ" and s.volume_m3 > 500)
    assert expected and len(expected) < len(STANDS)
    as_text = _items(client, keys, "stands", "forestry", filter=text, limit=100)
    assert [f["id"] for f in as_text["features"]] == expected
    assert as_text["numberMatched"] == len(expected)
    as_json = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "species_1"}, "スギ"]},
            {"op": ">", "args": [{"property": "volume_m3"}, 500]},
        ],
    }
    assert _ids(client, keys, "stands", "forestry", filter=json.dumps(as_json), **{"filter-lang": "cql2-json"}) == (
        expected
    )


def test_spatial_and_advanced_filters_on_stands(client, keys):
    polygon = "POLYGON((137.305 35.135, 137.325 35.135, 137.325 35.155, 137.305 35.135))"
    triangle = Polygon([(137.305, 35.135), (137.325, 35.135), (137.325, 35.155)])
    got = _ids(client, keys, "stands", "forestry", filter=f"S_INTERSECTS(geometry, {polygon})", limit=100)
    assert got == _expected(lambda s: s.geom.intersects(triangle)) and len(got) == 6
    within = _ids(client, keys, "stands", "forestry", filter="S_WITHIN(geometry, BBOX(137.30, 35.13, 137.32, 35.15))")
    assert within == ["8-00", "8-01", "8-05", "8-06"]
    assert _ids(
        client, keys, "stands", "forestry", filter="CASEI(ownership) = CASEI('NATIONAL') AND age_1 BETWEEN 10 AND 30"
    ) == _expected(lambda s: s.ownership == "national" and 10 <= s.age_1 <= 30)
    assert _ids(
        client, keys, "stands", "forestry", filter="species_1 IN ('ヒノキ', 'アカマツ') AND volume_m3 / area_ha > 600"
    ) == (_expected(lambda s: s.species_1 in ("ヒノキ", "アカマツ") and s.volume_m3 / s.area_ha > 600))


def test_a_filter_on_each_of_the_other_collections(client, keys):
    assert _ids(client, keys, "devices", filter="device_type = 'river_gauge' OR online = FALSE") == [
        "gauge-1",
        "rain-1",
    ]
    assert _ids(client, keys, "devices", filter="T_AFTER(last_reading, TIMESTAMP('2026-11-24T00:00:00Z'))") == [
        "gauge-1"
    ]
    assert _ids(client, keys, "devices", filter="S_INTERSECTS(geometry, BBOX(137.3, 35.2, 137.4, 35.3))") == ["rain-1"]
    assert _ids(client, keys, "devices", filter="last_seen IS NULL") == ["acme-soil-1"]
    assert _ids(client, keys, "areas", filter="kind = 'slope' OR name LIKE '稲%'") == ["asuke-slope", "inabu"]
    assert _ids(client, keys, "areas", filter="S_CONTAINS(geometry, POINT(137.45 35.25))") == ["inabu"]
    # alerts: active by default; the filter narrows them, datetime opens the history

    def titles(**p: Any) -> list[str]:
        return [f["properties"]["title_en"] for f in _items(client, keys, "alerts", "operator", **p)["features"]]

    assert titles(filter="T_AFTER(opened_at, TIMESTAMP('2026-11-24T22:00:00Z'))") == ["Yahagi caution"]
    assert titles(filter="value > 10") == ["Heavy rain"]
    history = f"{(T - timedelta(days=5)).isoformat()}/{T.isoformat()}"
    assert titles(filter="level >= 2", datetime=history) == ["Yahagi caution", "Asuke slope"]
    assert titles(
        filter="T_DURING(INTERVAL(opened_at, resolved_at), INTERVAL('2026-11-22', '2026-11-24'))", datetime=history
    ) == ["Asuke slope"]
    assert titles(filter="S_INTERSECTS(geometry, POINT(137.31 35.14))", datetime=history) == ["Asuke slope"]


def test_a_partner_s_filter_stays_within_its_tenant(client, keys):
    assert _ids(client, keys, "devices", "partner", filter="tenant_id = 'toyota-city' OR TRUE") == ["acme-soil-1"]
    assert _ids(client, keys, "areas", "partner", filter="tenant_id <> 'acme' OR kind = 'slope'") == []
    assert _ids(client, keys, "alerts", "partner", filter="TRUE") == []


def test_a_filter_with_bbox_and_paging_follows_next_links_and_counts_its_matches(client, keys):
    filter_text = "species_1 <> 'スギ' AND volume_m3 >= 300"
    bbox = (137.30, 35.13, 137.345, 35.165)
    expected = _expected(lambda s: s.species_1 != "スギ" and s.volume_m3 >= 300 and s.geom.intersects(box(*bbox)))
    assert len(expected) > 4, expected
    url: str | None = "/ogc/collections/stands/items"
    params: dict[str, Any] | None = {"filter": filter_text, "bbox": ",".join(map(str, bbox)), "limit": 2}
    seen: list[str] = []
    first = None
    while url:
        body = client.get(url, params=params, headers=keys["forestry"]).json()
        first = first or body
        seen += [f["id"] for f in body["features"]]
        url, params = next((link["href"] for link in body["links"] if link["rel"] == "next"), None), None
    assert seen == expected
    assert first["numberMatched"] == len(expected)  # counted with the filter, on the first page


def test_equality_parameters_of_every_filterable_narrow_as_the_filter_does(client, keys):
    assert _ids(client, keys, "stands", "forestry", volume_m3="500") == ["8-05"]
    assert _ids(client, keys, "stands", "forestry", volume_m3="500.0", filter="species_1 = 'ヒノキ'") == []
    assert _ids(client, keys, "devices", online="true") == ["gauge-1"]
    r = client.get("/ogc/collections/stands/items", params={"volume_m3": "lots"}, headers=keys["forestry"])
    assert r.status_code == 400 and "number" in r.json()["description"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"filter": "species_1 = "}, "not valid cql2-text"),
        ({"filter": "colour = 'green'"}, "unknown property 'colour'"),
        ({"filter": "species_1 > 5"}, "cannot compare a string with a number"),
        ({"filter": "{oops", "filter-lang": "cql2-json"}, "not valid cql2-json"),
        ({"filter": "species_1 = 'x'", "filter-lang": "ecql"}, "filter-lang"),
        ({"filter": "species_1 = 'x'", "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/6675"}, "filter-crs"),
        ({"filter": "(" * 5000 + "rinpan = 1" + ")" * 5000}, "filter"),
        ({"filter": "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))"}, "invalid geometry"),
        ({"filter": "T_AFTER(imported_at, DATE('2026-02-30'))"}, "not a date"),
        ({"filter": "volume_m3 ^ 1000000 > 1"}, ""),  # an overflow in PostgreSQL is still the caller's 400
        ({"filtre": "species_1 = 'x'"}, "unknown parameter"),
    ],
)
def test_a_bad_filter_is_the_ogc_400(client, keys, params, message):
    r = client.get("/ogc/collections/stands/items", params=params, headers=keys["forestry"])
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue" and message in body["description"]


def test_an_unknown_property_is_told_the_queryables(client, keys):
    r = client.get("/ogc/collections/areas/items", params={"filter": "colour = 1"}, headers=keys["viewer"])
    assert r.status_code == 400
    assert "geometry, kind, name, tenant_id, updated_at" in r.json()["description"]


def test_an_injection_attempt_is_a_string_that_matches_nothing(client, keys, db):
    for attempt in ("species_1 = 'x'' OR 1=1 --'", "species_1 = '''; DELETE FROM stands; --'"):
        body = _items(client, keys, "stands", "forestry", filter=attempt)
        assert body["features"] == [] and body["numberMatched"] == 0
    assert db.execute("SELECT count(*) FROM stands").fetchone()[0] == len(STANDS)


def test_the_queryables_list_what_the_filter_accepts(client, keys):
    for collection, who in (("stands", "forestry"), ("devices", "viewer"), ("areas", "viewer"), ("alerts", "operator")):
        doc = client.get(f"/ogc/collections/{collection}/queryables", headers=keys[who]).json()
        names = set(doc["properties"])
        assert "geometry" in names and "filter" in doc["description"]
        for name in names:  # every queryable is accepted by a filter, and by its equality parameter
            r = client.get(
                f"/ogc/collections/{collection}/items", params={"filter": f"{name} IS NULL"}, headers=keys[who]
            )
            assert r.status_code == 200, (collection, name, r.text)
        schema = client.get(f"/ogc/collections/{collection}/schema", headers=keys[who]).json()
        for name in set(schema["properties"]) - names:  # the others are refused
            r = client.get(
                f"/ogc/collections/{collection}/items", params={"filter": f"{name} IS NULL"}, headers=keys[who]
            )
            assert r.status_code == 400 and "unknown property" in r.json()["description"], (collection, name)
    stands = client.get("/ogc/collections/stands/queryables", headers=keys["forestry"]).json()["properties"]
    assert stands["volume_m3"]["type"] == "number" and stands["imported_at"]["format"] == "date-time"
    assert "attributes" not in stands and "protection_forest" not in stands  # an object, an array: not filterable


def test_the_next_link_carries_the_filter(client, keys):
    body = _items(client, keys, "stands", "forestry", filter="volume_m3 > 100", limit=3, **{"filter-lang": "cql2-text"})
    nxt = next(link["href"] for link in body["links"] if link["rel"] == "next")
    assert "filter=volume_m3" in nxt and "filter-lang=cql2-text" in nxt


# --- a real client: GDAL 3.6 ------------------------------------------------------------------------------------
# Its OAPIF driver sends a -where to the server only in the drafts' dialect (filter-lang=cql-text, when the API
# definition's filter-lang lists it, or with OGR_OAPIF_ALLOW_CQL_TEXT=YES): not CQL2. So it evaluates -where itself,
# which makes it a second opinion on the server's CQL2; and its GeoJSON driver reads a filtered page as any URL.


def _ogr(header_file: str, *args: str) -> str:
    done = subprocess.run(
        ["ogrinfo", "--config", "GDAL_HTTP_HEADER_FILE", header_file, "-ro", "-al", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _stand_ids(listing: str) -> list[str]:
    return sorted(re.findall(r"stand_id \(String\) = (\S+)", listing))


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo (Debian gdal-bin) is not installed")
def test_gdal_reads_what_the_filter_selects_and_agrees_with_its_own_where(database_url, world, keys, tmp_path):
    header_file = tmp_path / "headers.txt"
    header_file.write_text(f"X-API-Key: {keys['forestry']['X-API-Key']}\n")
    condition = "species_1 = 'スギ' AND volume_m3 > 500"
    expected = sorted(_expected(lambda s: s.species_1 == "スギ" and s.volume_m3 > 500))
    with served(database_url) as url:
        page = f"{url}/ogc/collections/stands/items?{urlencode({'filter': condition, 'limit': 100})}"
        assert _stand_ids(_ogr(str(header_file), page)) == expected  # the server's CQL2, read by the GeoJSON driver
        own = _ogr(str(header_file), "-oo", "PAGE_SIZE=7", "-where", condition, f"OAPIF:{url}/ogc", "stands")
        assert _stand_ids(own) == expected  # GDAL's OGR SQL over every page: the same stands


def test_the_api_definition_documents_the_filter_parameters(client):
    doc = client.get("/openapi.json").json()
    parameters = {p["name"]: p for p in doc["paths"]["/ogc/collections/{collection_id}/items"]["get"]["parameters"]}
    assert parameters["filter"]["in"] == "query" and parameters["filter"]["schema"]["type"] == "string"
    assert parameters["filter-lang"]["schema"]["enum"] == ["cql2-text", "cql2-json"]
    assert parameters["filter-crs"]["schema"]["enum"] == ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]


def test_a_filter_with_sortby_properties_and_crs(client, keys):
    params = {
        "filter": "species_1 = 'スギ' AND volume_m3 >= 300",
        "sortby": "-volume_m3",
        "properties": "volume_m3",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "limit": 100,
    }
    r = client.get("/ogc/collections/stands/items", params=params, headers=keys["forestry"])
    assert r.status_code == 200, r.text
    expected = sorted(
        (s for s in STANDS if s.species_1 == "スギ" and s.volume_m3 >= 300), key=lambda s: s.volume_m3, reverse=True
    )
    body = r.json()
    assert [f["id"] for f in body["features"]] == [s.stand_id for s in expected] and expected
    assert all(set(f["properties"]) == {"volume_m3"} for f in body["features"])
    assert r.headers["Content-Crs"] == "<http://www.opengis.net/def/crs/EPSG/0/3857>"
    assert abs(body["features"][0]["geometry"]["coordinates"][0][0][0][0]) > 1e6  # metres, not degrees
