"""STA ``$filter`` and ``$expand`` over the real database: comparison, logical and arithmetic operators, time and
string functions, navigation paths, the geospatial functions, and nested expansion with its own options."""

from __future__ import annotations

import pytest

from tests.api.sta_support import POINTS, seed
from tests.geo_support import api_client, role_keys

STA = "/sta/v1.1"


@pytest.fixture
def series(db, city):
    return seed(db)


@pytest.fixture
def viewer(db, city):
    return role_keys(db)["viewer"]


@pytest.fixture
def client(database_url, series):
    with api_client(database_url) as c:
        yield c


def values(client, key, path, flt, **more):
    answer = client.get(STA + path, headers=key, params={"$filter": flt, "$top": "1000", **more})
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def test_comparison_and_logical_operators_on_results(client, viewer, series):
    path = f"/Datastreams({series['rain-1/rainfall']})/Observations"
    assert len(values(client, viewer, path, "result eq 4")) == POINTS // 5 + (POINTS % 5 > 4)
    hits = values(client, viewer, path, "result ge 1 and result lt 3 or result eq 4")
    assert {o["result"] for o in hits} == {1.0, 2.0, 4.0}
    assert {o["result"] for o in values(client, viewer, path, "not (result gt 0)")} == {0.0}


def test_arithmetic_operators(client, viewer, series):
    path = f"/Datastreams({series['rain-1/rainfall']})/Observations"
    assert {o["result"] for o in values(client, viewer, path, "(result add 1) mul 2 eq 10")} == {4.0}
    assert {o["result"] for o in values(client, viewer, path, "result mod 2 eq 1")} == {1.0, 3.0}
    assert {o["result"] for o in values(client, viewer, path, "result div 2 eq 1.5")} == {3.0}
    assert {o["result"] for o in values(client, viewer, path, "result sub 1 eq -1")} == {0.0}


def test_time_comparisons_and_functions(client, viewer, series):
    path = f"/Datastreams({series['gauge-1/water_level']})/Observations"
    window = "phenomenonTime ge 2026-11-01T01:00:00Z and phenomenonTime lt 2026-11-01T02:00:00Z"
    assert len(values(client, viewer, path, window)) == 6
    assert len(values(client, viewer, path, "hour(phenomenonTime) eq 23")) == 6
    assert len(values(client, viewer, path, "day(phenomenonTime) eq 1 and minute(phenomenonTime) eq 50")) == 24
    assert len(values(client, viewer, path, "phenomenonTime lt 2026-11-01T00:00:00Z add duration'PT30M'")) == 3
    assert len(values(client, viewer, path, "resultTime ge phenomenonTime")) == POINTS
    assert len(values(client, viewer, path, "phenomenonTime gt now()")) == 0
    assert len(values(client, viewer, path, "date(phenomenonTime) eq 2026-11-01")) == POINTS


def test_string_functions_and_json_properties(client, viewer):
    names = lambda flt: {t["@iot.id"] for t in values(client, viewer, "/Things", flt)}  # noqa: E731
    assert names("startswith(name, 'gauge')") == {"gauge-1"}
    assert names("substringof('soil', name)") == {"acme-soil-1"}
    assert names("endswith(tolower(name), '-1') and length(name) eq 6") == {"rain-1"}
    assert names("properties/deviceType eq 'river_gauge'") == {"gauge-1"}
    assert names("properties/site/caution_m gt 4") == {"gauge-1"}
    assert names("id in ('rain-1', 'gauge-1')") == {"rain-1", "gauge-1"}


def test_navigation_paths_in_filters(client, viewer, series):
    hits = values(client, viewer, "/Observations", "Datastream/Thing/id eq 'rain-1' and result eq 0")
    assert len(hits) == POINTS // 5 + 1
    streams = values(client, viewer, "/Datastreams", "ObservedProperty/name eq 'battery'")
    assert [d["@iot.id"] for d in streams] == [series["gauge-1/battery"]]
    assert values(client, viewer, "/Datastreams", "Thing/properties/deviceType eq 'rain_gauge'")[0]["name"] == (
        "rain-1 rainfall"
    )


def test_geospatial_functions_on_locations_and_features(client, viewer):
    box = "geography'POLYGON((137.4 35.1, 137.6 35.1, 137.6 35.3, 137.4 35.3, 137.4 35.1))'"
    assert [x["@iot.id"] for x in values(client, viewer, "/Locations", f"geo.intersects(location, {box})")] == [
        "acme-soil-1"
    ]
    assert [x["@iot.id"] for x in values(client, viewer, "/Locations", f"st_within(location, {box})")] == [
        "acme-soil-1"
    ]
    near = values(client, viewer, "/Locations", "geo.distance(location, geography'POINT(137.18 35.09)') lt 0.01")
    assert [x["@iot.id"] for x in near] == ["gauge-1"]
    features = values(client, viewer, "/FeaturesOfInterest", "st_contains(feature, geography'POINT(137.5 35.2)')")
    assert [f["@iot.id"] for f in features] == ["stand:7-1"]


def test_expand_nests_with_its_own_options(client, viewer, series):
    answer = client.get(
        STA + "/Things('gauge-1')",
        headers=viewer,
        params={
            "$expand": "Datastreams($select=name,unitOfMeasurement;$orderby=name;"
            "$expand=Observations($top=2;$orderby=phenomenonTime desc;$count=true)),Locations",
        },
    )
    thing = answer.json()
    assert answer.status_code == 200, thing
    assert [d["name"] for d in thing["Datastreams"]] == ["gauge-1 battery", "gauge-1 water_level"]
    water = thing["Datastreams"][1]
    assert set(water) == {"name", "unitOfMeasurement", "Observations", "Observations@iot.count",
                          "Observations@iot.nextLink"}  # fmt: skip
    assert water["Observations@iot.count"] == POINTS
    assert [o["result"] for o in water["Observations"]] == pytest.approx([2.43, 2.42])
    assert thing["Locations"][0]["location"] == {"type": "Point", "coordinates": [137.179, 35.094]}


def test_an_expanded_collections_next_link_continues_it(client, viewer, series):
    ds = client.get(
        STA + f"/Datastreams({series['rain-1/rainfall']})",
        headers=viewer,
        params={"$expand": "Observations($top=100)"},
    ).json()
    rest = client.get(ds["Observations@iot.nextLink"], headers=viewer).json()
    assert len(ds["Observations"]) + len(rest["value"]) == POINTS
    assert ds["Observations"][-1]["phenomenonTime"] < rest["value"][0]["phenomenonTime"]


def test_path_form_of_expand(client, viewer):
    doc = client.get(STA + "/Things('rain-1')", headers=viewer, params={"$expand": "Datastreams/Sensor"}).json()
    assert doc["Datastreams"][0]["Sensor"]["@iot.id"] == "rain_gauge"


def test_an_expansion_too_large_to_run_is_a_400(client, viewer, series, monkeypatch):
    from devices.sta import queries

    monkeypatch.setattr(queries, "MAX_EXPANSIONS", 200)  # the seed is a day of readings, not a month
    answer = client.get(
        STA + f"/Datastreams({series['rain-1/rainfall']})/Observations",
        headers=viewer,
        params={"$top": "1000", "$expand": "Datastream($expand=Thing($expand=Datastreams($expand=Observations)))"},
    )
    assert answer.status_code == 400
    assert "$expand" in answer.json()["message"]
