"""OGC API – Features the way GDAL reads it: numberMatched, queryables and schemas, doubles written as doubles, and
errors as the standards say (issue 22). Over HTTP against the real PostGIS, and with the real ogrinfo (GDAL 3.6's
OAPIF driver) on a real uvicorn server."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool
from pyproj import CRS
from shapely.geometry import box

from api.app import create_app
from geo import Stand, upsert_area, upsert_stands
from geo.feature_sql import within_count_budget
from geo.stand_import import Register, prepare
from geo.stand_model import ColumnMap
from simulators.stand_register import SOURCE_CRS, SampleOptions, generate
from tests.alerts_helpers import ApiServer
from tests.geo_support import api_client, geo_settings, role_keys

STANDS = 1200  # a sample register: 林班 of 1–20 ha stands, volumes and elevations whole numbers (548, not 548.3)
T = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
SCHEMA_JSON = "application/schema+json"
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"
HAS_OGRINFO = shutil.which("ogrinfo") is not None


@pytest.fixture(scope="module")
def sample_stands() -> list[Stand]:
    frame = generate(SampleOptions(count=STANDS))
    rows = pd.DataFrame(frame.drop(columns=frame.geometry.name)).to_dict("records")
    prepared = prepare(Register(rows, list(frame.geometry.array), CRS.from_user_input(SOURCE_CRS)), ColumnMap.load())
    assert not prepared.rejections
    return prepared.stands


@pytest.fixture(scope="module")
def stands_loaded(database_url: str, sample_stands: list[Stand]) -> None:
    """The sample register in `stands`, once for the module (the `db` fixture empties devices and tenants, not
    stands)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE stands")
        upsert_stands(conn, sample_stands, source_file="sample.gpkg", source_crs="EPSG:6675")
        conn.execute("ANALYZE stands")


@pytest.fixture
def world(db: psycopg.Connection, city: dict[str, str], stands_loaded: None) -> dict[str, Any]:
    db.execute("TRUNCATE areas")
    upsert_area(db, area_id="asuke-slope", kind="slope", name="足助", geometry=box(137.30, 35.13, 137.33, 35.15))
    upsert_area(db, area_id="inabu-zone", kind="evacuation_zone", name="稲武", geometry=box(137.4, 35.2, 137.5, 35.3))
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
        " peak_level, value, opened_at, resolved_at, location) VALUES"
        " ('river', 'gauge-1', 'threshold', 'flood', 'Yahagi caution', 'gauge-1', 'toyota-city', 'open', 2, 2, 4.0,"
        "  %(t)s, NULL, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326)),"
        " ('rain', 'rain-1', 'threshold', 'flood', 'Heavy rain', 'rain-1', 'toyota-city', 'open', 1, 1, 30.5,"
        "  %(t)s, NULL, ST_SetSRID(ST_MakePoint(137.36, 35.23), 4326)),"
        " ('old', 'gauge-1', 'threshold', 'flood', 'Last week', 'gauge-1', 'toyota-city', 'resolved', 3, 3, 5.0,"
        "  %(old)s, %(old_end)s, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326))",
        {"t": T, "old": T - timedelta(days=7), "old_end": T - timedelta(days=6)},
    )
    return {"keys": role_keys(db)}


@pytest.fixture
def client(database_url: str, world: dict[str, Any]) -> Iterator[TestClient]:
    with api_client(database_url) as c:
        yield c


@pytest.fixture
def keys(world: dict[str, Any]) -> dict[str, dict[str, str]]:
    return world["keys"]


def _count(db: psycopg.Connection, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])


# --- numberMatched (Part 1, /req/core/fc-numberMatched) ----------------------------------------------------------


def _within(box_: str) -> str:
    """PostGIS's own test of a bbox, not the API's SQL."""
    return f"ST_Intersects(geom, ST_MakeEnvelope({box_}, 4326))"


@pytest.mark.parametrize(
    ("params", "where", "args"),
    [
        ({}, "true", ()),
        ({"bbox": "137.3,35.1,137.45,35.25"}, _within("137.3, 35.1, 137.45, 35.25"), ()),
        ({"bbox": "137,34,138,36"}, _within("137, 34, 138, 36"), ()),
        ({"species_1": "スギ"}, "species_1 = %s", ("スギ",)),
        (
            {"bbox": "137.3,35.1,137.45,35.25", "ownership": "private"},
            "ownership = %s AND " + _within("137.3, 35.1, 137.45, 35.25"),
            ("private",),
        ),
        ({"age_class": "11"}, "age_class = %s", (11,)),
        ({"bbox": "0,0,1,1"}, "false", ()),
    ],
)
def test_number_matched_is_postgis_own_count_of_the_same_selection(client, keys, db, params, where, args):
    expected = _count(db, f"SELECT count(*) FROM stands WHERE {where}", args)
    first = client.get("/ogc/collections/stands/items", params={**params, "limit": 7}, headers=keys["forestry"])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["numberMatched"] == expected
    assert body["numberReturned"] == min(7, expected)
    if expected > 7:  # the last page tells it too, from its own rows
        last = expected - expected % 7 if expected % 7 else expected - 7
        tail = client.get(
            "/ogc/collections/stands/items", params={**params, "limit": 7, "offset": last}, headers=keys["forestry"]
        ).json()
        assert tail["numberMatched"] == expected
        assert not any(link["rel"] == "next" for link in tail["links"])


def test_a_middle_page_is_not_counted_again_and_a_page_past_the_end_is_not_guessed(client, keys):
    middle = client.get("/ogc/collections/stands/items?limit=10&offset=500", headers=keys["forestry"]).json()
    assert "numberMatched" not in middle  # Part 1 lets it go: clients read it from the first page
    past = client.get(f"/ogc/collections/stands/items?limit=10&offset={STANDS + 5}", headers=keys["forestry"]).json()
    assert past["numberReturned"] == 0 and "numberMatched" not in past


def test_number_matched_counts_only_what_the_caller_may_see(client, keys):
    def matched(collection: str, who: str, **params: str) -> int:
        r = client.get(f"/ogc/collections/{collection}/items", params={"limit": 1, **params}, headers=keys[who])
        assert r.status_code == 200, r.text
        return int(r.json()["numberMatched"])

    assert matched("devices", "viewer") == 3
    assert matched("devices", "partner") == 1  # acme's probe only: the count is confined like the page
    assert matched("devices", "viewer", bbox="137.1,35.0,137.4,35.3") == 2
    assert matched("devices", "viewer", datetime=f"{(T - timedelta(hours=1)).isoformat()}/..") == 1
    assert matched("areas", "viewer") == 3 and matched("areas", "partner") == 1
    assert matched("alerts", "operator") == 2  # the active ones
    assert matched("alerts", "operator", datetime=f"{(T - timedelta(days=8)).isoformat()}/..") == 3
    assert matched("alerts", "partner") == 0


def test_a_count_over_its_budget_is_left_out_and_runs_without_jit(db, monkeypatch):
    import geo.feature_sql

    seen: list[str] = []

    def count() -> int:
        seen.append(db.execute("SHOW jit").fetchone()[0])
        db.execute("SELECT pg_sleep(0.2)")
        return 1

    assert within_count_budget(db, lambda: 7) == 7
    monkeypatch.setattr(geo.feature_sql, "COUNT_TIMEOUT_MS", 20)
    assert within_count_budget(db, count) is None
    assert seen == ["off"]
    assert db.execute("SHOW statement_timeout").fetchone()[0] == "0"  # the settings went with the transaction


# --- a real GDAL on a real server -----------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    requests: list[str] = field(default_factory=list)  # path?query of every HTTP request the server received

    def items_requests(self, collection: str) -> list[str]:
        return [r for r in self.requests if r.startswith(f"/ogc/collections/{collection}/items")]


@contextmanager
def served(database_url: str) -> Iterator[Served]:
    """The app on a real port (uvicorn), recording every request it is sent."""
    pool = ConnectionPool(database_url, min_size=1, max_size=4, open=True)
    app = create_app(geo_settings(database_url), pool)
    record = Served("")

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope["query_string"].decode()
            record.requests.append(scope["path"] + (f"?{query}" if query else ""))
        await app(scope, receive, send)

    try:
        with ApiServer(recording) as server:
            record.url = server.url
            yield record
    finally:
        pool.close()


def _ogrinfo(served: Served, key: dict[str, str], tmp_path: Path, *options: str) -> str:
    headers = tmp_path / "headers.txt"
    headers.write_text(f"X-API-Key: {key['X-API-Key']}\n")
    command = ["ogrinfo", "--config", "GDAL_HTTP_HEADER_FILE", str(headers), "-ro", "-so", f"OAPIF:{served.url}/ogc"]
    done = subprocess.run([*command, *options], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _field_types(summary: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+): (\S+) \(", summary, flags=re.MULTILINE))


@pytest.mark.skipif(not HAS_OGRINFO, reason="ogrinfo (Debian gdal-bin) is not installed")
def test_ogrinfo_counts_the_stands_from_the_first_page(database_url, world, keys, db, tmp_path):
    expected = _count(db, "SELECT count(*) FROM stands")
    assert expected == STANDS
    with served(database_url) as server:
        summary = _ogrinfo(server, keys["forestry"], tmp_path, "stands")
    assert f"Feature Count: {expected}" in summary, summary
    # GDAL's default page is 10 stands: paging through would have been 120 requests. It read one page.
    assert len(server.items_requests("stands")) == 1, server.requests
    assert len(server.requests) <= 4, server.requests  # collections, the feature schema, one page


@pytest.mark.skipif(not HAS_OGRINFO, reason="ogrinfo (Debian gdal-bin) is not installed")
@pytest.mark.parametrize("schema", ["used", "ignored"])
def test_ogrinfo_types_doubles_as_real_and_integers_as_integer(database_url, world, keys, db, tmp_path, schema):
    """With the feature schema GDAL types every field from it; without it (IGNORE_SCHEMA), from the first page,
    where the whole volumes and elevations now come as 548.0."""
    first = db.execute("SELECT volume_m3, elevation_m FROM stands ORDER BY stand_id LIMIT 10").fetchall()
    assert all(v == int(v) and e == int(e) for v, e in first)  # the case of the issue: whole doubles on page one
    options = ["-oo", "IGNORE_SCHEMA=YES"] if schema == "ignored" else []
    with served(database_url) as server:
        types = _field_types(_ogrinfo(server, keys["forestry"], tmp_path, *options, "stands"))
        alert_types = _field_types(_ogrinfo(server, keys["operator"], tmp_path, *options, "alerts"))
    assert any("feature-schema" in r for r in server.requests) == (schema == "used")
    for name in ("volume_m3", "elevation_m", "area_ha", "height_m", "slope_deg"):
        assert types[name] == "Real", (name, types)
    for name in ("rinpan", "shohan", "age_1", "age_class", "site_index", "age_reference_year"):
        assert types[name] == "Integer", (name, types)
    assert types["imported_at"] == "DateTime" and types["protection_forest"] == "StringList"
    assert (alert_types["value"], alert_types["level"], alert_types["opened_at"]) == ("Real", "Integer", "DateTime")
    if schema == "used":  # a field null on the whole first page is still typed as its column
        nulls = "SELECT count(age_3) FROM (SELECT age_3 FROM stands ORDER BY stand_id LIMIT 10) s"
        assert _count(db, nulls) == 0
        assert types["age_3"] == "Integer" and alert_types["resolved_at"] == "DateTime"


# --- doubles written as doubles -------------------------------------------------------------------------------


def test_whole_doubles_are_written_with_a_decimal_point(client, keys, db):
    stand_id, volume, elevation = db.execute(
        "SELECT stand_id, volume_m3, elevation_m FROM stands ORDER BY stand_id LIMIT 1"
    ).fetchone()
    raw = client.get(f"/ogc/collections/stands/items/{stand_id}", headers=keys["forestry"]).text
    assert f'"volume_m3":{volume:.1f}' in raw and f'"elevation_m":{elevation:.1f}' in raw, raw
    assert re.search(r'"rinpan":\d+[,}]', raw)  # integers stay integers
    page = client.get("/ogc/collections/stands/items?limit=3", headers=keys["forestry"]).text
    assert f'"volume_m3":{volume:.1f}' in page
    assert '"value":4.0' in client.get("/ogc/collections/alerts/items", headers=keys["operator"]).text
    assert f'"volume_m3":{volume:.1f}' in client.get(f"/v1/stands/{stand_id}", headers=keys["forestry"]).text


# --- queryables and schemas (Part 3, Part 5 style) ----------------------------------------------------------------

_COLUMN_TYPES = {  # information_schema's data_type → the schema's type (and format)
    "text": ("string", None),
    "integer": ("integer", None),
    "smallint": ("integer", None),
    "double precision": ("number", None),
    "boolean": ("boolean", None),
    "timestamp with time zone": ("string", "date-time"),
    "jsonb": ("object", None),
    "ARRAY": ("array", None),
}


def _columns(db: psycopg.Connection, table: str) -> dict[str, str]:
    rows = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s AND table_schema ="
        " current_schema()",
        (table,),
    ).fetchall()
    return dict(rows)


def _links(client: TestClient, keys: dict[str, dict[str, str]], collection: str) -> dict[str, dict[str, str]]:
    doc = client.get(f"/ogc/collections/{collection}", headers=keys["viewer"]).json()
    return {link["rel"]: link for link in doc["links"]}


def _schema(client: TestClient, keys: dict[str, dict[str, str]], href: str, who: str = "viewer") -> dict[str, Any]:
    r = client.get(href, headers=keys[who])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == SCHEMA_JSON
    doc = r.json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == urljoin("http://testserver", href.split("?")[0])
    assert doc["type"] == "object"
    return doc


def test_collections_link_their_queryables_and_schemas(client, keys):
    for collection in ("devices", "stands", "areas", "alerts"):
        links = _links(client, keys, collection)
        for rel in (REL_QUERYABLES, REL_SCHEMA, "describedBy"):
            assert links[rel]["type"] == SCHEMA_JSON, (collection, rel)
            _schema(client, keys, links[rel]["href"])
    conformance = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters" in conformance
    items = client.get("/ogc/collections/stands/items?limit=1", headers=keys["viewer"])
    assert f'rel="{REL_QUERYABLES}"' in items.headers["link"]  # /req/queryables/queryables-link B
    assert client.get("/ogc/collections/stands/queryables", headers=keys["partner"]).status_code == 403
    assert client.get("/ogc/collections/nope/schema", headers=keys["viewer"]).status_code == 404
    assert client.get("/ogc/collections/stands/schema").status_code == 401


def test_the_stands_schema_types_every_column_as_the_table_does(client, keys, db):
    doc = _schema(client, keys, _links(client, keys, "stands")[REL_SCHEMA]["href"])
    columns = _columns(db, "stands")
    assert set(doc["properties"]) == (set(columns) - {"geom"}) | {"geometry"}
    for name, data_type in columns.items():
        if name == "geom":
            continue
        kind, fmt = _COLUMN_TYPES[data_type]
        prop = doc["properties"][name]
        assert (prop["type"], prop.get("format")) == (kind, fmt), (name, data_type, prop)
    assert doc["properties"]["protection_forest"]["items"] == {"type": "string"}
    geometry = doc["properties"]["geometry"]
    assert geometry["format"] == "geometry-multipolygon" and geometry["x-ogc-role"] == "primary-geometry"
    assert geometry["$ref"] == "https://geojson.org/schema/MultiPolygon.json"
    assert doc["properties"]["stand_id"]["x-ogc-role"] == "id"
    assert doc["additionalProperties"] is False


def test_the_other_collections_type_their_properties_as_their_tables_do(client, keys, db):
    tables = {
        "alerts": _columns(db, "alerts"),
        "areas": _columns(db, "areas"),
        "devices": _columns(db, "devices") | _columns(db, "device_liveness"),
    }
    derived = {"silent": ("boolean", None), "silent_since": ("string", "date-time")}  # devices/silence.py judges
    for collection, columns in tables.items():
        doc = _schema(client, keys, f"/ogc/collections/{collection}/schema", "operator")
        for name, prop in doc["properties"].items():
            if name == "geometry":
                continue
            expected = derived[name] if name in derived else _COLUMN_TYPES[columns[name]]
            assert (prop["type"], prop.get("format")) == expected, (collection, name, prop)


def test_features_carry_the_types_their_schema_says(client, keys):
    python_types = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict, "array": list}
    for collection, who in (("stands", "forestry"), ("devices", "viewer"), ("areas", "viewer"), ("alerts", "operator")):
        described = _schema(client, keys, f"/ogc/collections/{collection}/feature-schema", who)
        properties = described["properties"]["properties"]["properties"]
        page = client.get(f"/ogc/collections/{collection}/items?limit=50", headers=keys[who]).json()
        assert page["features"], collection
        for feature in page["features"]:
            for name, prop in properties.items():
                value = feature["properties"].get(name)
                if value is None:
                    continue
                assert type(value) is python_types[prop["type"]], (collection, name, value)
                if prop.get("format") == "date-time":
                    datetime.fromisoformat(value)


def test_every_queryable_is_an_equality_parameter_of_its_items(client, keys, db):
    """Part 3 Queryables as Query Parameters: each simple queryable filters the items by its value."""
    for collection, who in (("stands", "forestry"), ("devices", "viewer"), ("areas", "viewer"), ("alerts", "operator")):
        queryables = _schema(client, keys, f"/ogc/collections/{collection}/queryables", who)
        schema = _schema(client, keys, f"/ogc/collections/{collection}/schema", who)
        assert queryables["additionalProperties"] is False
        assert queryables["properties"]["geometry"]["x-ogc-role"] == "primary-geometry"
        first = client.get(f"/ogc/collections/{collection}/items?limit=1", headers=keys[who]).json()["features"][0]
        for name, prop in queryables["properties"].items():
            if name == "geometry":
                continue
            assert prop["type"] == schema["properties"][name]["type"], (collection, name)
            value = first["properties"][name]
            if value is None:
                continue
            page = client.get(
                f"/ogc/collections/{collection}/items", params={name: str(value), "limit": 1000}, headers=keys[who]
            ).json()
            assert page["features"] and all(f["properties"][name] == value for f in page["features"]), (
                collection,
                name,
            )
            if collection == "stands":
                assert page["numberMatched"] == _count(db, f"SELECT count(*) FROM stands WHERE {name} = %s", (value,))


# --- errors as the standards say ----------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["14/99999/1", "23/0/0", "3/8/0", "3/0/-1", "-1/0/0", "99999999999999999999/0/0"])
def test_a_tile_address_naming_no_tile_is_404(client, keys, address):
    r = client.get(f"/v1/tiles/stands/{address}.mvt", headers=keys["viewer"])
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "not_found"


@pytest.mark.parametrize("address", ["a/0/0", "3/1.5/0", "3/0/1e2", "3/0x1/0", "3/%201/0", "3/0/٣"])
def test_a_malformed_tile_address_is_400(client, keys, address):
    r = client.get(f"/v1/tiles/devices/{address}.mvt", headers=keys["viewer"])
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid" and "whole number" in r.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "99999999999999999999"},
        {"offset": str(2**63)},
        {"offset": "-1"},
        {"limit": "-5"},
        {"limit": "0"},
        {"limit": "9" * 5000},
        {"offset": "1e3"},
    ],
)
def test_bad_paging_is_the_ogc_400_exception(client, keys, params):
    for collection in ("stands", "devices"):
        r = client.get(f"/ogc/collections/{collection}/items", params=params, headers=keys["forestry"])
        assert r.status_code == 400, (collection, r.text)
        assert r.json()["code"] == "InvalidParameterValue" and r.json()["description"]


def test_a_huge_limit_is_capped_not_refused(database_url, world, keys):
    """Part 1 lets a server return fewer features than the limit asks (/per/core/fc-limit-response-2)."""
    with api_client(database_url, ogc_max_limit=50) as small:
        r = small.get("/ogc/collections/stands/items", params={"limit": str(10**30)}, headers=keys["forestry"])
    assert r.status_code == 200
    assert r.json()["numberReturned"] == 50 and r.json()["numberMatched"] == STANDS


def test_datetime_on_stands_which_have_no_time_matches_them_all_and_a_bad_one_is_400(client, keys):
    """Part 1, /req/core/fc-time-response C: datetime matches the features without a temporal geometry, too."""
    ok = client.get("/ogc/collections/stands/items?limit=1&datetime=2026-01-01T00:00:00Z", headers=keys["forestry"])
    assert ok.status_code == 200 and ok.json()["numberMatched"] == STANDS
    bad = client.get("/ogc/collections/stands/items?datetime=last-week", headers=keys["forestry"])
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameterValue"
