"""NGSI-LD at /ngsi-ld/v1 over HTTP against the real database: entities, one entity, media types, the @context,
q, geo-queries, the temporal API and errors as ProblemDetails, each confined to the key's tenant."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import box

from geo import Stand, upsert_stands
from tests.geo_support import api_client, role_keys
from tests.services import ROOT

T = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"


@pytest.fixture
def world(db, city):
    db.execute("TRUNCATE stands")
    upsert_stands(
        db,
        [
            Stand(stand_id="7-1", rinpan=7, shohan=1, geom=box(137.17, 35.09, 137.19, 35.10), species_1="スギ"),
            Stand(stand_id="7-2", rinpan=7, shohan=2, geom=box(137.40, 35.20, 137.41, 35.21), species_1="ヒノキ"),
        ],
        source_file="test",
        source_crs="EPSG:4326",
    )
    db.execute(
        "INSERT INTO latest_readings (device_id, metric, time, value) VALUES"
        " ('gauge-1', 'water_level', %(t)s, 3.42), ('acme-soil-1', 'soil_moisture', %(t)s, 0.31)",
        {"t": T},
    )
    db.execute(
        "INSERT INTO device_liveness (device_id, last_seen, last_reading, online) VALUES"
        " ('gauge-1', %(t)s, %(t)s, true), ('rain-1', %(old)s, %(old)s, false)",
        {"t": T, "old": T - timedelta(days=3)},
    )
    db.execute("TRUNCATE alerts CASCADE")
    db.execute(
        "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
        " peak_level, opened_at, location) VALUES"
        " ('river', 'gauge-1', 'threshold', 'flood', 'Yahagi caution', 'gauge-1', 'toyota-city', 'open', 2, 2,"
        "  %(t)s, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326)),"
        " ('soil', 'acme-soil-1', 'threshold', 'landslide', 'Acme soil', 'acme-soil-1', 'acme', 'open', 3, 3,"
        "  %(t)s, ST_SetSRID(ST_MakePoint(137.5, 35.2), 4326))",
        {"t": T},
    )
    # Ten-minute water levels over two hours (JST-aligned buckets: 01:00Z is 10:00 JST, whole hours either way).
    for i in range(12):
        db.execute(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (%s, 'gauge-1', 'water_level', %s)",
            (T + timedelta(minutes=10 * i), 1.0 + i),
        )


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, world):
    with api_client(database_url) as c:
        yield c


def _get(client, path, key, accept="application/json", **params):
    return client.get(BASE + path, params=params, headers={**key, "Accept": accept})


def test_devices_are_device_entities_with_their_latest_values_and_the_context_in_a_link_header(client, keys):
    r = _get(client, "/entities", keys["viewer"], type="Device")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in r.headers["link"]
    assert "/ngsi-ld/v1/jsonldContexts/mimamori.jsonld" in r.headers["link"]
    by_id = {e["id"]: e for e in r.json()}
    assert set(by_id) == {"urn:ngsi-ld:Device:gauge-1", "urn:ngsi-ld:Device:rain-1", "urn:ngsi-ld:Device:acme-soil-1"}
    gauge = by_id["urn:ngsi-ld:Device:gauge-1"]
    assert gauge["type"] == "Device"
    assert "@context" not in gauge
    assert gauge["water_level"] == {
        "type": "Property",
        "value": 3.42,
        "observedAt": "2026-11-25T01:00:00Z",
        "unitCode": "MTR",
    }
    assert gauge["deviceCategory"] == {"type": "Property", "value": "river_gauge"}
    assert gauge["location"] == {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [137.179, 35.094]}}


def test_a_partner_sees_only_its_own_tenant(client, keys):
    ids = [e["id"] for e in _get(client, "/entities", keys["partner"], type="Device,Alert").json()]
    assert ids == ["urn:ngsi-ld:Device:acme-soil-1", "urn:ngsi-ld:Alert:" + ids[1].rsplit(":", 1)[1]]
    hidden = _get(client, "/entities/urn:ngsi-ld:Device:gauge-1", keys["partner"])
    assert hidden.status_code == 404
    assert hidden.json()["type"] == ERRORS + "ResourceNotFound"
    stands = _get(client, "/entities", keys["partner"], type="ForestStand")
    assert stands.status_code == 403


def test_ngsild_tenant_narrows_the_citys_keys_and_cannot_widen_a_partners(client, keys):
    narrowed = client.get(
        BASE + "/entities", params={"type": "Device"}, headers={**keys["viewer"], "NGSILD-Tenant": "acme"}
    )
    assert [e["id"] for e in narrowed.json()] == ["urn:ngsi-ld:Device:acme-soil-1"]
    widened = client.get(
        BASE + "/entities", params={"type": "Device"}, headers={**keys["partner"], "NGSILD-Tenant": "toyota-city"}
    )
    assert widened.status_code == 403 and widened.json()["type"].startswith(ERRORS)


def test_ld_json_carries_the_context_in_the_body(client, keys):
    r = _get(client, "/entities/urn:ngsi-ld:Device:gauge-1", keys["viewer"], accept="application/ld+json")
    assert r.headers["content-type"].startswith("application/ld+json")
    assert "link" not in r.headers
    body = r.json()
    assert body["@context"] == ["http://testserver/ngsi-ld/v1/jsonldContexts/mimamori.jsonld"]
    assert body["id"] == "urn:ngsi-ld:Device:gauge-1"


def test_geo_json_is_a_feature_collection_of_the_locations(client, keys):
    r = _get(client, "/entities", keys["viewer"], accept="application/geo+json", type="ForestStand")
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection"
    first = body["features"][0]
    assert first["id"] == "urn:ngsi-ld:ForestStand:7-1"
    assert first["geometry"]["type"] == "MultiPolygon"
    assert first["properties"]["species_1"] == {"type": "Property", "value": "スギ"}


def test_the_context_is_served_by_the_hub_and_names_every_attribute(client):
    r = client.get(BASE + "/jsonldContexts/mimamori.jsonld")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/ld+json")
    terms = r.json()["@context"]
    assert terms["Device"] == "https://smartdatamodels.org/dataModel.Device/Device"
    assert terms["deviceCategory"] == "https://smartdatamodels.org/dataModel.Device/deviceCategory"
    assert "ForestStand" in terms and "alertSource" in terms


def test_attrs_limit_offset_and_count(client, keys):
    r = _get(
        client, "/entities", keys["viewer"], type="Device", attrs="water_level", limit="1", offset="0", count="true"
    )
    assert r.headers["ngsild-results-count"] == "3"
    [only] = r.json()
    assert set(only) <= {"id", "type", "water_level"}
    second = _get(client, "/entities", keys["viewer"], type="Device", limit="1", offset="1").json()
    assert second[0]["id"] != only["id"]
    counted = _get(client, "/entities", keys["viewer"], type="Device", limit="0", count="true")
    assert counted.json() == [] and counted.headers["ngsild-results-count"] == "3"


def test_key_values_are_the_values_alone(client, keys):
    r = _get(client, "/entities/urn:ngsi-ld:Alert:" + _alert_id(client, keys), keys["viewer"], options="keyValues")
    body = r.json()
    assert body["alertSource"] == "urn:ngsi-ld:Device:gauge-1"
    assert body["warningLevel"] == 2
    assert body["severity"] == "low"


def _alert_id(client, keys) -> str:
    [alert] = _get(client, "/entities", keys["viewer"], type="Alert", q='subCategory=="river"').json()
    return alert["id"].rsplit(":", 1)[1]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ('deviceCategory=="river_gauge"', {"gauge-1"}),
        ('deviceCategory=="river_gauge"|deviceCategory=="rain_gauge"', {"gauge-1", "rain-1"}),
        ("online==true", {"gauge-1"}),
        ("dateLastValueReported>2026-11-24T00:00:00Z", {"gauge-1"}),
        ("dateLastValueReported", {"gauge-1", "rain-1"}),
        ('deviceState=="active";(owner=="acme"|online==false)', {"acme-soil-1", "rain-1"}),
        ('deviceCategory!="river_gauge","rain_gauge"', {"acme-soil-1"}),
        ("water_level>3", {"gauge-1"}),
        ("water_level<3", set()),
        ("soil_moisture|water_level==3.42", {"gauge-1", "acme-soil-1"}),
    ],
)
def test_q_selects_devices(client, keys, q, expected):
    r = _get(client, "/entities", keys["viewer"], type="Device", q=q)
    assert r.status_code == 200, r.text
    assert {e["id"].rsplit(":", 1)[1] for e in r.json()} == expected


def test_q_over_relationships_and_ranges(client, keys):
    r = _get(client, "/entities", keys["viewer"], type="Alert", q="alertSource==urn:ngsi-ld:Device:gauge-1")
    assert [e["subCategory"]["value"] for e in r.json()] == ["river"]
    ranged = _get(client, "/entities", keys["viewer"], type="Alert", q="warningLevel==3..5")
    assert [e["subCategory"]["value"] for e in ranged.json()] == ["soil"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": "[137.18,35.095]"}, {"gauge-1"}),
        (
            {"georel": "near;minDistance==2000", "geometry": "Point", "coordinates": "[137.18,35.095]"},
            {"rain-1", "acme-soil-1"},
        ),
        (
            {
                "georel": "within",
                "geometry": "Polygon",
                "coordinates": "[[[137,35],[137.4,35],[137.4,35.3],[137,35.3],[137,35]]]",
            },
            {"gauge-1", "rain-1"},
        ),
        ({"geoQ": "georel=intersects&geometry=Point&coordinates=[137.5,35.2]"}, {"acme-soil-1"}),
    ],
)
def test_geo_queries_select_devices(client, keys, params, expected):
    r = _get(client, "/entities", keys["viewer"], type="Device", **params)
    assert r.status_code == 200, r.text
    assert {e["id"].rsplit(":", 1)[1] for e in r.json()} == expected


def test_stands_intersecting_a_point(client, keys):
    r = _get(
        client,
        "/entities",
        keys["viewer"],
        type="ForestStand",
        georel="intersects",
        geometry="Point",
        coordinates="[137.405,35.205]",
    )
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:ForestStand:7-2"]


@pytest.mark.parametrize(
    "params",
    [
        {"type": "Device", "q": "deviceCategory=="},
        {"type": "Device", "q": "((("},
        {"type": "Device", "q": "noSuchAttribute==1"},
        {"type": "Device", "q": 'online=="yes"'},
        {"type": "Device", "attrs": "noSuchAttribute"},
        {},
        {
            "type": "Device",
            "georel": "within",
            "geometry": "Polygon",
            "coordinates": "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]",
        },
        {"type": "Device", "georel": "within", "geometry": "Polygon", "coordinates": "[[1,2"},
        {"type": "Device", "georel": "near;maxDistance==x", "geometry": "Point", "coordinates": "[1,2]"},
        {"type": "Device", "georel": "within", "geometry": "Point"},
        {"type": "Device", "limit": "-1"},
        {"type": "Device", "offset": "9" * 30},
        {"type": "Device", "q": "water_level>" + "9" * 400},
    ],
)
def test_bad_input_is_a_400_problem_details(client, keys, params):
    r = _get(client, "/entities", keys["viewer"], **params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == ERRORS + "BadRequestData"
    assert body["title"] and body["detail"]


def test_entities_by_id(client, keys):
    ids = "urn:ngsi-ld:Device:gauge-1,urn:ngsi-ld:Device:acme-soil-1,urn:ngsi-ld:Device:nowhere"
    r = _get(client, "/entities", keys["viewer"], id=ids, count="true")
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Device:gauge-1", "urn:ngsi-ld:Device:acme-soil-1"]
    assert r.headers["ngsild-results-count"] == "2"
    mine = _get(client, "/entities", keys["partner"], id=ids)
    assert [e["id"] for e in mine.json()] == ["urn:ngsi-ld:Device:acme-soil-1"]
    mixed = _get(client, "/entities", keys["viewer"], id=ids, q="online==true")
    assert mixed.status_code == 501 and mixed.json()["type"] == ERRORS + "OperationNotSupported"


def test_a_type_the_hub_does_not_hold_matches_nothing(client, keys):
    r = _get(client, "/entities", keys["viewer"], type="NoSuchType", limit="0", count="true")
    assert r.status_code == 200
    assert r.json() == [] and r.headers["ngsild-results-count"] == "0"


def test_pages_past_the_limits_are_403_too_many_results(client, keys):
    for params in ({"type": "Device,Alert", "offset": "9" * 30}, {"type": "Device", "limit": "1001"}):
        r = _get(client, "/entities", keys["viewer"], **params)
        assert r.status_code == 403 and r.json()["type"] == ERRORS + "TooManyResults"


def test_errors_of_keys_and_media_types_are_problem_details_too(client, keys):
    r = client.get(BASE + "/entities", params={"type": "Device"})
    assert r.status_code == 401 and r.json()["type"].startswith(ERRORS)
    r = _get(client, "/entities", keys["viewer"], accept="text/csv", type="Device")
    assert r.status_code == 406 and r.json()["type"].startswith(ERRORS)
    r = _get(client, "/entities/not-a-urn", keys["viewer"])
    assert r.status_code == 400 and r.json()["type"] == ERRORS + "BadRequestData"


def test_temporal_values_of_a_device(client, keys):
    r = _get(
        client,
        "/temporal/entities/urn:ngsi-ld:Device:gauge-1",
        keys["viewer"],
        timerel="between",
        timeAt="2026-11-25T01:00:00Z",
        endTimeAt="2026-11-25T02:00:00Z",
    )
    assert r.status_code == 200, r.text
    series = r.json()["water_level"]
    assert [p["value"] for p in series] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert series[0] == {"type": "Property", "value": 1.0, "observedAt": "2026-11-25T01:00:00Z", "unitCode": "MTR"}


def test_temporal_aggregated_values_use_the_hubs_buckets(client, keys):
    r = _get(
        client,
        "/temporal/entities",
        keys["viewer"],
        type="Device",
        q='deviceCategory=="river_gauge"',
        attrs="water_level",
        timerel="between",
        timeAt="2026-11-25T01:00:00Z",
        endTimeAt="2026-11-25T03:00:00Z",
        options="aggregatedValues",
        aggrMethods="avg,max,totalCount",
        aggrPeriodDuration="PT1H",
    )
    assert r.status_code == 200, r.text
    [gauge] = r.json()
    level = gauge["water_level"]
    assert level["avg"] == [
        [3.5, "2026-11-25T01:00:00Z", "2026-11-25T02:00:00Z"],
        [9.5, "2026-11-25T02:00:00Z", "2026-11-25T03:00:00Z"],
    ]
    assert [v for v, _, _ in level["max"]] == [6.0, 12.0]
    assert [v for v, _, _ in level["totalCount"]] == [6.0, 6.0]


def test_temporal_values_are_confined_to_the_tenant(client, keys):
    r = _get(client, "/temporal/entities/urn:ngsi-ld:Device:gauge-1", keys["partner"])
    assert r.status_code == 404
    ids = [e["id"] for e in _get(client, "/temporal/entities", keys["partner"], type="Device").json()]
    assert ids == ["urn:ngsi-ld:Device:acme-soil-1"]


def test_bad_temporal_parameters_are_400s(client, keys):
    for params in (
        {"timerel": "sometime", "timeAt": "2026-11-25T01:00:00Z"},
        {"timerel": "between", "timeAt": "2026-11-25T01:00:00Z"},
        {"timerel": "after", "timeAt": "yesterday"},
        {"options": "aggregatedValues", "aggrMethods": "stddev", "aggrPeriodDuration": "PT1H"},
        {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "P1M"},
    ):
        r = _get(client, "/temporal/entities/urn:ngsi-ld:Device:gauge-1", keys["viewer"], **params)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["type"] == ERRORS + "BadRequestData"


def test_the_routes_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/entities", "/entities/{entity_id}", "/temporal/entities", "/temporal/entities/{entity_id}"):
        assert BASE + path in paths


def _ngsi_ld_part() -> str:
    """docs/interop.md's NGSI-LD part (its SensorThings part has examples of its own, run by test_sta_docs)."""
    return (ROOT / "docs/interop.md").read_text("utf-8").split("\n## NGSI-LD\n", 1)[1]


def _doc_examples() -> list[tuple[str, str]]:
    text = _ngsi_ld_part()
    out = []
    for line in text.splitlines():
        if line.startswith("curl ") and " -X " not in line:  # the reads; the subscription's POST is checked below
            accept = re.search(r'-H "Accept: ([^"]+)"', line)
            url = re.search(r'"http://127\.0\.0\.1:8000(/[^"]+)"', line)
            assert url, line
            out.append((url[1], accept[1] if accept else "application/json"))
    return out


@pytest.mark.parametrize(("path", "accept"), _doc_examples())
def test_the_documented_examples_answer(client, keys, path, accept):
    r = client.get(path, headers={**keys["admin"], "Accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(accept)
    assert r.json()


def test_the_documented_subscription_is_one_the_hub_takes():
    from api.ngsi_ld.subscriptions import parse_subscription

    text = _ngsi_ld_part()
    body = re.search(r"-X POST \S+ -d '(.*?)'", text, re.S)
    assert body
    spec = parse_subscription(json.loads(body[1]))
    assert (spec.min_level, spec.hazards) == (3, ["flood"])
