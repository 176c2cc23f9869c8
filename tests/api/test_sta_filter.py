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

    monkeypatch.setattr(queries, "MAX_EXPANDED", 200)  # the seed is a day of readings, not a month
    answer = client.get(
        STA + "/Things",
        headers=viewer,
        params={"$expand": "Datastreams($expand=Observations($top=1000))"},  # 576 Observations
    )
    assert answer.status_code == 400
    assert "$expand" in answer.json()["message"]


SOUP = [
    "result", "phenomenonTime", "resultTime", "id", "Datastream/name", "Datastream/Thing/properties/site/caution_m",
    "FeatureOfInterest/feature", "eq", "ne", "gt", "le", "and", "or", "not", "add", "sub", "mul", "div", "mod", "(",
    ")", ",", "0", "-1", "2.5", "1e308", "99999999999999999999", "'x'", "'3.1790000000000000'", "null", "true",
    "2026-11-01T00:00:00Z", "9999-12-31T23:59:59Z", "2026-11-01", "duration'P3650000D'", "duration'PT1S'",
    "geography'POINT(137.5 35.2)'", "geography'POLYGON((0 0,1 1,1 0,0 1,0 0))'", "geo.distance(", "geo.intersects(",
    "st_within(", "st_relate(", "'T*F**F***'", "year(", "hour(", "date(", "substring(", "length(", "round(", "now()",
    "maxdatetime()", "in", "'a\\u0000b'",
]  # fmt: skip


def test_generated_filters_are_answered_or_refused_never_failed(client, viewer):
    """Any soup of $filter tokens over Observations is a 200 or an STA 400, never a server error."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.sampled_from(SOUP), min_size=1, max_size=9).map(" ".join))
    def check(flt):
        answer = client.get(STA + "/Observations", headers=viewer, params={"$filter": flt, "$top": "5"})
        assert answer.status_code in (200, 400), (flt, answer.status_code, answer.text)
        if answer.status_code == 400:
            assert answer.json()["type"] == "error"

    check()


def _expressions():
    """Conditions over Observations whose operands agree in type (numbers, times, texts, geometries)."""
    from hypothesis import strategies as st

    def grow(leaves, *wraps):
        return st.recursive(leaves, lambda inner: st.one_of(*(w(inner) for w in wraps)), max_leaves=3)

    def arithmetic(inner):
        ops = st.sampled_from(["add", "sub", "mul", "div", "mod"])
        return st.tuples(inner, ops, inner).map(lambda t: f"({' '.join(t)})")

    geometries = st.sampled_from(
        ["FeatureOfInterest/feature", "geography'POINT(137.5 35.2)'", "geography'LINESTRING(137 35, 138 36)'"]
    )
    texts = grow(
        st.sampled_from(["Datastream/name", "Datastream/Thing/name", "'m'", "'rain-1 rainfall'"]),
        lambda inner: st.tuples(st.sampled_from(["tolower", "toupper", "trim"]), inner).map(
            lambda t: f"{t[0]}({t[1]})"
        ),
    )
    times = grow(
        st.sampled_from(["phenomenonTime", "resultTime", "2026-11-01T05:00:00Z", "now()"]),
        lambda inner: st.tuples(inner, st.sampled_from(["duration'P1D'", "duration'PT30M'"])).map(
            lambda t: f"({t[0]} sub {t[1]})"
        ),
    )
    numbers = grow(
        st.one_of(
            st.sampled_from(["result", "Datastream/id", "0", "-3", "1.5e300", "2.5"]),
            times.map(lambda t: f"hour({t})"),
            texts.map(lambda t: f"length({t})"),
            st.tuples(geometries, geometries).map(lambda t: f"geo.distance({t[0]}, {t[1]})"),
        ),
        arithmetic,
        lambda inner: inner.map(lambda n: f"round({n})"),
    )
    comparisons = st.one_of(
        *(
            st.tuples(kind, st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), kind).map(" ".join)
            for kind in (numbers, times, texts)
        ),
        st.tuples(st.sampled_from(["st_within", "geo.intersects", "st_disjoint"]), geometries, geometries).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(texts, texts).map(lambda t: f"substringof({t[0]}, {t[1]})"),
        numbers.map(lambda n: f"{n} eq null"),
    )
    return st.recursive(
        comparisons,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({' '.join(t)})"),
            inner.map(lambda e: f"not ({e})"),  # `not` binds tighter than `eq`
        ),
        max_leaves=3,
    )


def test_generated_expressions_are_answered_or_refused_never_failed(client, viewer):
    """Well-formed, well-typed conditions over every kind of operand are answered (200), never a server error."""
    from hypothesis import HealthCheck, given, settings

    seen = []

    @settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(_expressions())
    def check(flt):
        answer = client.get(STA + "/Observations", headers=viewer, params={"$filter": flt, "$top": "3"})
        seen.append(answer.status_code)
        assert answer.status_code in (200, 400), (flt, answer.status_code, answer.text)

    check()
    assert seen.count(200) >= len(seen) * 0.9, seen  # well-typed: refused only for values out of range


def test_paths_through_collections_mean_any_of_them(client, viewer):
    names = lambda path, flt: {x["@iot.id"] for x in values(client, viewer, path, flt)}  # noqa: E731
    assert names("/Things", "Datastreams/ObservedProperty/id eq 'battery'") == {"gauge-1"}
    assert names("/Things", "Datastreams/Observations/result gt 3.7") == {"rain-1"}  # rainfall reaches 4
    box = "geography'POLYGON((137.4 35.1, 137.6 35.1, 137.6 35.3, 137.4 35.3, 137.4 35.1))'"
    assert names("/Things", f"geo.intersects(Locations/location, {box})") == {"acme-soil-1"}
    assert names("/Things", f"not geo.intersects(Locations/location, {box})") == {"gauge-1", "rain-1"}
    assert names("/Sensors", "Datastreams/Thing/id eq 'rain-1' and Datastreams/Thing/id eq 'rain-1'") == {"rain_gauge"}


def test_each_parent_of_a_page_gets_its_own_expanded_page(client, viewer):
    things = client.get(
        STA + "/Things", headers=viewer, params={"$expand": "Datastreams($count=true;$top=1;$orderby=name)"}
    ).json()["value"]
    by_id = {t["@iot.id"]: t for t in things}
    assert by_id["gauge-1"]["Datastreams@iot.count"] == 2
    assert [d["name"] for d in by_id["gauge-1"]["Datastreams"]] == ["gauge-1 battery"]
    rest = client.get(by_id["gauge-1"]["Datastreams@iot.nextLink"], headers=viewer).json()["value"]
    assert [d["name"] for d in rest] == ["gauge-1 water_level"]
    assert by_id["rain-1"]["Datastreams@iot.count"] == 1
    assert "Datastreams@iot.nextLink" not in by_id["rain-1"]
    assert [d["name"] for d in by_id["rain-1"]["Datastreams"]] == ["rain-1 rainfall"]
