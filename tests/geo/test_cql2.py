"""CQL2 filters (geo/cql2.py): parsing both encodings, translating to SQL with every literal bound, and the
translated SQL run on the real PostGIS against the same predicate computed in Python."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from shapely.geometry import Point, box
from shapely.geometry import Polygon as ShapelyPolygon

from geo import COLLECTIONS, Stand, upsert_stands
from geo.cql2 import (
    CONFORMANCE,
    FilterError,
    check,
    columns_of,
    conjunction,
    equality,
    parse_filter,
    to_sql,
)
from mimamori.errors import ValidationError

STANDS = columns_of(COLLECTIONS["stands"], "s")
ALERTS = columns_of(COLLECTIONS["alerts"], "a")
GEOM = sql.SQL("s.geom")


def translate(text: str, lang: str = "cql2-text", columns: Any = STANDS) -> tuple[str, dict[str, Any]]:
    clause, params = to_sql(parse_filter(text, lang), columns, GEOM)
    return clause.as_string(None), params


# --- the standard's examples, both encodings ---------------------------------------------------------------------


def test_the_ogc_example_translates_with_its_values_bound():
    text, params = translate("species_1 = 'スギ' AND volume_m3 > 500")
    assert text == '(("s"."species_1" = %(cql_0)s::text) AND ("s"."volume_m3" > %(cql_1)s))'
    assert params == {"cql_0": "スギ", "cql_1": 500}


def test_cql2_json_reads_as_the_same_condition_as_cql2_text():
    as_json = json.dumps(
        {
            "op": "and",
            "args": [
                {"op": "=", "args": [{"property": "species_1"}, "スギ"]},
                {"op": ">", "args": [{"property": "volume_m3"}, 500]},
            ],
        }
    )
    assert translate(as_json, "cql2-json") == translate("species_1 = 'スギ' AND volume_m3 > 500")


def test_a_polygon_is_a_bound_geojson_value_in_srid_4326():
    text, params = translate("S_INTERSECTS(geometry, POLYGON((137.3 35.1, 137.4 35.1, 137.4 35.2, 137.3 35.1)))")
    assert text == "ST_Intersects(s.geom, ST_SetSRID(ST_GeomFromGeoJSON(%(cql_0)s), %(cql_srid)s::int))"
    assert json.loads(params["cql_0"]) == {
        "type": "Polygon",
        "coordinates": [[[137.3, 35.1], [137.4, 35.1], [137.4, 35.2], [137.3, 35.1]]],
    }
    assert params["cql_srid"] == 4326


def test_a_geojson_geometry_in_cql2_json_and_a_bbox():
    point = {"op": "s_within", "args": [{"property": "geometry"}, {"bbox": [137.3, 35.1, 137.4, 35.2]}]}
    text, params = translate(json.dumps(point), "cql2-json")
    assert text == "ST_Within(s.geom, ST_MakeEnvelope(%(cql_0)s, %(cql_1)s, %(cql_2)s, %(cql_3)s, %(cql_srid)s::int))"
    assert [params[f"cql_{i}"] for i in range(4)] == [137.3, 35.1, 137.4, 35.2]


def test_t_after_a_timestamp():
    text, params = translate("T_AFTER(opened_at, TIMESTAMP('2026-01-01T00:00:00Z'))", columns=ALERTS)
    assert text == '(%(cql_0)s::timestamptz < "a"."opened_at")'  # the timestamp ends before the instant starts
    assert params == {"cql_0": datetime(2026, 1, 1, tzinfo=UTC)}


def test_a_date_and_an_open_interval():
    text, params = translate("T_DURING(opened_at, INTERVAL('2026-01-01', '..'))", columns=ALERTS)
    assert text == '("a"."opened_at" > %(cql_0)s::timestamptz AND "a"."opened_at" < \'infinity\'::timestamptz)'
    assert params == {"cql_0": datetime(2026, 1, 1, tzinfo=UTC)}
    _, day = translate("T_EQUALS(opened_at, DATE('2026-01-01'))", columns=ALERTS)
    assert list(day.values()) == [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC) - timedelta(0, 0, 1),
    ]


def test_advanced_comparisons_and_case_insensitivity():
    text, params = translate(
        "CASEI(species_1) LIKE CASEI('す%') OR ownership IN ('private', 'national') OR age_1 NOT BETWEEN 10 AND 20"
    )
    assert text == (
        '((lower("s"."species_1") LIKE lower(%(cql_0)s::text) ESCAPE \'\\\')'
        ' OR ("s"."ownership" IN (%(cql_1)s::text, %(cql_2)s::text))'
        ' OR (NOT ("s"."age_1" BETWEEN %(cql_3)s AND %(cql_4)s)))'
    )
    assert params == {"cql_0": "す%", "cql_1": "private", "cql_2": "national", "cql_3": 10, "cql_4": 20}


def test_is_null_and_arithmetic():
    text, params = translate("species_2 IS NULL AND volume_m3 / area_ha > 300")
    assert text == (
        '(("s"."species_2" IS NULL) AND (("s"."volume_m3"::numeric / NULLIF("s"."area_ha"::numeric, 0)) > %(cql_0)s))'
    )
    assert params == {"cql_0": 300}


# --- values never enter the statement ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("species_1 = 'x'' OR 1=1 --'", "x' OR 1=1 --"),
        ("species_1 = '''); DROP TABLE stands; --'", "'); DROP TABLE stands; --"),
        ("species_1 LIKE '%'' OR ''1''=''1'", "%' OR '1'='1"),
        ("CASEI(species_1) = CASEI('\\'' OR TRUE --')", "\\' OR TRUE --"),
    ],
)
def test_a_quote_in_a_value_stays_in_the_bound_value(text, value):
    statement, params = translate(text)
    assert value in params.values()
    assert "DROP" not in statement and "OR 1=1" not in statement and "TRUE" not in statement
    assert re.fullmatch(r"[\w\s().,=%:\"'\\]*", statement.replace("ESCAPE '\\'", "")), statement
    assert "'" not in statement.replace("ESCAPE '\\'", "")  # no string literal is written into it


@pytest.mark.parametrize(
    "text",
    [
        "\"species_1; DROP TABLE stands\" = 'x'",
        '"s"."geom" IS NULL',
        "pg_sleep(10) = 1",
    ],
)
def test_a_name_that_is_no_queryable_is_refused_not_written(text):
    with pytest.raises(FilterError):
        translate(text)


def test_a_json_property_name_is_never_written_either():
    evil = {"op": "isNull", "args": [{"property": "s.geom) OR (1=1"}]}
    with pytest.raises(FilterError, match="unknown property"):
        translate(json.dumps(evil), "cql2-json")


def test_placeholders_are_the_filter_s_own():
    _, params = translate(
        "species_1 = 'a' AND S_INTERSECTS(geometry, BBOX(1, 2, 3, 4)) AND age_1 IN (1, 2, 3) AND NOT rinpan = 4"
    )
    page_params = {"west", "south", "east", "north", "tenant", "limit", "offset", "t_start", "t_end", "f_species_1"}
    assert all(name.startswith("cql_") for name in params) and not set(params) & page_params
    _, other = to_sql(parse_filter("rinpan = 1"), STANDS, GEOM, prefix="q2")
    assert list(other) == ["q2_0"]


# --- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, lang, message",
    [
        ("species_1 = ", "cql2-text", "not valid cql2-text"),
        ("species_1 == 'x'", "cql2-text", "not valid cql2-text"),
        ("species_1 = 'unclosed", "cql2-text", "not valid cql2-text"),
        ("AND", "cql2-text", "not valid cql2-text"),
        ("", "cql2-text", "not valid cql2-text"),
        ("{not json", "cql2-json", "not valid cql2-json"),
        ('{"op": "=", "args": [{"property": "species_1"}]}', "cql2-json", "not valid cql2-json"),
        ('"species_1"', "cql2-json", "not valid cql2-json"),
        ("species_1 = 'x'", "cql2-json", "not valid cql2-json"),
        ("species_1 = 'x'", "ecql", "filter-lang"),
        ("(" * 10_000 + "rinpan = 1" + ")" * 10_000, "cql2-text", "longer than"),  # cql2-rs would overflow its stack
        ("(" * 2000 + "rinpan = 1" + ")" * 2000, "cql2-text", "nests deeper"),
        ("species_1 = '" + "(" * 100 + "'", "cql2-text", None),  # brackets in a string do not nest
        ('{"op": "not", "args": [' * 500 + "true" + "]}" * 500, "cql2-json", "nests deeper"),
        ("rinpan = 1 OR " * 3000 + "rinpan = 2", "cql2-text", "longer than"),
    ],
)
def test_what_does_not_parse_is_a_filter_error_saying_so(text, lang, message):
    if message is None:
        assert parse_filter(text, lang)
        return
    with pytest.raises(FilterError, match=message) as caught:
        parse_filter(text, lang)
    assert isinstance(caught.value, ValidationError) and isinstance(caught.value, ValueError)  # the API's 400


def test_an_unknown_property_names_the_queryables():
    with pytest.raises(FilterError) as caught:
        translate("colour = 'green'")
    message = str(caught.value)
    assert "'colour'" in message and "species_1" in message and "geometry" in message and "volume_m3" in message


@pytest.mark.parametrize(
    "text, message",
    [
        ("species_1 > 5", "cannot compare a string with a number"),
        ("volume_m3 = 'much'", "cannot compare a number with a string"),
        ("rinpan IN (1, 'x')", "cannot compare a number with a string"),
        ("S_INTERSECTS(species_1, POINT(1 2))", "relates geometries"),
        ("T_AFTER(species_1, TIMESTAMP('2026-01-01T00:00:00Z'))", "instants or intervals"),
        ("imported_at > '2026-01-01'", "TIMESTAMP\\('2026-01-01T00:00:00Z'\\)"),
        ("species_1 LIKE 'ab\\'", "escape character"),
        ("T_AFTER(imported_at, DATE('2026-02-30'))", "not a date"),
        ("attributes IS NULL", "unknown property"),  # an object: not filterable
        ("protection_forest IS NULL", "unknown property"),
        ("ACCENTI(species_1) = ACCENTI('x')", "ACCENTI"),
        ("species_1 = 'a\x00b'", "NUL"),
        ("A_CONTAINS(species_1, ('a'))", "array functions"),
        ("lower(species_1) = 'x'", "unknown function"),
        ("S_INTERSECTS(geometry, BBOX(3, 2, 1, 4))", "antimeridian"),
        ("S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))", "invalid geometry"),
    ],
)
def test_what_the_collection_cannot_answer_is_a_filter_error(text, message):
    with pytest.raises(FilterError, match=message):
        translate(text)


@pytest.mark.parametrize(
    "ast, message",
    [  # what the JSON Schema already refuses, refused again by the translation (it never trusts its input)
        ({"op": "like", "args": [{"property": "species_1"}, 5]}, "LIKE compares strings"),
        ({"op": "between", "args": [{"property": "age_1"}, "a", "b"]}, "BETWEEN takes three numbers"),
        ({"op": "s_intersects", "args": [{"property": "geometry"}, 5]}, "relates geometries"),
        ({"op": "=", "args": [{"property": "species_1"}, None]}, "IS NULL"),
        ({"property": "volume_m3"}, "not a condition"),
        ({"op": "=", "args": [{"property": "species_1"}]}, "takes 2 operands"),
        ({"op": "and", "args": [True]}, "at least two"),
        ({"op": "in", "args": [{"property": "rinpan"}, []]}, "non-empty list"),
        ({"op": "=", "args": [{"property": "area_ha"}, float("inf")]}, "finite"),
        ({"op": "s_within", "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": "x"}]}, "GeoJSON"),
        ({"op": "s_within", "args": [{"property": "geometry"}, {"bbox": [1, 2, 3]}]}, "BBOX takes"),
        ({"op": "t_after", "args": [{"property": "imported_at"}, {"timestamp": "soon"}]}, "RFC 3339"),
        ({"op": "t_after", "args": [{"property": "imported_at"}, {"interval": ["..", 5]}]}, "bounded by instants"),
        ({"op": "frob", "args": []}, "unknown function"),
        ({"op": "=", "args": [{"op": "s_intersects", "args": []}, 1]}, "is a condition"),
        ([1, 2], "only after IN"),
        ({"op": ["and"], "args": [True, True]}, "a name and a list"),
        ({"op": "=", "args": [{"op": {"x": 1}, "args": []}, 1]}, "a name and a list"),
        ({"op": "not", "args": "x"}, "a name and a list"),
        ({"op": "not", "args": [{"op": "not", "args": [True]}] * 1}, None),
    ],
)
def test_the_translation_checks_what_the_schema_would(ast, message):
    if message is None:
        assert to_sql(ast, STANDS, GEOM)[0].as_string(None) == "(NOT (NOT TRUE))"
        return
    with pytest.raises(FilterError, match=message):
        to_sql(ast, STANDS, GEOM)


def test_check_and_the_equality_parameters():
    check(conjunction([parse_filter("volume_m3 > 1"), equality("area_ha", "number", "2.5")]), COLLECTIONS["stands"])
    assert equality("online", "boolean", "True") == {"op": "=", "args": [{"property": "online"}, True]}
    assert equality("opened_at", "date-time", "2026-01-01T09:00:00+09:00")["args"][1] == {
        "timestamp": "2026-01-01T09:00:00+09:00"
    }
    with pytest.raises(FilterError, match="must be a number"):
        equality("area_ha", "number", "lots")
    with pytest.raises(FilterError, match="true or false"):
        equality("online", "boolean", "yes")
    with pytest.raises(FilterError):
        check(parse_filter("colour = 1"), COLLECTIONS["alerts"])
    assert conjunction([]) is None


def test_the_conformance_classes_are_the_standard_s():
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in CONFORMANCE
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in CONFORMANCE
    assert all(c.startswith("http://www.opengis.net/spec/") for c in CONFORMANCE)
    assert not [c for c in CONFORMANCE if "accent" in c or "array" in c or c.endswith("/functions")]  # not done


# --- the translated SQL on the real PostGIS, against the same predicate in Python ---------------------------------

SPECIES = ["スギ", "ヒノキ", "アカマツ", None]
FOREST_TYPES = ["Planted", "natural", "PLANTED", None]


def _sample() -> list[Stand]:
    stands = []
    for i in range(40):
        west, south = 137.30 + 0.01 * (i % 8), 35.10 + 0.01 * (i // 8)
        stands.append(
            Stand(
                stand_id=f"9-{i}",
                rinpan=9,
                shohan=i,
                geom=box(west, south, west + 0.01, south + 0.01),
                species_1=SPECIES[i % 4],
                species_2=SPECIES[(i + 1) % 4] if i % 3 else None,
                age_1=None if i % 11 == 0 else 5 + 3 * i,
                age_2=(7 * i) % 50,
                area_ha=None if i == 7 else 0.5 + (i % 5),
                volume_m3=None if i % 13 == 0 else float(37 * i % 900),
                forest_type=FOREST_TYPES[i % 4],
                ownership="national" if i % 5 == 0 else "private",
            )
        )
    return stands


@pytest.fixture
def stands(db: psycopg.Connection) -> list[Stand]:
    db.execute("TRUNCATE stands")
    sample = _sample()
    upsert_stands(db, sample, source_file="test", source_crs="EPSG:4326")
    return sample


def _matching(db: psycopg.Connection, text: str, lang: str = "cql2-text") -> list[str]:
    clause, params = to_sql(parse_filter(text, lang), STANDS, GEOM)
    query = sql.SQL("SELECT s.stand_id FROM stands s WHERE {} ORDER BY s.shohan").format(clause)
    return [r[0] for r in db.execute(query, params).fetchall()]


def _ge(a: float | None, b: float) -> bool:
    return a is not None and a >= b


AREA = ShapelyPolygon([(137.315, 35.115), (137.345, 35.115), (137.33, 35.135), (137.315, 35.115)])
CASES: list[tuple[str, Callable[[Stand], bool]]] = [
    ("species_1 = 'スギ' AND volume_m3 > 500", lambda s: s.species_1 == "スギ" and _ge(s.volume_m3, 500.0001)),
    ("species_1 <> 'スギ'", lambda s: s.species_1 is not None and s.species_1 != "スギ"),
    ("species_1 IS NULL OR age_1 IS NULL", lambda s: s.species_1 is None or s.age_1 is None),
    (
        "NOT species_1 IS NULL AND age_1 BETWEEN 20 AND 60",
        lambda s: s.species_1 is not None and 20 <= (s.age_1 or 0) <= 60,
    ),
    ("species_1 IN ('スギ', 'アカマツ')", lambda s: s.species_1 in ("スギ", "アカマツ")),
    ("species_1 NOT IN ('スギ')", lambda s: s.species_1 is not None and s.species_1 != "スギ"),
    ("species_1 LIKE '%マツ'", lambda s: (s.species_1 or "").endswith("マツ")),
    ("species_1 LIKE 'ヒ_キ'", lambda s: s.species_1 == "ヒノキ"),
    ("forest_type LIKE 'Plan%'", lambda s: s.forest_type == "Planted"),
    ("CASEI(forest_type) = CASEI('planted')", lambda s: (s.forest_type or "").lower() == "planted"),
    ("CASEI(forest_type) LIKE CASEI('PLAN%')", lambda s: (s.forest_type or "").lower().startswith("plan")),
    ("age_1 > age_2", lambda s: s.age_1 is not None and s.age_2 is not None and s.age_1 > s.age_2),
    ("volume_m3 / area_ha > 150", lambda s: s.volume_m3 is not None and s.area_ha and s.volume_m3 / s.area_ha > 150),
    (
        "volume_m3 + age_1 * 2 >= 600",
        lambda s: s.volume_m3 is not None and s.age_1 is not None and s.volume_m3 + s.age_1 * 2 >= 600,
    ),
    ("age_2 % 7 = 0 AND age_2 DIV 10 = 2", lambda s: s.age_2 is not None and s.age_2 % 7 == 0 and s.age_2 // 10 == 2),
    ("age_2 ^ 2 > 900", lambda s: s.age_2 is not None and s.age_2**2 > 900),
    ("volume_m3 / 0 > 1", lambda s: False),  # a zero divisor: NULL, so no match (and no error)
    ("-age_1 < -100", lambda s: s.age_1 is not None and -s.age_1 < -100),
    (
        "ownership = 'national' OR area_ha < 1",
        lambda s: s.ownership == "national" or (s.area_ha is not None and s.area_ha < 1),
    ),
    (
        "S_INTERSECTS(geometry, POLYGON((137.315 35.115, 137.345 35.115, 137.33 35.135, 137.315 35.115)))",
        lambda s: s.geom.intersects(AREA),
    ),
    (
        "S_DISJOINT(geometry, POLYGON((137.315 35.115, 137.345 35.115, 137.33 35.135, 137.315 35.115)))",
        lambda s: s.geom.disjoint(AREA),
    ),
    (
        "S_WITHIN(geometry, BBOX(137.305, 35.095, 137.335, 35.125))",
        lambda s: s.geom.within(box(137.305, 35.095, 137.335, 35.125)),
    ),
    ("S_CONTAINS(geometry, POINT(137.3551 35.1249))", lambda s: s.geom.contains(Point(137.3551, 35.1249))),
    ("S_INTERSECTS(geometry, POINT(137.32 35.12))", lambda s: s.geom.intersects(Point(137.32, 35.12))),  # a corner
    ("S_TOUCHES(geometry, POINT(137.32 35.12))", lambda s: s.geom.touches(Point(137.32, 35.12))),
    (
        "S_OVERLAPS(geometry, BBOX(137.305, 35.105, 137.315, 35.115))",
        lambda s: s.geom.overlaps(box(137.305, 35.105, 137.315, 35.115)),
    ),
    (
        "S_CROSSES(geometry, LINESTRING(137.305 35.105, 137.335 35.105))",
        lambda s: s.geom.crosses(ShapelyPolygon([(137.305, 35.105), (137.335, 35.105), (137.305, 35.105)]).exterior),
    ),
    (
        "S_EQUALS(geometry, MULTIPOLYGON(((137.3 35.1, 137.31 35.1, 137.31 35.11, 137.3 35.11, 137.3 35.1))))",
        lambda s: s.stand_id == "9-0",
    ),
    ("species_1 = 'x'' OR 1=1 --'", lambda s: False),
    ("TRUE AND NOT FALSE", lambda s: True),
]


def test_every_case_is_tried_on_a_sample_that_tells_it_apart(stands):
    for text, predicate in CASES:
        expected = [s.stand_id for s in stands if predicate(s)]
        assert 0 <= len(expected) < len(stands) or text.startswith("TRUE"), text  # no case trivially all


@pytest.mark.parametrize("text, predicate", CASES, ids=[c[0][:60] for c in CASES])
def test_the_sql_selects_what_the_predicate_does(db, stands, text, predicate):
    assert _matching(db, text) == [s.stand_id for s in stands if predicate(s)]


def test_the_table_is_intact_after_the_injection_attempts(db, stands):
    for text in ("species_1 = '''); DELETE FROM stands; --'", "species_1 LIKE '%''; TRUNCATE stands; --'"):
        assert _matching(db, text) == []
    assert db.execute("SELECT count(*) FROM stands").fetchone()[0] == len(stands)


def test_cql2_json_selects_as_cql2_text_does(db, stands):
    text = "species_1 = 'スギ' AND S_INTERSECTS(geometry, BBOX(137.30, 35.10, 137.35, 35.13))"
    as_json = json.dumps(parse_filter(text))  # the canonical cql2-json of it, as a client would send it
    assert _matching(db, as_json, "cql2-json") == _matching(db, text) != []


# Temporal functions on a scratch table of instants and intervals (the collections' times are instants).

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
EVENT_COLUMNS = {"at": (sql.Identifier("e", "at"), "date-time"), "until": (sql.Identifier("e", "until"), "date-time")}


def _events() -> list[tuple[int, datetime, datetime]]:
    return [(i, T0 + i * DAY / 2, T0 + i * DAY / 2 + (i % 4) * DAY) for i in range(-4, 16)]


def _spans(op: str, a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    """OGC 21-065's temporal relations, written again from the standard's table."""
    (s1, e1), (s2, e2) = a, b
    return {
        "T_BEFORE": e1 < s2,
        "T_AFTER": s1 > e2,
        "T_MEETS": e1 == s2,
        "T_METBY": s1 == e2,
        "T_OVERLAPS": s1 < s2 < e1 < e2,
        "T_OVERLAPPEDBY": s2 < s1 < e2 < e1,
        "T_STARTS": s1 == s2 and e1 < e2,
        "T_STARTEDBY": s1 == s2 and e1 > e2,
        "T_DURING": s1 > s2 and e1 < e2,
        "T_CONTAINS": s1 < s2 and e1 > e2,
        "T_FINISHES": s1 > s2 and e1 == e2,
        "T_FINISHEDBY": s1 < s2 and e1 == e2,
        "T_EQUALS": s1 == s2 and e1 == e2,
        "T_INTERSECTS": s1 <= e2 and e1 >= s2,
        "T_DISJOINT": not (s1 <= e2 and e1 >= s2),
    }[op]


TEMPORAL_OPS = [
    *("T_BEFORE", "T_AFTER", "T_MEETS", "T_METBY", "T_OVERLAPS", "T_OVERLAPPEDBY", "T_STARTS", "T_STARTEDBY"),
    *("T_DURING", "T_CONTAINS", "T_FINISHES", "T_FINISHEDBY", "T_EQUALS", "T_INTERSECTS", "T_DISJOINT"),
]
DAY_END = timedelta(days=1) - timedelta(microseconds=1)
# (cql2-text of the operand, its span); "{}" is filled with the property side
OPERANDS = [
    ("TIMESTAMP('2026-01-03T00:00:00Z')", (T0 + 2 * DAY, T0 + 2 * DAY)),
    ("INTERVAL('2026-01-02T00:00:00Z', '2026-01-04T00:00:00Z')", (T0 + DAY, T0 + 3 * DAY)),
    ("INTERVAL('2026-01-02', '2026-01-03')", (T0 + DAY, T0 + 2 * DAY + DAY_END)),  # dates: whole days
    ("INTERVAL('..', '2026-01-02T12:00:00Z')", (datetime.min.replace(tzinfo=UTC), T0 + 1.5 * DAY)),
    ("DATE('2026-01-03')", (T0 + 2 * DAY, T0 + 2 * DAY + DAY_END)),
]


@pytest.mark.parametrize("op", TEMPORAL_OPS)
def test_temporal_functions_on_instants_and_intervals(db, op):
    db.execute("CREATE TEMP TABLE IF NOT EXISTS events (id int, at timestamptz, until timestamptz)")
    db.execute("TRUNCATE events")
    events = _events()
    ids = {e[0] for e in events}
    hits: set[int] = set()
    misses: set[int] = set()
    with db.cursor() as cur:
        cur.executemany("INSERT INTO events VALUES (%s, %s, %s)", events)
    for subject, span_of in (("at", lambda e: (e[1], e[1])), ("INTERVAL(at, until)", lambda e: (e[1], e[2]))):
        for literal, span in OPERANDS:
            for text, flipped in ((f"{op}({subject}, {literal})", False), (f"{op}({literal}, {subject})", True)):
                clause, params = to_sql(parse_filter(text), EVENT_COLUMNS, GEOM)
                query = sql.SQL("SELECT id FROM events e WHERE {} ORDER BY id").format(clause)
                got = [r[0] for r in db.execute(query, params).fetchall()]
                expected = [
                    e[0] for e in events if (_spans(op, span, span_of(e)) if flipped else _spans(op, span_of(e), span))
                ]
                assert got == expected, text
                hits |= set(expected)
                misses |= ids - set(expected)
    assert hits and misses, op  # the sample tells the relation apart: events match it, others do not


def test_a_timestamp_compares_with_a_date_by_its_utc_day(db):
    day = parse_filter("at = DATE('2026-01-02') AND at > TIMESTAMP('2026-01-02T06:00:00Z')")
    clause, params = to_sql(day, EVENT_COLUMNS, GEOM)
    rows = db.execute(
        sql.SQL("SELECT e.at FROM (VALUES (%(a)s::timestamptz), (%(b)s), (%(c)s), (%(d)s)) e(at) WHERE {}").format(
            clause
        ),
        {
            **params,
            "a": T0 + DAY,  # the day's first instant, not after 06:00
            "b": T0 + DAY + timedelta(hours=12),  # matches
            "c": T0 + 2 * DAY - timedelta(microseconds=1),  # the day's last instant: matches
            "d": T0 + 2 * DAY,  # the next day
        },
    ).fetchall()
    assert [r[0] for r in rows] == [T0 + DAY + timedelta(hours=12), T0 + 2 * DAY - timedelta(microseconds=1)]


# --- fuzzed: whatever a client sends, a FilterError or a condition PostgreSQL runs ------------------------------

TOKENS = [
    *("species_1", "volume_m3", "age_1", "imported_at", "geometry", "nope", '"species_1"', "CASEI", "ACCENTI"),
    *("=", "<>", "<", ">=", "+", "-", "*", "/", "%", "^", "DIV", "(", ")", ",", "'", "''", '"', "\\", "[", "]"),
    *("AND", "OR", "NOT", "IS", "NULL", "LIKE", "BETWEEN", "IN", "TRUE", "FALSE", "S_INTERSECTS", "S_WITHIN"),
    *("T_AFTER", "T_DURING", "INTERVAL", "TIMESTAMP", "DATE", "BBOX", "POINT", "POLYGON", "'..'", "'スギ'"),
    *("0", "1", "-1", "1e308", "0.5", "'2026-01-01'", "'2026-01-01T00:00:00Z'", "'x'", "((0 0, 1 0, 1 1, 0 0))"),
]


OPS = [
    *("and", "or", "not", "=", "<>", "<", ">=", "like", "between", "in", "isNull", "casei", "accenti", "+", "-"),
    *("*", "/", "%", "div", "^", "s_intersects", "s_within", "s_disjoint", "t_after", "t_during", "t_disjoint"),
    *("t_meets", "a_contains", "frob"),
]


def _fuzzed():
    """cql2-text token soup, and cql2-json trees of every operator over properties and literals of every kind."""
    from hypothesis import strategies as st

    leaves = st.one_of(
        st.sampled_from(["species_1", "volume_m3", "age_1", "imported_at", "geometry", "nope"]).map(
            lambda name: {"property": name}
        ),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
        st.booleans(),
        st.none(),
        st.sampled_from(["2026-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "x"]).map(lambda t: {"timestamp": t}),
        st.sampled_from(["2026-01-01", "2026-02-30"]).map(lambda d: {"date": d}),
        st.lists(st.sampled_from(["2026-01-01", "..", "2026-01-02T00:00:00Z"]), min_size=2, max_size=2).map(
            lambda bounds: {"interval": bounds}
        ),
        st.lists(st.floats(-200, 200), min_size=4, max_size=4).map(lambda b: {"bbox": b}),
        st.tuples(st.floats(-180, 180), st.floats(-90, 90)).map(lambda c: {"type": "Point", "coordinates": list(c)}),
    )
    trees = st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.builds(lambda op, args: {"op": op, "args": args}, st.sampled_from(OPS), st.lists(kids, max_size=3)),
            st.lists(kids, max_size=3),
        ),
        max_leaves=8,
    )
    soup = st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join)
    return st.one_of(
        soup.map(lambda t: ("cql2-text", t)),
        trees.map(lambda t: ("cql2-json", json.dumps(t))),
        _typed().map(lambda t: ("cql2-json", json.dumps(t))),
    )


def _typed():
    """Well-typed cql2-json conditions: the ones that reach PostgreSQL."""
    from hypothesis import strategies as st

    def op(name: str, *args: Any) -> dict[str, Any]:
        return {"op": name, "args": list(args)}

    big = st.one_of(st.integers(-(2**70), 2**70), st.floats(-1e300, 1e300, allow_nan=False), st.integers(-3, 3))
    numbers = st.recursive(
        st.one_of(st.sampled_from([{"property": "volume_m3"}, {"property": "age_1"}]), big),
        lambda kids: st.builds(op, st.sampled_from(["+", "-", "*", "/", "%", "div", "^"]), kids, kids),
        max_leaves=4,
    )
    strings = st.one_of(
        st.just({"property": "species_1"}), st.text(max_size=6), st.text(max_size=6).map(lambda t: op("casei", t))
    )
    times = st.one_of(
        st.just({"property": "imported_at"}),
        st.datetimes(timezones=st.just(UTC)).map(lambda d: {"timestamp": d.isoformat()}),
        st.dates().map(lambda d: {"date": d.isoformat()}),
    )
    shapes = st.one_of(
        st.just({"property": "geometry"}),
        st.lists(st.floats(-200, 200), min_size=4, max_size=4).map(lambda b: {"bbox": b}),
        st.tuples(st.floats(-180, 180), st.floats(-90, 90)).map(lambda c: {"type": "Point", "coordinates": list(c)}),
    )
    predicates = st.one_of(
        st.builds(op, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), numbers, numbers),
        st.builds(op, st.sampled_from(["=", "<>", "<"]), strings, strings),
        st.builds(op, st.just("like"), strings, st.text(max_size=6)),
        st.builds(op, st.just("between"), numbers, numbers, numbers),
        st.builds(op, st.just("in"), numbers, st.lists(big, min_size=1, max_size=3)),
        st.builds(op, st.just("isNull"), st.one_of(numbers, strings, shapes)),
        st.builds(op, st.sampled_from(["s_intersects", "s_within", "s_contains", "s_disjoint"]), shapes, shapes),
        st.builds(op, st.sampled_from(list(_TEMPORAL_OPS)), times, times),
        st.booleans(),
    )
    return st.recursive(
        predicates,
        lambda kids: st.one_of(
            st.builds(op, st.sampled_from(["and", "or"]), kids, kids), st.builds(lambda k: op("not", k), kids)
        ),
        max_leaves=4,
    )


_TEMPORAL_OPS = ("t_after", "t_before", "t_during", "t_equals", "t_intersects", "t_disjoint", "t_metBy", "t_overlaps")


def test_fuzzed_filters_are_errors_or_conditions_postgresql_runs(db, stands):
    from hypothesis import HealthCheck, given, settings

    ran = {"sql": 0, "refused": 0}

    @settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(_fuzzed())
    def run(case: tuple[str, str]) -> None:
        lang, source = case
        try:
            clause, params = to_sql(parse_filter(source, lang), STANDS, GEOM)
        except FilterError:
            ran["refused"] += 1
            return
        query = sql.SQL("SELECT count(*) FROM stands s WHERE {}").format(clause)
        with contextlib.suppress(psycopg.errors.DataError):  # the caller's overflow: the API's 400
            db.execute(query, params).fetchone()
        ran["sql"] += 1

    run()
    assert ran["sql"] > 40 and ran["refused"] > 40, ran
