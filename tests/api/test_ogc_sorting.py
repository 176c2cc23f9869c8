"""sortby (OGC API Features Part 8, draft) and properties (Part 6, draft) on /ogc/collections/{id}/items, over
HTTP against the real database: every collection's order checked against Python's sorting of what it seeded.

Text values are lowercase ASCII, so that Python's order is the database's whatever its collation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from shapely.geometry import box

from devices import upsert_device
from geo import COLLECTIONS, Stand, upsert_area, upsert_stands
from tests.api.test_ogc_features import served
from tests.geo_support import api_client, role_keys

T = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
SORTING = "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting"
PROPERTIES = "http://www.opengis.net/spec/ogcapi-features-6/1.0/conf/properties"
REL_SORTABLES = "http://www.opengis.net/def/rel/ogc/1.0/sortables"

# stand number: (age_class, area_ha, species_1); None where the register has nothing
_STANDS: dict[int, tuple[int | None, float | None, str | None]] = {
    1: (3, 2.5, "sugi"),
    2: (5, 1.0, "hinoki"),
    3: (3, None, "sugi"),
    4: (None, 4.0, None),
    5: (5, 2.5, "matsu"),
    6: (3, 1.0, "hinoki"),
    7: (8, 0.5, "sugi"),
}
# device id: (name, device type, heard how long before T; None: never)
_DEVICES: dict[str, tuple[str, str, timedelta | None]] = {
    "gauge-1": ("yahagi", "river_gauge", timedelta(0)),
    "rain-1": ("asuke", "rain_gauge", timedelta(days=3)),
    "acme-soil-1": ("kaizu", "soil_moisture", None),
    "gauge-2": ("tomoe", "river_gauge", timedelta(hours=2)),
    "gauge-3": ("asuke", "river_gauge", None),
    "rain-2": ("obara", "rain_gauge", timedelta(hours=2)),
}
# (rule, hazard, level, opened how long before T), all open
_ALERTS = [
    ("river", "flood", 2, timedelta(hours=1)),
    ("river", "flood", 4, timedelta(hours=3)),
    ("slope", "landslide", 3, timedelta(hours=2)),
    ("rain", "flood", 3, timedelta(hours=5)),
    ("slope", "landslide", 1, timedelta(hours=4)),
]


@pytest.fixture
def seeded(db, city):
    db.execute("TRUNCATE stands, areas")
    db.execute("TRUNCATE alerts CASCADE")
    upsert_stands(
        db,
        [
            Stand(
                stand_id=f"7-{n}",
                rinpan=7,
                shohan=n,
                geom=box(137.30 + 0.01 * n, 35.13, 137.31 + 0.01 * n, 35.14),
                age_class=age_class,
                area_ha=area,
                species_1=species,
            )
            for n, (age_class, area, species) in _STANDS.items()
        ],
        source_file="test",
        source_crs="EPSG:4326",
    )
    for i, (area_id, kind, name) in enumerate(
        [("z-reach", "river_reach", "yahagi"), ("a-slope", "slope", "asuke"), ("m-zone", "river_reach", "hiraito")]
    ):
        upsert_area(db, area_id=area_id, kind=kind, name=name, geometry=box(137.3 + i, 35.1, 137.4 + i, 35.2))
    for device, (name, device_type, ago) in _DEVICES.items():
        tenant = "acme" if device.startswith("acme") else "toyota-city"
        upsert_device(db, device_id=device, tenant_id=tenant, device_type=device_type, name=name, lon=137.2, lat=35.1)
        if ago is not None:
            db.execute(
                "INSERT INTO device_liveness (device_id, last_seen, last_reading, online) VALUES (%s, %s, %s, true)",
                (device, T - ago, T - ago),
            )
    db.execute(
        "INSERT INTO latest_readings (device_id, metric, time, value) VALUES ('gauge-1', 'water_level', %s, 3.42)",
        (T,),
    )
    for i, (rule, hazard, level, ago) in enumerate(_ALERTS):
        db.execute(
            "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, tenant_id, state, level, peak_level,"
            " opened_at, location) VALUES (%s, %s, 'threshold', %s, %s, 'toyota-city', 'open', %s, %s, %s,"
            " ST_SetSRID(ST_MakePoint(137.2, 35.1), 4326))",
            (rule, f"s{i}", hazard, f"alert {i}", level, level, T - ago),
        )


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, seeded):
    with api_client(database_url) as c:
        yield c


def _items(client, keys, collection: str, **params: str) -> dict[str, Any]:
    r = client.get(f"/ogc/collections/{collection}/items", params={"limit": "1000", **params}, headers=keys["operator"])
    assert r.status_code == 200, r.text
    return r.json()


def _ids(body: dict[str, Any]) -> list[str]:
    return [str(f["id"]) for f in body["features"]]


def _comparable(value: object) -> object:
    if isinstance(value, str) and len(value) > 18 and value[4] == "-" and value[10] == "T":
        return datetime.fromisoformat(value)  # a date-time
    return value


def _nulls_last(values: list[object], descending: bool) -> list[object]:
    """Python's order of the values as PostgreSQL's: nulls above every value (last up, first down)."""
    present = sorted((_comparable(v) for v in values if v is not None), reverse=descending)  # type: ignore[type-var]
    nulls: list[object] = [None] * sum(v is None for v in values)
    return nulls + present if descending else present + nulls


@pytest.mark.parametrize("collection", ["devices", "stands", "areas", "alerts"])
def test_every_sortable_sorts_up_and_down_as_python_sorts_the_values(client, keys, collection):
    everything = sorted(_ids(_items(client, keys, collection)))
    assert len(everything) >= 3
    for name in COLLECTIONS[collection].sortables:
        for descending in (False, True):
            body = _items(client, keys, collection, sortby=("-" if descending else "") + name)
            assert sorted(_ids(body)) == everything, (collection, name)
            values = [f["properties"].get(name) for f in body["features"]]
            assert [_comparable(v) for v in values] == _nulls_last(values, descending), (collection, name, descending)


def test_stands_sort_by_several_keys_with_the_id_breaking_ties(client, keys):
    body = _items(client, keys, "stands", sortby="-age_class,area_ha")
    rows = [(n, age_class, area) for n, (age_class, area, _) in _STANDS.items()]
    # age_class descending, nulls first; area_ha ascending, nulls last; then the stand id
    expected = sorted(rows, key=lambda r: (r[1] is not None, -(r[1] or 0), r[2] is None, r[2] or 0, f"7-{r[0]}"))
    assert _ids(body) == [f"7-{n}" for n, _, _ in expected]
    assert _ids(body) == ["7-4", "7-7", "7-2", "7-5", "7-6", "7-1", "7-3"]
    # The same keys the other way: not the reverse, since the id still breaks ties upwards.
    ties = _items(client, keys, "stands", sortby="area_ha")
    assert _ids(ties) == ["7-7", "7-2", "7-6", "7-1", "7-5", "7-4", "7-3"]
    assert _ids(_items(client, keys, "stands", sortby="-area_ha")) == ["7-3", "7-4", "7-1", "7-5", "7-2", "7-6", "7-7"]


def test_devices_sort_by_name_then_by_the_latest_reading(client, keys):
    body = _items(client, keys, "devices", sortby="name,-last_reading")
    assert _ids(body) == ["gauge-3", "rain-1", "acme-soil-1", "rain-2", "gauge-2", "gauge-1"]
    body = _items(client, keys, "devices", sortby="device_type,-last_seen")
    assert _ids(body) == ["rain-2", "rain-1", "gauge-3", "gauge-1", "gauge-2", "acme-soil-1"]
    # Filters and sorting together: the river gauges, never heard last.
    body = _items(client, keys, "devices", sortby="last_seen", device_type="river_gauge")
    assert _ids(body) == ["gauge-2", "gauge-1", "gauge-3"]


def test_alerts_sort_by_hazard_with_their_own_order_breaking_ties(client, keys):
    body = _items(client, keys, "alerts", sortby="hazard")
    titles = [f["properties"]["title_en"] for f in body["features"]]
    # flood first, landslide after; within a hazard the newest first (the alerts' own order)
    assert titles == ["alert 0", "alert 1", "alert 3", "alert 2", "alert 4"]
    body = _items(client, keys, "alerts", sortby="-level,rule_id")
    assert [f["properties"]["level"] for f in body["features"]] == [4, 3, 3, 2, 1]
    assert [f["properties"]["rule_id"] for f in body["features"]][1:3] == ["rain", "slope"]


def test_areas_sort_by_kind_then_name_down(client, keys):
    assert _ids(_items(client, keys, "areas", sortby="kind,-name")) == ["z-reach", "m-zone", "a-slope"]
    assert _ids(_items(client, keys, "areas", sortby="+name")) == ["a-slope", "m-zone", "z-reach"]


@pytest.mark.parametrize(
    ("collection", "sortby"),
    [("stands", "-age_class,area_ha"), ("devices", "device_type"), ("alerts", "-hazard"), ("areas", "kind")],
)
def test_paging_a_sorted_collection_meets_every_feature_once_in_order(client, keys, collection, sortby):
    whole = _ids(_items(client, keys, collection, sortby=sortby))
    seen: list[str] = []
    url: str | None = f"/ogc/collections/{collection}/items?limit=2&sortby={sortby}"
    while url:
        r = client.get(url, headers=keys["operator"])
        assert r.status_code == 200, r.text
        body = r.json()
        seen += _ids(body)
        nxt = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
        if nxt:
            assert parse_qs(urlsplit(nxt).query)["sortby"] == [sortby]  # the next page keeps the order
        url = nxt
    assert seen == whole
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize(
    ("collection", "params", "words"),
    [
        ("stands", {"sortby": "colour"}, ["cannot be sorted by 'colour'", "area_ha"]),
        ("stands", {"sortby": "attributes"}, ["stand_id"]),
        ("devices", {"sortby": "silent"}, ["last_reading"]),
        ("devices", {"sortby": "water_level"}, ["sortables"]),
        ("areas", {"sortby": "river"}, ["kind"]),
        ("alerts", {"sortby": "-level,,"}, ["property names"]),
        ("devices", {"sortby": "name\x00"}, ["cannot be sorted"]),  # never reaches the database
        ("alerts", {"sortby": "level;DROP TABLE alerts"}, ["cannot be sorted"]),
        ("stands", {"properties": "colour"}, ["no property colour"]),
        ("alerts", {"properties": "level,colour"}, ["no property colour"]),
        ("stands", {"properties": "area_ha,,"}, ["empty name"]),
    ],
)
def test_bad_sortby_and_properties_are_400_with_an_ogc_exception(client, keys, collection, params, words):
    r = client.get(f"/ogc/collections/{collection}/items", params=params, headers=keys["operator"])
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "InvalidParameterValue"
    for word in words:
        assert word in body["description"]


def test_properties_keep_only_the_named_ones_with_id_and_geometry(client, keys):
    body = _items(client, keys, "stands", properties="area_ha,species_1", sortby="-area_ha", limit="2")
    assert body["numberMatched"] == len(_STANDS)
    for feature in body["features"]:
        assert set(feature["properties"]) == {"area_ha", "species_1"}
        assert feature["id"] and feature["geometry"]["type"] == "MultiPolygon"
    nxt = next(link["href"] for link in body["links"] if link["rel"] == "next")
    assert parse_qs(urlsplit(nxt).query)["properties"] == ["area_ha,species_1"]
    follow = client.get(nxt, headers=keys["operator"]).json()
    assert all(set(f["properties"]) == {"area_ha", "species_1"} for f in follow["features"])
    assert {f["properties"].get("area_ha") for f in follow["features"]} == {2.5}  # the next two of -area_ha
    # none at all
    bare = _items(client, keys, "alerts", properties="")
    assert bare["features"] and all(f["properties"] == {} for f in bare["features"])


def test_properties_may_name_a_device_s_metrics_and_an_area_s_own(client, keys):
    devices = {f["id"]: f for f in _items(client, keys, "devices", properties="water_level,name")["features"]}
    assert devices["gauge-1"]["properties"] == {"name": "yahagi", "water_level": 3.42}
    assert devices["rain-1"]["properties"] == {"name": "asuke"}  # no such metric: simply absent
    assert devices["gauge-1"]["geometry"]["type"] == "Point"
    areas = _items(client, keys, "areas", properties="kind,anything")
    assert all(set(f["properties"]) == {"kind"} for f in areas["features"])


def test_one_feature_keeps_only_the_named_properties(client, keys):
    r = client.get("/ogc/collections/devices/items/gauge-1", params={"properties": "name"}, headers=keys["operator"])
    assert r.status_code == 200
    assert r.json()["properties"] == {"name": "yahagi"}
    assert r.json()["geometry"]["type"] == "Point"
    whole = client.get("/ogc/collections/devices/items/gauge-1", headers=keys["operator"]).json()
    assert {"name", "water_level", "status"} <= set(whole["properties"])
    bad = client.get("/ogc/collections/alerts/items/1", params={"properties": "nope"}, headers=keys["operator"])
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameterValue"


def test_sortables_are_linked_typed_and_what_sortby_takes(client, keys):
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    assert SORTING in conformance and PROPERTIES in conformance
    for collection, c in COLLECTIONS.items():
        doc = client.get(f"/ogc/collections/{collection}", headers=keys["operator"]).json()
        link = next(link for link in doc["links"] if link["rel"] == REL_SORTABLES)
        r = client.get(link["href"], headers=keys["operator"])
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/schema+json"
        sortables = r.json()
        assert list(sortables["properties"]) == list(c.sortables)
        assert sortables["additionalProperties"] is False
        queryables = client.get(f"/ogc/collections/{collection}/queryables", headers=keys["operator"]).json()
        for name in sortables["properties"]:
            if name in queryables["properties"]:
                assert sortables["properties"][name] == queryables["properties"][name]
    assert client.get("/ogc/collections/stands/sortables", headers=keys["partner"]).status_code == 403
    assert client.get("/ogc/collections/nope/sortables", headers=keys["operator"]).status_code == 404
    assert client.get("/ogc/collections/stands/sortables").status_code == 401


def test_a_partner_sorts_only_its_own_devices(client, keys):
    r = client.get("/ogc/collections/devices/items", params={"sortby": "-name"}, headers=keys["partner"])
    assert _ids(r.json()) == ["acme-soil-1"]


def test_the_openapi_document_tells_of_sortby_and_properties(client):
    spec = client.get("/openapi.json").json()
    items = spec["paths"]["/ogc/collections/{collection_id}/items"]["get"]
    assert "sortby" in items["description"] and "properties=" in items["description"]
    assert "/ogc/collections/{collection_id}/sortables" in spec["paths"]


def test_a_plain_http_client_pages_a_sorted_collection_on_a_real_server(database_url, seeded, keys):
    """GDAL's OAPIF driver sends no sortby: a plain HTTP client on a live uvicorn, following next links."""
    with served(database_url) as url, httpx.Client(base_url=url, headers=keys["viewer"], timeout=30) as http:
        seen: list[str] = []
        next_url: str | None = "/ogc/collections/devices/items?limit=4&sortby=-last_seen,%2Bname&properties=name"
        while next_url:
            r = http.get(next_url)
            assert r.status_code == 200, r.text
            seen += [f["id"] for f in r.json()["features"]]
            assert all(set(f["properties"]) <= {"name"} for f in r.json()["features"])
            next_url = next((link["href"] for link in r.json()["links"] if link["rel"] == "next"), None)
        assert seen == ["gauge-3", "acme-soil-1", "gauge-1", "rain-2", "gauge-2", "rain-1"]
        bad = http.get("/ogc/collections/devices/items", params={"sortby": "silent"})
        assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameterValue"
