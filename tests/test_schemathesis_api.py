"""Schemathesis over the whole OpenAPI of the app, as an admin and as a partner, against the real database.

Every operation gets generated requests (valid and invalid) with a real key; no answer may be a server error
(5xx), and every answer with a documented schema must match it (and its documented media type).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from psycopg_pool import ConnectionPool
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from shapely.geometry import box

from api.app import create_app
from devices.keys import Role, create_key
from geo import Stand, upsert_area, upsert_stands
from mimamori.settings import Settings

# The live alert stream (Server-Sent Events) never ends by design: a generated request would hang the run.
# Its behaviour is covered over real HTTP in tests/test_alerts_api.py.
_STREAMING = r"^/v1/alerts/stream$"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests every run: a failure here is reproducible
)
T = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def _world(db: psycopg.Connection) -> None:
    """Something behind most ids: stands, an area, readings and an alert, so requests reach the deep paths."""
    db.execute("TRUNCATE stands, areas")
    upsert_stands(
        db,
        [
            Stand(stand_id="5-1", rinpan=5, shohan=1, geom=box(137.30, 35.13, 137.31, 35.14), species_1="スギ"),
            Stand(stand_id="5-2", rinpan=5, shohan=2, geom=box(137.31, 35.13, 137.32, 35.14), ownership="private"),
        ],
        source_file="test",
        source_crs="EPSG:4326",
    )
    upsert_area(db, area_id="slope-a", kind="slope", name="A", geometry=box(137.315, 35.135, 137.33, 35.15))
    db.execute(
        "INSERT INTO readings (time, device_id, metric, value) VALUES (%(t0)s, 'gauge-1', 'water_level', 2.0),"
        " (%(t1)s, 'gauge-1', 'water_level', 2.5), (%(t1)s, 'acme-soil-1', 'soil_moisture', 0.3)",
        {"t0": T - timedelta(hours=2), "t1": T - timedelta(hours=1)},
    )
    db.execute("TRUNCATE alerts CASCADE")
    db.execute(
        "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
        " peak_level, opened_at, location) VALUES ('river', 'gauge-1', 'threshold', 'flood', 'Yahagi caution',"
        " 'gauge-1', 'toyota-city', 'open', 2, 2, %s, ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326))",
        (T,),
    )


# The document is the app's own; requests go to a fresh app per test, on the run's scratch database.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi()).exclude(path_regex=_STREAMING)


def _keyed(db: psycopg.Connection, tenant: str, role: Role) -> dict[str, str]:
    _, secret = create_key(db, tenant, role, f"schemathesis {role}")
    return {"X-API-Key": secret}


def _call(client: TestClient, case: Any, headers: dict[str, str]) -> None:
    """Send a generated case through httpx (the test client) and run the checks on the answer.

    Schemathesis' own transport goes through requests, whose connection bookkeeping breaks under urllib3-future
    (installed with the [grafana] extra), so the request is made here from the case's serialised form.
    """
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    kwargs.pop("auth", None)
    cookies = kwargs.pop("cookies", None)
    if cookies:
        client.cookies.update(cookies)
    data = kwargs.pop("data", None)
    if isinstance(data, (bytes, str)):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    response = client.request(**kwargs)
    client.cookies.clear()
    case.validate_response(response, checks=CHECKS)


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool, db: psycopg.Connection, city: dict[str, str]
) -> Iterator[TestClient]:
    _world(db)
    with TestClient(create_app(settings, pool), raise_server_exceptions=False) as test_client:
        yield test_client


@schema.parametrize()
@EXAMPLES
def test_api_as_admin(case: Any, client: TestClient, db: psycopg.Connection) -> None:
    _call(client, case, _keyed(db, "toyota-city", Role.admin))


@schema.parametrize()
@EXAMPLES
def test_api_as_partner(case: Any, client: TestClient, db: psycopg.Connection) -> None:
    _call(client, case, _keyed(db, "acme", Role.partner))


# What schemathesis found: a NUL byte in any text parameter, or a number beyond bigint, was a 500.
@pytest.mark.parametrize(
    "url",
    [
        "/v1/stands?species=a%00b",
        "/v1/stands/a%00b",
        "/ogc/collections/devices/items?device_type=a%00b",
        "/v1/devices/a%00b/readings",
        "/v1/alerts?offset=1750512219857780690255634727216087040",
    ],
)
def test_values_the_database_cannot_take_are_bad_requests(client: TestClient, db: psycopg.Connection, url: str) -> None:
    r = client.get(url, headers=_keyed(db, "toyota-city", Role.admin))
    assert r.status_code == 422
    assert r.json()["error"] == "invalid"


def test_pushing_for_a_device_id_with_a_nul_byte_is_a_bad_request(client: TestClient, db: psycopg.Connection) -> None:
    headers = _keyed(db, "toyota-city", Role.admin) | {"Content-Type": "application/senml+json"}
    assert client.post("/v1/telemetry?device=a%00b", headers=headers, content=b"[]").status_code == 422
