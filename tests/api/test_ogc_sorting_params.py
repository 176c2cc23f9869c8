"""sortby (OGC API Features Part 8) and properties (Part 6): parsing, the sortables document, the ORDER BY it
makes and the selection of a page's properties. Pure: no database."""

from __future__ import annotations

import pytest
from psycopg import sql

from api.ogc import (
    COMMON_PARAMETERS,
    CONFORMANCE,
    REL_SORTABLES,
    collection_document,
    parse_items_query,
    parse_properties,
    parse_sortby,
    sortables_document,
)
from devices.queries import STATE_SORT_COLUMNS
from geo.feature_sql import sort_order
from geo.features import COLLECTIONS, Feature, FeaturePage, select_properties
from mimamori.errors import ValidationError

STANDS, DEVICES, AREAS, ALERTS = (COLLECTIONS[c] for c in ("stands", "devices", "areas", "alerts"))


def _query(params: dict[str, str], collection: str = "stands"):
    return parse_items_query(params, COLLECTIONS[collection], default_limit=10, max_limit=100, tenant_id=None)


def test_sortby_keys_are_ascending_unless_minus():
    assert parse_sortby("age_class,-area_ha,+stand_id", STANDS) == (
        ("age_class", False),
        ("area_ha", True),
        ("stand_id", False),
    )
    # An unescaped + in a URL's query arrives as a space; spaces around names do not count.
    assert parse_sortby(" area_ha , - age_1", STANDS) == (("area_ha", False), ("age_1", True))
    assert _query({"sortby": "-level"}, "alerts").sortby == (("level", True),)
    assert _query({}).sortby == ()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("colour", ["cannot be sorted by 'colour'", "stand_id", "area_ha"]),
        ("attributes", ["cannot be sorted by 'attributes'"]),  # an object, not a column to order by
        ("protection_forest", ["cannot be sorted by 'protection_forest'"]),
        ("area_ha,", ["needs property names"]),
        ("-", ["needs property names"]),
        ("", ["needs property names"]),
        ("area_ha,-area_ha", ["more than once"]),
        ("geometry", ["cannot be sorted"]),
    ],
)
def test_bad_sortby_is_refused_naming_the_sortables(text, words):
    with pytest.raises(ValidationError) as caught:
        parse_sortby(text, STANDS)
    for word in words:
        assert word in str(caught.value)


def test_devices_do_not_sort_by_what_python_computes():
    for name in ("silent", "silent_since", "water_level", "water_level_time"):
        with pytest.raises(ValidationError, match="sortables"):
            parse_sortby(name, DEVICES)
    assert parse_sortby("-last_reading,name", DEVICES) == (("last_reading", True), ("name", False))


def test_each_collection_s_sortables_are_its_scalar_properties_its_owner_has_a_column_for():
    for c in COLLECTIONS.values():
        types = c.property_types()
        assert c.sortables, c.id
        assert len(set(c.sortables)) == len(c.sortables), c.id
        assert set(c.sortables) <= set(types), c.id
        assert not [n for n in c.sortables if types[n] in ("object", "strings")], c.id
    assert set(STANDS.sortables) == set(STANDS.property_types()) - {"attributes", "protection_forest"}
    assert set(ALERTS.sortables) == set(ALERTS.property_types())
    assert set(AREAS.sortables) == {"kind", "name", "tenant_id", "updated_at"}
    assert set(DEVICES.sortables) == set(STATE_SORT_COLUMNS)
    assert not {"silent", "silent_since"} & set(DEVICES.sortables)


def test_sort_order_puts_the_keys_before_the_default_and_nulls_where_postgresql_does():
    columns = {"a": sql.Identifier("t", "a"), "b": sql.Identifier("t", "b")}
    default = sql.SQL("t.id")
    assert sort_order([], columns, default).as_string() == "t.id"
    assert sort_order([("a", False), ("b", True)], columns, default).as_string() == (
        '"t"."a" ASC NULLS LAST, "t"."b" DESC NULLS FIRST, t.id'
    )
    with pytest.raises(ValueError, match="no sort column"):
        sort_order([("c", False)], columns, default)


def test_properties_are_checked_against_a_closed_collection_only():
    assert parse_properties("species_1,area_ha", STANDS) == ("species_1", "area_ha")
    assert parse_properties(" area_ha , area_ha", STANDS) == ("area_ha",)
    assert parse_properties("", STANDS) == ()  # no properties: id and geometry alone
    with pytest.raises(ValidationError, match="no property colour; it has stand_id"):
        parse_properties("area_ha,colour", STANDS)
    with pytest.raises(ValidationError, match="empty name"):
        parse_properties("area_ha,,species_1", STANDS)
    with pytest.raises(ValidationError):
        parse_properties("kind,geometry", ALERTS)
    # Devices carry a property per metric, areas their own: any name may be asked of them.
    assert parse_properties("water_level,water_level_time,name", DEVICES) == ("water_level", "water_level_time", "name")
    assert parse_properties("river,name", AREAS) == ("river", "name")
    assert _query({"properties": "name"}, "devices").properties == ("name",)
    assert _query({}).properties is None


def test_sortby_and_properties_are_parameters_of_every_collection():
    assert {"sortby", "properties"} <= COMMON_PARAMETERS
    for c in COLLECTIONS.values():
        q = _query({"sortby": f"-{c.sortables[0]}", "properties": c.properties[0][0]}, c.id)
        assert q.sortby == ((c.sortables[0], True),)
        assert q.properties == (c.properties[0][0],)
    with pytest.raises(ValidationError):
        _query({"sortby": "name"}, "stands")  # a device's, not a stand's


def test_select_properties_keeps_the_id_and_geometry():
    point = {"type": "Point", "coordinates": [137.1, 35.1]}
    page = FeaturePage(
        [Feature("a", point, {"x": 1, "y": 2, "z": 3}), Feature("b", None, {"y": 5})], more=True, matched=9
    )
    chosen = select_properties(page, ("z", "x", "missing"))
    assert [f.as_geojson() for f in chosen.features] == [
        {"type": "Feature", "id": "a", "geometry": point, "properties": {"x": 1, "z": 3}},
        {"type": "Feature", "id": "b", "geometry": None, "properties": {}},
    ]
    assert (chosen.more, chosen.matched) == (True, 9)
    assert select_properties(page, None) is page
    assert select_properties(page, ()).features[0].properties == {}
    assert page.features[0].properties == {"x": 1, "y": 2, "z": 3}  # the page as fetched is left as it was


def test_the_sortables_document_types_each_sortable_as_its_property():
    for c in COLLECTIONS.values():
        doc = sortables_document("http://hub", c)
        assert doc["$id"] == f"http://hub/ogc/collections/{c.id}/sortables"
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc["additionalProperties"] is False
        assert list(doc["properties"]) == list(c.sortables)
        types = c.property_types()
        for name, prop in doc["properties"].items():
            kind = types[name]
            expected = {"type": "string", "format": "date-time"} if kind == "date-time" else {"type": kind}
            assert prop == {"title": name, **expected}, (c.id, name)
        links = {link["rel"]: link for link in collection_document("http://hub", c, None)["links"]}
        assert links[REL_SORTABLES]["href"] == f"http://hub/ogc/collections/{c.id}/sortables"
        assert links[REL_SORTABLES]["type"] == "application/schema+json"


def test_conformance_declares_sorting_and_property_selection():
    assert "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting" in CONFORMANCE
    assert "http://www.opengis.net/spec/ogcapi-features-6/1.0/conf/properties" in CONFORMANCE
