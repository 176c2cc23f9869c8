"""SensorThings API 1.1 reads at /sta/v1.1 against the real database: entity sets, navigation, paging, options,
tenant confinement and STA's 400s."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.api.sta_support import POINTS, seed
from tests.geo_support import api_client, role_keys

STA = "/sta/v1.1"


@pytest.fixture
def series(db, city):
    return seed(db)


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, series):
    with api_client(database_url) as c:
        yield c


def get(client, path, key, **params):
    answer = client.get(STA + path, headers=key, params=params)
    return answer


def test_the_service_root_lists_the_eight_entity_sets(client):
    doc = client.get(STA).json()
    assert {v["name"] for v in doc["value"]} == {
        "Things", "Locations", "HistoricalLocations", "Sensors", "ObservedProperties", "Datastreams",
        "Observations", "FeaturesOfInterest",
    }  # fmt: skip
    assert all(v["url"].endswith(STA + "/" + v["name"]) for v in doc["value"])


def test_things_are_the_devices_with_self_and_navigation_links(client, keys):
    doc = get(client, "/Things", keys["viewer"]).json()
    ids = {t["@iot.id"] for t in doc["value"]}
    assert ids == {"gauge-1", "rain-1", "acme-soil-1"}
    gauge = next(t for t in doc["value"] if t["@iot.id"] == "gauge-1")
    assert gauge["@iot.selfLink"].endswith("/sta/v1.1/Things('gauge-1')")
    assert gauge["Datastreams@iot.navigationLink"].endswith("/Things('gauge-1')/Datastreams")
    assert gauge["properties"]["deviceType"] == "river_gauge"
    assert gauge["properties"]["site"]["caution_m"] == 4.5


def test_a_partner_sees_only_its_own_tenants_entities(client, keys, series):
    partner = keys["partner"]
    assert [t["@iot.id"] for t in get(client, "/Things", partner).json()["value"]] == ["acme-soil-1"]
    streams = get(client, "/Datastreams", partner).json()["value"]
    assert [d["@iot.id"] for d in streams] == [series["acme-soil-1/soil_moisture"]]
    gauge_stream = series["gauge-1/water_level"]
    assert get(client, f"/Datastreams({gauge_stream})", partner).status_code == 404
    assert get(client, f"/Datastreams({gauge_stream})/Observations", partner).status_code == 404
    assert get(client, "/Things('gauge-1')", partner).status_code == 404
    observations = get(client, "/Observations", partner, **{"$top": "1000"}).json()["value"]
    assert len(observations) == POINTS
    assert {s["@iot.id"] for s in get(client, "/Sensors", partner).json()["value"]} == {"soil_moisture"}


def test_a_datastream_carries_its_unit_from_the_catalogue(client, keys, series):
    ds = get(client, f"/Datastreams({series['gauge-1/water_level']})", keys["viewer"]).json()
    assert ds["unitOfMeasurement"]["symbol"] == "m"
    assert ds["observationType"].endswith("OM_Measurement")
    thing = get(client, f"/Datastreams({series['gauge-1/water_level']})/Thing", keys["viewer"]).json()
    assert thing["@iot.id"] == "gauge-1"
    prop = get(client, f"/Datastreams({series['gauge-1/water_level']})/ObservedProperty", keys["viewer"]).json()
    assert prop["@iot.id"] == "water_level"
    sensor = get(client, f"/Datastreams({series['gauge-1/water_level']})/Sensor", keys["viewer"]).json()
    assert sensor["@iot.id"] == "river_gauge"


def test_observations_of_a_datastream_page_by_keyset_to_the_end(client, keys, series):
    path = f"/Datastreams({series['gauge-1/water_level']})/Observations"
    answer = get(client, path, keys["viewer"], **{"$top": "50", "$count": "true", "$orderby": "phenomenonTime"})
    doc = answer.json()
    assert doc["@iot.count"] == POINTS
    seen = [o["phenomenonTime"] for o in doc["value"]]
    while "@iot.nextLink" in doc:
        link = urlsplit(doc["@iot.nextLink"])
        assert "%24skiptoken" in link.query or "$skiptoken" in link.query
        doc = client.get(link.path + "?" + link.query, headers=keys["viewer"]).json()
        seen += [o["phenomenonTime"] for o in doc["value"]]
    assert len(seen) == POINTS
    assert seen == sorted(seen) and len(set(seen)) == POINTS


def test_an_observation_id_leads_back_to_the_observation(client, keys, series):
    first = get(client, f"/Datastreams({series['rain-1/rainfall']})/Observations", keys["viewer"],
                **{"$top": "1"}).json()["value"][0]  # fmt: skip
    again = client.get(first["@iot.selfLink"], headers=keys["viewer"]).json()
    assert again == first
    assert again["Datastream@iot.navigationLink"].endswith("/Datastream")
    result = client.get(first["@iot.selfLink"] + "/result/$value", headers=keys["viewer"]).json()
    assert result == first["result"]


def test_select_skip_and_orderby(client, keys, series):
    path = f"/Datastreams({series['gauge-1/water_level']})/Observations"
    doc = get(client, path, keys["viewer"], **{"$select": "result", "$orderby": "result desc", "$top": "3",
                                               "$skip": "1"}).json()  # fmt: skip
    assert [set(o) for o in doc["value"]] == [{"result"}] * 3
    assert [o["result"] for o in doc["value"]] == pytest.approx([1 + 142 / 100, 1 + 141 / 100, 1 + 140 / 100])


def test_the_feature_of_interest_is_the_stand_the_device_stands_in(client, keys):
    features = {f["@iot.id"]: f for f in get(client, "/FeaturesOfInterest", keys["viewer"]).json()["value"]}
    assert set(features) == {"stand:7-1", "site:gauge-1", "site:rain-1"}
    assert features["stand:7-1"]["feature"]["type"] == "MultiPolygon"
    obs = get(client, "/FeaturesOfInterest('stand:7-1')/Observations", keys["viewer"], **{"$count": "true"}).json()
    assert obs["@iot.count"] == POINTS


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/Observations", {"$filter": "result gt"}),
        ("/Observations", {"$filter": "nosuch eq 1"}),
        ("/Observations", {"$filter": "result eq 'text'"}),
        ("/Observations", {"$filter": "geo.intersects(result, geography'POINT(1 2)')"}),
        ("/Locations", {"$filter": "geo.intersects(location, geography'POLYGON((0 0, 1 1, 0 0')"}),
        ("/Locations", {"$filter": "st_within(location, geography'POLYGON((0 0,1 1,1 0,0 1,0 0))')"}),
        ("/Things", {"$expand": "Datastreams/" * 20 + "Thing"}),
        ("/Things", {"$expand": "Nothing"}),
        ("/Things", {"$select": "nosuch"}),
        ("/Things", {"$orderby": "properties"}),
        ("/Things", {"$top": "-1"}),
        ("/Things", {"$top": "100000"}),
        ("/Things", {"$count": "maybe"}),
        ("/Things", {"$skiptoken": "garbage"}),
        ("/Things", {"$bogus": "1"}),
        ("/Nothings", {}),
        ("/Things('gauge-1')/Nothing", {}),
        ("/Observations", {"$filter": "(" * 100 + "result gt 1" + ")" * 100}),
        ("/Observations", {"$filter": "result div 0 gt 1e999"}),
        ("/Things", {"$filter": "name eq 'a\x00b'"}),  # text PostgreSQL cannot take
        ("/Things('a%00b')", {}),
        ("/Observations", {"$filter": "phenomenonTime gt now() add duration'P999999999D'"}),
        ("/Datastreams", {"$filter": "substring(name, 1e300) eq 'x'"}),
    ],
)
def test_bad_input_is_a_400_in_stas_error_format(client, keys, path, params):
    answer = get(client, path, keys["viewer"], **params)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == 400 and body["type"] == "error" and body["message"]


def test_sta_routes_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/sta/v1.1/Things" in paths
    assert "/sta/v1.1/Datastreams({key})" in paths
    assert "post" in paths["/sta/v1.1/Observations"]
    assert paths["/sta/v1.1/Observations"]["get"]["security"]


def test_a_stand_shared_with_another_tenant_shows_a_partner_only_its_own_observations(client, keys, db):
    from devices import upsert_device

    upsert_device(db, device_id="city-soil-2", tenant_id="toyota-city", device_type="soil_moisture", lon=137.495,
                  lat=35.195)  # fmt: skip
    db.execute(
        "INSERT INTO readings (time, device_id, metric, value) VALUES ('2026-11-01T00:00:00Z', 'city-soil-2',"
        " 'soil_moisture', 0.5)"
    )
    path = "/FeaturesOfInterest('stand:7-1')/Observations"
    assert get(client, path, keys["viewer"], **{"$count": "true"}).json()["@iot.count"] == POINTS + 1
    assert get(client, path, keys["partner"], **{"$count": "true"}).json()["@iot.count"] == POINTS
    things = get(client, "/Things", keys["partner"], **{"$filter": "id eq 'city-soil-2'"}).json()["value"]
    assert things == []


def test_a_datastreams_phenomenon_time_spans_its_readings(client, keys, series):
    ds = get(client, f"/Datastreams({series['rain-1/rainfall']})", keys["viewer"]).json()
    assert ds["phenomenonTime"] == "2026-11-01T00:00:00.000000Z/2026-11-01T23:50:00.000000Z"


@pytest.fixture
def emptied_series(db, series):
    """A series whose readings have all gone (retention): a Datastream without phenomenonTime. Series rows outlive
    the tests' truncation, so this one is removed again."""
    db.execute("INSERT INTO series (device_id, metric) VALUES ('rain-1', 'battery') ON CONFLICT DO NOTHING")
    yield
    db.execute("DELETE FROM series WHERE device_id = 'rain-1' AND metric = 'battery'")


@pytest.mark.parametrize("orderby", ["phenomenonTime", "phenomenonTime desc", "name desc,phenomenonTime"])
def test_paging_sorted_by_a_property_that_may_be_null_sees_every_entity_once(client, keys, emptied_series, orderby):
    everything = get(client, "/Datastreams", keys["viewer"], **{"$orderby": orderby}).json()["value"]
    assert any(d["phenomenonTime"] is None for d in everything)
    seen, doc = [], get(client, "/Datastreams", keys["viewer"], **{"$orderby": orderby, "$top": "1"}).json()
    while True:
        seen += [d["@iot.id"] for d in doc["value"]]
        if "@iot.nextLink" not in doc:
            break
        doc = client.get(doc["@iot.nextLink"], headers=keys["viewer"]).json()
    assert seen == [d["@iot.id"] for d in everything]
