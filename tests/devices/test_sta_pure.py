"""The pure parts of the STA face: id codecs, keyset cursors, query options, resource paths and the ``$filter``
compiler (no database: the SQL is inspected as text, every value must be a bound parameter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from devices.sta import ObservationId, StaError, decode_cursor, encode_cursor, format_key, parse_key, parse_options
from devices.sta import parse_path as parse_resource
from devices.sta.filter import GEOMETRY, JSON, NUMBER, TEXT, TIME, Term, compile_filter
from devices.sta.ids import IdError
from devices.sta.options import MAX_EXPAND_DEPTH, options_query

NOW = datetime(2026, 12, 7, tzinfo=UTC)
times = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)  # fmt: skip


@given(st.integers(0, 2**31 - 1), times)
def test_an_observation_id_encodes_series_and_time_losslessly(series, when):
    oid = ObservationId(series, when)
    assert ObservationId.parse(str(oid)) == oid


@pytest.mark.parametrize("text", ["", "1", "1.", ".5", "a.1", "1.1.1", "99999999999.1", "1." + "9" * 18])
def test_a_malformed_observation_id_is_refused(text):
    with pytest.raises(IdError):
        ObservationId.parse(text)


@given(st.one_of(st.integers(-(10**18) + 1, 10**18 - 1), st.text(max_size=30)))
def test_keys_round_trip_through_their_url_form(key):
    assert parse_key(format_key(key)) == key


@given(st.lists(st.one_of(st.none(), st.integers(), st.floats(allow_nan=False), st.text(), times), max_size=4))
def test_a_cursor_round_trips_and_is_bound_to_its_orderby(values):
    token = encode_cursor("result desc", values)
    assert decode_cursor(token, "result desc", len(values)) == values
    with pytest.raises(IdError):
        decode_cursor(token, "result", len(values))


@given(st.text(max_size=60))
def test_any_skiptoken_decodes_or_is_refused_as_ours_not(token):
    try:
        values = decode_cursor(token, "", 1)
    except IdError:
        return
    assert len(values) == 1


def test_options_are_parsed_with_nested_expansions():
    options = parse_options(
        {
            "$top": "5",
            "$count": "true",
            "$orderby": "phenomenonTime desc, result",
            "$expand": "Datastreams($select=name;$expand=Observations($top=2;$filter=result gt 1)),Locations",
        }
    )
    assert options.top == 5 and options.count
    assert [(k.path, k.desc) for k in options.orderby] == [(("phenomenonTime",), True), (("result",), False)]
    ds, loc = options.expand
    assert (ds.nav, loc.nav) == ("Datastreams", "Locations")
    assert ds.options.select == ("name",)
    assert ds.options.expand[0].options.top == 2
    assert ds.options.expand[0].options.filter == "result gt 1"
    assert parse_options(options_query(options)) == options


def test_the_path_form_of_expand_nests():
    (item,) = parse_options({"$expand": "Datastreams/Observations($top=1)"}).expand
    assert item.nav == "Datastreams"
    assert item.options.expand[0].nav == "Observations"
    assert item.options.expand[0].options.top == 1


@pytest.mark.parametrize(
    "query",
    [
        {"$expand": "/".join(["Datastreams"] * (MAX_EXPAND_DEPTH + 1))},
        {"$expand": "Datastreams(" * 20 + ")" * 20},
        {"$expand": "Datastreams($top=1"},
        {"$expand": "Datastreams($nope=1)"},
        {"$top": "x"},
        {"$skip": "-3"},
        {"$orderby": "name sideways"},
        {"$select": "a b"},
        {"$what": "1"},
    ],
)
def test_bad_options_are_refused(query):
    with pytest.raises(StaError):
        parse_options(query)


def test_resource_paths():
    path = parse_resource("Things('it''s')/Datastreams(7)/Observations")
    assert [(s.name, s.key) for s in path.steps] == [("Things", "it's"), ("Datastreams", 7), ("Observations", None)]
    assert parse_resource("Observations('1.2')/result/$value").value
    for bad in ["", "Things('a", "Things(a)", "Things)(", "/".join(["Things"] * 20)]:
        with pytest.raises(StaError):
            parse_resource(bad)


KINDS = {"result": NUMBER, "name": TEXT, "phenomenonTime": TIME, "location": GEOMETRY, "properties": JSON}


def resolve(path):
    if path[0] not in KINDS:
        raise StaError(f"no {path[0]}")
    kind = KINDS[path[0]] if len(path) == 1 else JSON
    return Term(sql.Identifier("e", path[0]), kind)


def render(flt):
    params = {}
    return compile_filter(flt, resolve, NOW, params).as_string(None), params


def test_every_literal_is_a_bound_parameter():
    text, params = render("name eq 'x'' OR 1=1 --' and result gt 3.5 and phenomenonTime lt 2026-01-01T00:00:00Z")
    assert "OR 1=1" not in text and "3.5" not in text and "2026" not in text
    assert params == {"f0": "x' OR 1=1 --", "f1": 3.5, "f2": datetime(2026, 1, 1, tzinfo=UTC)}


def test_operators_and_functions_compile():
    text, params = render("(result add 2) mul 3 gt 7 or not (year(phenomenonTime) eq 2026)")
    assert '("e"."result" + %(f0)s::double precision) * %(f1)s::double precision' in text
    assert "EXTRACT(year FROM" in text
    text, params = render("geo.distance(location, geography'POINT(1 2)') lt 0.5")
    assert "ST_Distance" in text and params["f0"] == "POINT (1 2)"
    text, params = render("resultTime ge now() sub duration'P1D'".replace("resultTime", "phenomenonTime"))
    assert params["f0"] == NOW and params["f1"] == timedelta(days=1)


@pytest.mark.parametrize(
    "flt",
    [
        "result eq 'a'",
        "name gt 1",
        "result",
        "nosuch eq 1",
        "geo.intersects(location, geography'POINT(1)')",
        "geo.intersects(location, geography'POLYGON((0 0,1 1,1 0,0 1,0 0))')",
        "st_relate(location, location, 'XYZ')",
        "year(result) eq 1",
        "location gt location",
        "frobnicate(name) eq 1",
        "result gt null",
        "(" * 50 + "result gt 1" + ")" * 50,
        "result gt 1 " + "and result gt 1 " * 400,
        "Datastream/nope eq 1",
    ],
)
def test_bad_filters_are_sta_errors(flt):
    with pytest.raises(StaError):
        render(flt)


TOKENS = [
    "result", "name", "phenomenonTime", "location", "properties/a", "nosuch", "eq", "ne", "gt", "lt", "and", "or",
    "not", "add", "sub", "mul", "div", "mod", "(", ")", ",", "1", "-2.5", "1e400", "'x'", "''", "null", "true",
    "2026-01-01T00:00:00Z", "2026-13-45", "duration'P1D'", "geography'POINT(1 2)'", "geography'POLYGON(('",
    "geo.intersects(", "geo.distance(", "st_within(", "year(", "substringof(", "now()", "in", "@", "$", "/",
]  # fmt: skip


@given(st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join))
def test_any_token_soup_compiles_or_is_an_sta_error(flt):
    try:
        text, params = render(flt)
    except StaError:
        return
    assert all(f"%({name})s" in text for name in params)
