"""NGSI-LD's pure parts, tested directly: the q grammar and its translation, geo-queries, temporal parameters,
entity rendering and media-type negotiation. No services."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql
from pyproj import Geod

from api.ngsi_ld import geoquery, model, qlang, subscriptions, temporal
from api.ngsi_ld.problems import NgsiLdError
from api.routes.ngsi_ld import negotiate
from geo import COLLECTIONS
from geo.cql2 import columns_of, to_sql

BAD = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


def _bad(call, *args):
    with pytest.raises(NgsiLdError) as caught:
        call(*args)
    assert caught.value.status == 400 and caught.value.type_uri == BAD
    return caught.value.detail


# -- q --------------------------------------------------------------------------------------------------------------


def test_and_binds_tighter_than_or():
    tree = qlang.parse_q("a==1|b==2;c==3")
    assert tree == qlang.Or((qlang.Term("a", "==", 1), qlang.And((qlang.Term("b", "==", 2), qlang.Term("c", "==", 3)))))


def test_parentheses_group():
    tree = qlang.parse_q("(a==1|b==2);c")
    assert tree == qlang.And((qlang.Or((qlang.Term("a", "==", 1), qlang.Term("b", "==", 2))), qlang.Term("c", None)))


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('a=="x y"', "x y"),
        ('a=="say \\"hi\\""', 'say "hi"'),
        ("a==-1.5e3", -1500.0),
        ("a==true", True),
        ("a==2026-11-25T09:00:00+09:00", datetime(2026, 11, 25, tzinfo=UTC)),
        ("a==1..5", qlang.Range(1, 5)),
        ('a=="x","y"', ("x", "y")),
        ("a==urn:ngsi-ld:Device:g-1", qlang.Uri("urn:ngsi-ld:Device:g-1")),
    ],
)
def test_values(text, value):
    term = qlang.parse_q(text)
    assert isinstance(term, qlang.Term)
    assert term.value == value


@pytest.mark.parametrize("text", ["", "a==", "==1", "a==x", "(a==1", "a==1)", "a>1..3", "a>true", "a==1;", "a===1"])
def test_malformed_q_is_bad_request_data(text):
    _bad(qlang.parse_q, text)


def test_deep_nesting_is_refused_before_parsing():
    with pytest.raises(NgsiLdError) as caught:
        qlang.parse_q("(" * 500 + "a" + ")" * 500)
    assert caught.value.type_uri.endswith("TooComplexQuery")


_ATTRS = {
    "level": qlang.Attribute("level", "integer"),
    "name": qlang.Attribute("name", "string"),
    "on": qlang.Attribute("online", "boolean"),
    "seen": qlang.Attribute("last_seen", "date-time"),
    "src": qlang.Attribute("device_id", "string", "urn:ngsi-ld:Device:"),
}


def test_translation_to_cql2_json():
    tree = qlang.parse_q('level>=2;(name!="a","b"|on);src==urn:ngsi-ld:Device:g-1;seen<2026-01-01')
    assert qlang.to_cql2(tree, _ATTRS, "T") == {
        "op": "and",
        "args": [
            {"op": ">=", "args": [{"property": "level"}, 2]},
            {
                "op": "or",
                "args": [
                    {"op": "not", "args": [{"op": "in", "args": [{"property": "name"}, ["a", "b"]]}]},
                    {"op": "not", "args": [{"op": "isNull", "args": [{"property": "online"}]}]},
                ],
            },
            {"op": "=", "args": [{"property": "device_id"}, "g-1"]},
            {"op": "<", "args": [{"property": "last_seen"}, {"timestamp": "2026-01-01T00:00:00Z"}]},
        ],
    }


@pytest.mark.parametrize(
    "text", ["nope==1", 'level=="two"', "on==1", "seen==3", "src==urn:ngsi-ld:Alert:1", "name.sub==1", "name==1"]
)
def test_unknown_attributes_and_unlike_values_are_bad_request_data(text):
    _bad(qlang.to_cql2, qlang.parse_q(text), _ATTRS, "T")


def test_pattern_operators_parse_and_are_not_supported():
    with pytest.raises(NgsiLdError) as caught:
        qlang.to_cql2(qlang.parse_q("name~=ab.*"), _ATTRS, "T")
    assert caught.value.status == 501


# Trees of q, rendered as text, parse back to themselves.
_names = st.sampled_from(["a", "b_2", "level", "X9"])
_scalars = st.one_of(
    st.integers(-(10**9), 10**9),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\'), max_size=8),
    st.booleans(),
)


def _render_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


_terms = st.builds(
    lambda n, op, v: (qlang.Term(n, op, v), f"{n}{op}{_render_scalar(v)}"),
    _names,
    st.sampled_from(["==", "!="]),
    _scalars,
) | st.builds(lambda n: (qlang.Term(n, None), n), _names)


def _combine(children):
    return st.builds(
        lambda parts, kind: (
            (qlang.And if kind == ";" else qlang.Or)(tuple(p for p, _ in parts)),
            "(" + kind.join(t for _, t in parts) + ")",
        ),
        st.lists(children, min_size=2, max_size=3),
        st.sampled_from([";", "|"]),
    )


@settings(max_examples=200, deadline=None)
@given(st.recursive(_terms, _combine, max_leaves=8))
def test_rendered_trees_parse_back(pair):
    tree, text = pair
    assert qlang.parse_q(text) == tree


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab=!<>~;|()".,:-0123456789TZurn ', max_size=40))
def test_any_text_parses_or_is_refused_as_problem_details(text):
    try:
        tree = qlang.parse_q(text)
    except NgsiLdError as exc:
        assert exc.status in (400, 403)
        return
    try:
        qlang.to_cql2(tree, {"a": qlang.Attribute("a", "number"), "b": qlang.Attribute("b", "string")}, "T")
    except NgsiLdError as exc:
        assert exc.status in (400, 501)


def test_translated_q_is_taken_by_the_stores_filter_compiler():
    devices = model.DEVICE
    tree = qlang.parse_q('deviceCategory=="river_gauge";online==true;dateLastValueReported>2026-01-01T00:00:00Z')
    ast = qlang.to_cql2(tree, devices.attributes, "Device")
    _clause, params = to_sql(ast, columns_of(COLLECTIONS["devices"], "d"), sql.Identifier("d", "location"))
    assert "river_gauge" in params.values() and True in params.values()
    assert len(params) == 3  # every value of q a bound parameter, none written into the statement


# -- geo-queries ----------------------------------------------------------------------------------------------------


def test_near_is_a_geodesic_circle_of_the_distance():
    ast = geoquery.parse_geoq({"georel": "near;maxDistance==1500", "geometry": "Point", "coordinates": "[137.1,35.1]"})
    assert ast["op"] == "s_intersects"
    ring = ast["args"][1]["coordinates"][0]
    geod = Geod(ellps="WGS84")
    for lon, lat in ring[:: len(ring) // 8]:
        _, _, d = geod.inv(137.1, 35.1, lon, lat)
        assert math.isclose(d, 1500, rel_tol=1e-6)


def test_min_distance_is_outside_the_circle():
    ast = geoquery.parse_geoq({"georel": "near;minDistance==10", "geometry": "Point", "coordinates": "[1,2]"})
    assert ast["op"] == "not" and ast["args"][0]["op"] == "s_intersects"


@pytest.mark.parametrize("georel", ["within", "contains", "intersects", "equals", "disjoint", "overlaps"])
def test_relations(georel):
    coords = "[[[0,0],[1,0],[1,1],[0,1],[0,0]]]"
    ast = geoquery.parse_geoq({"georel": georel, "geometry": "Polygon", "coordinates": coords})
    assert ast == {
        "op": "s_" + georel,
        "args": [{"property": "geometry"}, json.loads(f'{{"type": "Polygon", "coordinates": {coords}}}')],
    }


@pytest.mark.parametrize(
    "params",
    [
        {"georel": "within", "geometry": "Polygon"},
        {"georel": "within", "geometry": "Circle", "coordinates": "[1,2]"},
        {"georel": "within", "geometry": "Polygon", "coordinates": "[[[0,0],[1,1],[1,0],[0,1],[0,0]]]"},
        {"georel": "within", "geometry": "Polygon", "coordinates": "[[[0,0],[1,0],[0,0]]]"},
        {"georel": "within", "geometry": "Point", "coordinates": "[200,0]"},
        {"georel": "within", "geometry": "Point", "coordinates": "[1,NaN]"},
        {"georel": "within", "geometry": "Point", "coordinates": '{"x":1}'},
        {"georel": "near;maxDistance==5", "geometry": "Polygon", "coordinates": "[[[0,0],[1,0],[1,1],[0,0]]]"},
        {"georel": "near;maxDistance==1e99", "geometry": "Point", "coordinates": "[1,2]"},
        {"georel": "close", "geometry": "Point", "coordinates": "[1,2]"},
        {"georel": "within", "geometry": "Point", "coordinates": "[1,2]", "geoproperty": "observationSpace"},
    ],
)
def test_broken_geo_queries_are_bad_request_data(params):
    _bad(geoquery.parse_geoq, params)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(geoquery.GEOMETRIES),
    st.recursive(
        st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=3), st.none()),
        lambda kids: st.lists(kids, max_size=5),
        max_leaves=20,
    ),
)
def test_any_coordinates_are_a_geometry_or_bad_request_data(kind, coordinates):
    text = json.dumps(coordinates)
    try:
        ast = geoquery.parse_geoq({"georel": "intersects", "geometry": kind, "coordinates": text})
    except NgsiLdError as exc:
        assert exc.status == 400
        return
    assert ast["args"][1]["type"] == kind


# -- temporal -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes"), [("PT1H", 60), ("P1D", 1440), ("PT10M", 10), ("P1DT12H", 2160), ("P1W", 10080)]
)
def test_durations(text, minutes):
    assert temporal.duration_minutes(text) == minutes


@pytest.mark.parametrize("text", ["P1M", "P1Y", "PT30S", "1H", "P", "PT"])
def test_durations_the_buckets_cannot_take(text):
    _bad(temporal.duration_minutes, text)


def test_timerels():
    at = "2026-11-25T01:00:00Z"
    end = "2026-11-25T02:00:00Z"
    t0 = datetime(2026, 11, 25, 1, tzinfo=UTC)
    assert temporal.parse_temporal({"timerel": "after", "timeAt": at}).start == t0
    assert temporal.parse_temporal({"timerel": "before", "timeAt": at}).end == t0
    between = temporal.parse_temporal({"timerel": "between", "timeAt": at, "endTimeAt": end})
    assert (between.start, between.end) == (t0, t0 + timedelta(hours=1))
    aggregated = temporal.parse_temporal(
        {"options": "aggregatedValues", "aggrMethods": "avg,totalCount,avg", "aggrPeriodDuration": "PT1H"}
    )
    assert aggregated.aggregates == ("avg", "totalCount") and aggregated.bucket == "60m"


def test_aggregated_attributes_are_value_start_end_triples():
    t0 = datetime(2026, 11, 25, 1, tzinfo=UTC)
    out = temporal.aggregated_attributes(
        {"avg": [(t0, "water_level", 2.0)], "max": [(t0, "water_level", 3.0)]}, timedelta(hours=1), None
    )
    assert out == {
        "water_level": {
            "type": "Property",
            "avg": [[2.0, "2026-11-25T01:00:00Z", "2026-11-25T02:00:00Z"]],
            "max": [[3.0, "2026-11-25T01:00:00Z", "2026-11-25T02:00:00Z"]],
        }
    }


# -- entities and media types ---------------------------------------------------------------------------------------

_GAUGE = {
    "id": "gauge-1",
    "geometry": {"type": "Point", "coordinates": [137.1, 35.1]},
    "properties": {
        "name": "Yahagi",
        "device_type": "river_gauge",
        "status": "active",
        "tenant_id": "toyota-city",
        "last_reading": datetime(2026, 11, 25, 1, tzinfo=UTC),
        "online": True,
        "silent": False,
        "water_level": 3.4,
        "water_level_time": datetime(2026, 11, 25, 1, tzinfo=UTC),
        "signal": -80.0,
        "signal_time": datetime(2026, 11, 25, 1, tzinfo=UTC),
    },
}
_UNITS = {"river_gauge": {"water_level": "m", "signal": "dBm"}}


def test_a_device_entity():
    e = model.render(model.DEVICE, _GAUGE, model.Selection(), _UNITS)
    assert e["id"] == "urn:ngsi-ld:Device:gauge-1"
    assert e["dateLastValueReported"] == {
        "type": "Property",
        "value": {"@type": "DateTime", "@value": "2026-11-25T01:00:00Z"},
    }
    assert e["water_level"]["unitCode"] == "MTR"
    assert e["signal"]["unitText"] == {"type": "Property", "value": "dBm"}  # no UN/CEFACT code for dBm
    assert e["location"]["type"] == "GeoProperty"


def test_attrs_and_key_values():
    e = model.render(model.DEVICE, _GAUGE, model.Selection(frozenset({"water_level"}), key_values=True), _UNITS)
    assert e == {"id": "urn:ngsi-ld:Device:gauge-1", "type": "Device", "water_level": 3.4}


def test_unknown_attrs_are_refused():
    assert "nope" in _bad(model.check_attrs, ["nope"], [model.DEVICE], {"water_level"})
    assert model.check_attrs(["water_level", "location"], [model.DEVICE], {"water_level"}) == {
        "water_level",
        "location",
    }


def test_urns():
    assert model.split_urn("urn:ngsi-ld:ForestStand:12-3.1") == (model.STAND, "12-3.1")
    for bad in ("gauge-1", "urn:ngsi-ld:Thing:1", "urn:ngsi-ld:Device:"):
        _bad(model.split_urn, bad)


def test_the_context_defines_every_attribute_of_every_type():
    terms = model.context_document("http://hub")["@context"]
    for t in model.TYPES.values():
        assert terms[t.name] == t.iri
        for name in (*t.attributes, *t.rendered_only):
            assert name in terms


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/ld+json", "application/ld+json"),
        ("application/json;q=0.5, application/geo+json", "application/geo+json"),
        ("text/html, application/ld+json;q=0.9", "application/ld+json"),
    ],
)
def test_negotiation(accept, media):
    assert negotiate(accept, geo=True) == media


def test_negotiation_refuses_what_is_not_served():
    with pytest.raises(NgsiLdError) as caught:
        negotiate("text/csv", geo=True)
    assert caught.value.status == 406
    with pytest.raises(NgsiLdError):
        negotiate("application/geo+json", geo=False)


# -- subscriptions --------------------------------------------------------------------------------------------------

_SUB = {
    "type": "Subscription",
    "entities": [{"type": "Alert"}],
    "notification": {"endpoint": {"uri": "https://ops.example.org/n"}, "format": "keyValues"},
}


@pytest.mark.parametrize(
    ("q", "min_level", "hazards"),
    [
        (None, 1, None),
        ("warningLevel>=3", 3, None),
        ("warningLevel>2", 3, None),
        ('category=="flood","landslide";warningLevel==4', 4, ["flood", "landslide"]),
    ],
)
def test_a_subscriptions_q_becomes_the_webhooks_filters(q, min_level, hazards):
    spec = subscriptions.parse_subscription({**_SUB, **({"q": q} if q else {})})
    assert (spec.url, spec.min_level, spec.hazards) == ("https://ops.example.org/n", min_level, hazards)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {**_SUB, "entities": [{"type": "Alert", "idPattern": ".*"}]},
        {**_SUB, "q": "warningLevel<3"},
        {**_SUB, "q": 'warningLevel>=3|category=="flood"'},
        {**_SUB, "watchedAttributes": ["colour"]},
        {**_SUB, "notification": {"endpoint": {"uri": "https://x.example", "accept": "text/plain"}}},
        {**_SUB, "isActive": False},
        {**_SUB, "expiresAt": "2030-01-01T00:00:00Z"},
    ],
)
def test_subscriptions_the_webhooks_cannot_honour_are_bad_request_data(body):
    _bad(subscriptions.parse_subscription, body)


def test_a_notification_carries_the_alert_as_an_entity():
    row = {
        "alert": {
            "id": 12,
            "rule_id": "river",
            "hazard": "flood",
            "title_en": "River level",
            "device_id": "gauge-1",
            "tenant_id": "toyota-city",
            "state": "open",
            "level": 3,
            "peak_level": 3,
            "opened_at": "2026-11-25T01:00:00+00:00",
            "location": {"type": "Point", "coordinates": [137.1, 35.1]},
            "area": None,
        }
    }
    delivery = {"id": 17, "webhook_id": 4, "subscription": {**_SUB, "_context": "http://hub/ctx.jsonld"}}
    body = json.loads(subscriptions.notification(row, delivery, datetime(2026, 11, 25, 1, 10, tzinfo=UTC)))
    assert body["id"] == "urn:ngsi-ld:Notification:17" and body["subscriptionId"] == "urn:ngsi-ld:Subscription:4"
    assert body["notifiedAt"] == "2026-11-25T01:10:00Z"
    [alert] = body["data"]
    assert alert["id"] == "urn:ngsi-ld:Alert:12"
    assert alert["alertSource"] == "urn:ngsi-ld:Device:gauge-1"  # keyValues: the Relationship's object
    assert alert["dateIssued"] == {"@type": "DateTime", "@value": "2026-11-25T01:00:00Z"}
    assert alert["severity"] == "medium"
    assert alert["location"] == {"type": "Point", "coordinates": [137.1, 35.1]}
