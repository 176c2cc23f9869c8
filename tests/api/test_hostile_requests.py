"""Hostile HTTP requests (issue 14, item 3) over a real connection to the real app and database: every one is
answered with a 4xx problem document, never a 500 or a reset connection."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from fastapi.exceptions import RequestValidationError

from api.app import create_app
from api.problems import validation_problem_handler
from devices.keys import Role, create_key
from geo import Stand, upsert_stands
from mimamori import strict_json
from mimamori.settings import Settings
from tests.alerts_helpers import ApiServer, clean_alert_tables
from tests.services import HubProcess, free_port, wait_for_port

LIMIT = 64 * 1024  # the body limit of the test app: small, so the tests send little


@pytest.fixture
def keys(db, city) -> dict[str, str]:
    return {
        "admin": create_key(db, "toyota-city", Role.admin, "hostile admin")[1],
        "partner": create_key(db, "acme", Role.partner, "hostile partner")[1],
    }


@pytest.fixture
def api(settings, pool, db, keys) -> Iterator[httpx.Client]:
    clean_alert_tables(db)
    s = settings.model_copy(update={"api_max_body_bytes": LIMIT, "api_import_max_bytes": 4 * LIMIT})
    with ApiServer(create_app(s, pool)) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _as(who: str, keys: dict[str, str], content_type: str | None = "application/json") -> dict[str, str]:
    return {"X-API-Key": keys[who]} | ({"Content-Type": content_type} if content_type else {})


def _problem(response: httpx.Response, status: int, error: str = "invalid") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert body["detail"], body
    return body


# -- NaN, Infinity and numbers beyond a double in JSON bodies ------------------------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "9" * 400]
BODIES = {
    "/v1/devices": '{"id": "x-1", "device_type": "rain_gauge", "lon": %s, "lat": 35.0}',
    "/v1/tenants": '{"id": %s}',
    "/v1/keys": '{"tenant_id": "acme", "role": "viewer", "name": %s}',
    "/v1/alert-webhooks": '{"url": "https://hooks.example.org/x", "min_level": %s}',
}


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize("path", list(BODIES))
def test_non_finite_numbers_in_json_bodies_are_422_problems(api, keys, path, number):
    r = api.post(path, content=BODIES[path] % number, headers=_as("admin", keys))
    problem = _problem(r, 422)
    assert problem["detail"][0]["type"] == "json_invalid"
    assert "NaN" not in r.text and "Infinity" not in r.text  # the input is not echoed as if it were JSON


@pytest.mark.parametrize("bbox", ["nan,nan,nan,nan", "-inf,-90,inf,90", "1e400,0,1,1"])
def test_non_finite_numbers_in_a_device_bbox_are_422(api, keys, bbox):
    _problem(api.get(f"/v1/devices?bbox={bbox}", headers=_as("admin", keys, None)), 422)


def test_a_validation_error_about_a_non_finite_value_renders_without_echoing_it():
    """Query values reach validation as floats (``?x=nan``): the handler must still answer, minus the echo."""
    import asyncio

    exc = RequestValidationError(
        [{"type": "greater_than", "loc": ("query", "x"), "msg": "bad", "input": float("nan"), "ctx": {"gt": 0}}]
    )
    response = asyncio.run(validation_problem_handler(None, exc))  # type: ignore[arg-type]
    assert response.status_code == 422
    assert json.loads(response.body) == {
        "error": "invalid",
        "detail": [{"type": "greater_than", "loc": ["query", "x"], "msg": "bad", "ctx": {"gt": 0}}],
    }


@pytest.mark.parametrize(
    "text",
    ["NaN", "[1e400]", "[" * 100_000, "[" * 65 + "]" * 65, '"\\ud800"', b"\xff\xfe".decode("latin-1")],
)
def test_strict_json_refuses_what_json_would_take_or_choke_on(text):
    with pytest.raises(json.JSONDecodeError):
        strict_json.loads(text)


def test_strict_json_takes_ordinary_documents():
    assert strict_json.loads('{"a": [1, 2.5, {"b": null}], "c": "\\u00e9"}') == {"a": [1, 2.5, {"b": None}], "c": "é"}
    assert strict_json.loads("[" * 64 + "]" * 64) is not None


def test_every_route_parses_bodies_strictly():
    from fastapi.routing import APIRoute, iter_route_contexts

    from api.bodies import StrictJSONRoute

    app = create_app(Settings())
    contexts = iter_route_contexts(app.routes)  # routes of included routers too
    routes = [c.original_route for c in contexts if isinstance(c.original_route, APIRoute)]
    assert len(routes) > 40
    assert [r.path for r in routes if not isinstance(r, StrictJSONRoute)] == []


# -- bulk import ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", "[" * 100_000),  # was a RecursionError
        ("application/geo+json", '{"type": "FeatureCollection", "features": [{"properties": {"lon": NaN}}]}'),
        ("application/json", '{"type": "FeatureCollection", "features": [[1, 2]]}'),
        ("application/json", '{"type": "FeatureCollection", "features": [{"properties": [1]}]}'),
        ("text/csv", "id,type,name\nx-1,rain_gauge," + "n" * 131_073 + "\n"),  # over csv.field_size_limit()
        ("text/csv", 'id,type,name\nx-1,rain_gauge,"unterminated\n' + "a" * 140_000),
    ],
)
def test_unreadable_import_bodies_are_422_problems(api, keys, content_type, body):
    r = api.post("/v1/devices/import", content=body, headers=_as("partner", keys, content_type))
    _problem(r, 422)


def test_bad_values_inside_an_import_are_reported_per_row(api, keys):
    deep = json.dumps({"a": json.loads("[" * 70 + "]" * 70)}).replace('"', '""')
    csv_text = (
        f'id,type,lon,lat,metadata\nx-1,rain_gauge,137.1,35.1,"{deep}"\nx-2,rain_gauge,137.1,35.1,"{{""a"": NaN}}"\n'
    )
    geo = {
        "type": "FeatureCollection",
        "features": [
            {"properties": {"id": "x-3", "type": "rain_gauge"}, "geometry": {"type": "Point", "coordinates": 5}}
        ],
    }
    r = api.post("/v1/devices/import", content=csv_text, headers=_as("partner", keys, "text/csv"))
    assert r.status_code == 200, r.text
    assert [(b["id"], b["reason"]) for b in r.json()["bad"]] == [(i, "metadata is not JSON") for i in ("x-1", "x-2")]
    r = api.post("/v1/devices/import", json=geo, headers=_as("partner", keys))
    assert r.status_code == 200 and r.json()["bad"][0]["reason"] == "Point without coordinates", r.text


# -- dates at the ends of the calendar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "end=0001-01-01T00:00:00Z",
        "start=0001-01-01T00:00:00Z&end=0001-01-02T00:00:00Z&bucket=1d",
        "start=9999-12-30T00:00:00Z&end=9999-12-31T23:59:00Z&bucket=366d",
        "bucket=99999999999999999d",
    ],
)
def test_readings_with_instants_at_the_ends_of_the_calendar_are_422(api, keys, query):
    _problem(api.get(f"/v1/devices/gauge-1/readings?{query}", headers=_as("admin", keys, None)), 422)


def test_stand_summary_with_an_end_at_year_one_is_422(api, keys, db):
    from shapely.geometry import box

    db.execute("TRUNCATE stands, areas")
    upsert_stands(
        db,
        [Stand(stand_id="5-1", rinpan=5, shohan=1, geom=box(137.3, 35.1, 137.31, 35.11))],
        source_file="test",
        source_crs="EPSG:4326",
    )
    r = api.get("/v1/stands/5-1/summary?end=0001-01-01T00:00:00Z", headers=_as("admin", keys, None))
    _problem(r, 422)
    assert api.get("/v1/stands/5-1/summary", headers=_as("admin", keys, None)).status_code == 200


# -- PATCH with nulls -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["metadata", "name", "device_type", "status", "expected_interval_s", "tenant_id"])
def test_patching_a_field_to_null_that_cannot_be_null_is_422(api, keys, field):
    r = api.patch("/v1/devices/acme-soil-1", json={field: None}, headers=_as("partner", keys))
    problem = _problem(r, 422)
    assert f"{field} cannot be null" in problem["detail"][0]["msg"]


def test_metadata_is_cleared_with_an_empty_object_and_a_location_with_nulls(api, keys):
    r = api.patch("/v1/devices/gauge-1", json={"metadata": {}, "lon": None, "lat": None}, headers=_as("admin", keys))
    assert r.status_code == 200, r.text
    assert (r.json()["metadata"], r.json()["lon"]) == ({}, None)


# -- the body limit ---------------------------------------------------------------------------------------------


def test_a_body_over_the_limit_with_a_content_length_is_413_at_once(api, keys):
    r = api.post("/v1/telemetry?device=acme-soil-1", content=b"x" * (10 * 1024 * 1024), headers=_as("partner", keys))
    _problem(r, 413, "too_large")


def test_a_chunked_body_over_the_limit_is_413_as_it_streams(api, keys):
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(200):  # 12.5 MB offered, chunk by chunk, with no Content-Length
            sent += 1
            yield b"[" + b" " * (64 * 1024 - 1)

    for path in ("/v1/telemetry?device=acme-soil-1", "/v1/devices", "/v1/devices/import"):
        r = api.post(path, content=chunks(), headers=_as("partner", keys))
        _problem(r, 413, "too_large")
    assert api.get("/healthz").status_code == 200  # and the server carries on


def test_import_has_its_own_larger_limit(api, keys):
    rows = "id,type,lon,lat\n" + "".join(f"x-{i},rain_gauge,137.1,35.1\n" for i in range(4000))
    assert LIMIT < len(rows) < 4 * LIMIT
    r = api.post("/v1/devices/import", content=rows, headers=_as("partner", keys, "text/csv"))
    assert r.status_code == 200 and r.json()["created"] == 4000, r.text[:300]
    over = rows + "y," * (4 * LIMIT)
    _problem(api.post("/v1/devices/import", content=over, headers=_as("partner", keys, "text/csv")), 413, "too_large")


def test_a_client_asking_to_continue_gets_413_without_sending_the_body(api, keys):
    """curl sends ``Expect: 100-continue`` for large bodies: the answer comes before any byte of it."""
    host, port = api.base_url.host, api.base_url.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/telemetry?device=acme-soil-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {keys['partner']}\r\nContent-Length: {10 * 1024 * 1024}\r\n".encode()
            + b"Expect: 100-continue\r\n\r\n"
        )
        head = sock.recv(65536).decode()
    assert head.startswith("HTTP/1.1 413"), head
    assert '"too_large"' in head


def test_the_api_process_takes_its_limit_from_the_environment(settings, keys):
    port = free_port()
    env = {"MIMAMORI_API_PORT": str(port), "MIMAMORI_API_MAX_BODY_BYTES": "2048"}
    proc = HubProcess(settings, "api", env=env, ready=None)
    try:
        wait_for_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}/v1/tenants"
        body = json.dumps({"id": "t" * 3000})
        r = httpx.post(url, content=body, headers=_as("admin", keys), timeout=30)
        _problem(r, 413, "too_large")
        assert "2048" in r.json()["detail"]
    finally:
        proc.stop()
