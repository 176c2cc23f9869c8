"""Schemathesis over the whole OpenAPI of the app, as an admin and as a partner, against the real database.

Every operation gets generated requests (valid and invalid) with a real key, in every phase: the schema's
examples, coverage (boundary and negative values), fuzzing, and stateful sequences following the links
schemathesis infers between operations (create a key, then revoke it …). No answer may be a server error (5xx),
and every answer with a documented schema must match it (and its documented media type).
"""

from __future__ import annotations

import re
from collections import Counter
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
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from shapely.geometry import box

from api.app import create_app
from devices.broker import BrokerAdmin
from devices.keys import Role, create_key
from geo import Stand, upsert_area, upsert_stands
from mimamori.settings import Settings

# The live alert stream (Server-Sent Events) never ends by design: a generated request would hang the run.
# Its behaviour is covered over real HTTP in tests/alerts/test_api.py.
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


# What the run sent, by (role, phase, operation) and by (role, phase, status): the count tests at the end check
# that requests were really generated, and that most of them were not refused for want of a key.
SENT: Counter[tuple[str, str, str]] = Counter()
STATUSES: Counter[tuple[str, str, int]] = Counter()


def _send(client: TestClient, case: Any, headers: dict[str, str], tally: tuple[str, str]) -> Any:
    """Send a generated case through httpx (the test client) and return the answer.

    Schemathesis' own transport goes through requests, whose connection bookkeeping breaks under urllib3-future
    (installed with the [grafana] extra), so the request is made here from the case's serialised form.
    """
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    kwargs.pop("auth", None)
    # Generated credentials (a random bearer token or Basic password from the security schemes) beside the
    # real key are conflicting credentials, a 401 that never reaches the operation: the real key alone is sent
    # (tests/api/test_security_matrix.py covers missing, bad and conflicting credentials).
    kwargs["headers"] = {
        k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() not in ("authorization", "x-api-key")
    } | headers
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
    SENT[(*tally, case.operation.label)] += 1
    STATUSES[(*tally, response.status_code)] += 1
    return response


def _call(client: TestClient, case: Any, headers: dict[str, str], role: str) -> None:
    """Send the case and run the checks on the answer."""
    response = _send(client, case, headers, (role, "generated"))
    case.validate_response(response, checks=CHECKS)


@pytest.fixture
def client(
    settings: Settings, pool: ConnectionPool, db: psycopg.Connection, city: dict[str, str]
) -> Iterator[TestClient]:
    _world(db)
    with TestClient(create_app(settings, pool), raise_server_exceptions=False) as test_client:
        yield test_client
    # Generated requests provision real broker accounts on the run's shared Mosquitto: they go with the test,
    # or a later test provisioning the same device finds one already there.
    with BrokerAdmin(settings) as admin:
        for (device_id,) in db.execute("SELECT id FROM devices").fetchall():
            admin.revoke_device(device_id)


@schema.parametrize()
@EXAMPLES
def test_api_as_admin(case: Any, client: TestClient, db: psycopg.Connection) -> None:
    _call(client, case, _keyed(db, "toyota-city", Role.admin), "admin")


@schema.parametrize()
@EXAMPLES
def test_api_as_partner(case: Any, client: TestClient, db: psycopg.Connection) -> None:
    _call(client, case, _keyed(db, "acme", Role.partner), "partner")


# -- stateful: sequences of calls along the links schemathesis infers ---------------------------------------

STATEFUL = settings(
    max_examples=12,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
_Stateful = schema.as_state_machine()


def _machine(client: TestClient, db: psycopg.Connection, tenant: str, role: Role) -> type:
    class Hub(_Stateful):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            # A disposable key per scenario: the run may revoke it (DELETE /v1/keys/{id} with an id it listed),
            # which ends only this scenario's authenticated calls, not the rest of the run.
            self.headers = _keyed(db, tenant, role)

        def call(self, case: Any, **kwargs: Any) -> Response:
            return Response.from_any(_send(client, case, self.headers, (str(role), "stateful")))

        def validate_response(self, response: Response, case: Any, *_args: Any, **_kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    return Hub


@pytest.mark.parametrize(("tenant", "role"), [("toyota-city", Role.admin), ("acme", Role.partner)])
def test_stateful_sequences_meet_no_server_error(
    client: TestClient, db: psycopg.Connection, tenant: str, role: Role
) -> None:
    before = sum(n for (who, phase, _), n in SENT.items() if who == str(role) and phase == "stateful")
    _machine(client, db, tenant, role).run(settings=STATEFUL)
    sent = {op: n for (who, phase, op), n in SENT.items() if who == str(role) and phase == "stateful"}
    assert sum(sent.values()) - before >= 50, sent
    assert len(sent) >= 10, sorted(sent)  # the sequences wander over the API, not one operation
    # Whether a sequence reaches DELETE /v1/keys/{id} with the id of the key it is using (what the run
    # found) depends on what earlier tests left in the database: tests/api/test_security_matrix.py does it on purpose.
    refused = STATUSES[(str(role), "stateful", 401)]
    assert refused < sum(sent.values()) / 2, f"{refused} of {sum(sent.values())} stateful calls had no valid key"


def _operations() -> set[str]:
    doc = create_app(Settings()).openapi()
    return {
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"} and not re.match(_STREAMING, path)
    }


def test_the_generated_run_reached_every_operation_as_both_roles() -> None:
    """Runs after the generated tests above (file order): each role sent requests to every operation."""
    if not any(phase == "generated" for _, phase, _ in SENT):
        pytest.skip("the generated tests were not selected in this run")
    operations = _operations()
    for role in ("admin", "partner"):
        reached = {op for (who, phase, op), _ in SENT.items() if who == role and phase == "generated"}
        assert operations <= reached, sorted(operations - reached)
        total = sum(n for (who, phase, _), n in SENT.items() if who == role and phase == "generated")
        assert total >= 5 * len(operations), total


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
