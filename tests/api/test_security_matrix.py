"""API roles and tenant isolation, as a matrix over the endpoints; the push rate limit; no secrets in logs."""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess

import pytest
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from api.app import create_app
from api.auth import presented_secret
from api.ratelimit import RateLimiter, TokenBucket
from devices import upsert_device, upsert_tenant
from devices.keys import Role, create_key
from tests.services import ROOT

PUBLIC_PREFIXES: tuple[str, ...] = ()  # every /v1 endpoint needs a key (open data is at /open: test below)


@pytest.fixture
def world(db, city):
    """The city, partner acme (with city fixture's acme-soil-1) and partner beta with one device; a key each."""
    upsert_tenant(db, "beta", "Beta Forestry", "partner")
    upsert_device(db, device_id="beta-dendro-1", tenant_id="beta", device_type="dendrometer", lon=137.5, lat=35.21)
    db.execute(
        "INSERT INTO latest_readings (device_id, metric, time, value) VALUES"
        " ('gauge-1', 'water_level', now(), 3.2), ('acme-soil-1', 'soil_moisture', now(), 0.31)"
    )
    keys = {}
    for name, tenant, role in [
        ("admin", "toyota-city", Role.admin),
        ("operator", "toyota-city", Role.operator),
        ("forestry", "toyota-city", Role.forestry),
        ("viewer", "toyota-city", Role.viewer),
        ("acme", "acme", Role.partner),
        ("beta", "beta", Role.partner),
    ]:
        keys[name] = create_key(db, tenant, role, f"matrix {name}")[1]
    return keys


@pytest.fixture
def api(settings, pool, world):
    with TestClient(create_app(settings, pool)) as client:
        yield client


def call(api, who, method, path, **kw):
    headers = {"X-API-Key": who} if who else {}
    return api.request(method, path, headers=headers, **kw)


NEW_CITY_DEVICE = {"id": "m-new", "tenant_id": "toyota-city", "device_type": "rain_gauge", "lon": 137.2, "lat": 35.1}
OPEN_RAIN = {"kind": "rainfall", "title_ja": "雨量", "title_en": "Rainfall", "attribution": "Test"}
NEW_ACME_DEVICE = {"id": "m-acme", "tenant_id": "acme", "device_type": "soil_moisture", "lon": 137.5, "lat": 35.2}

# (method, path, body) -> expected status per key. "404" for another tenant's device, like one that does not exist.
MATRIX = [
    (
        "GET",
        "/v1/devices/gauge-1",
        None,
        {"admin": 200, "viewer": 200, "operator": 200, "forestry": 200, "acme": 404, "beta": 404},
    ),
    ("GET", "/v1/devices/acme-soil-1", None, {"admin": 200, "viewer": 200, "acme": 200, "beta": 404}),
    ("GET", "/v1/devices/gauge-1/latest", None, {"admin": 200, "viewer": 200, "acme": 404, "beta": 404}),
    ("GET", "/v1/devices/acme-soil-1/latest", None, {"acme": 200, "beta": 404, "forestry": 200}),
    ("GET", "/v1/device-types", None, {"admin": 200, "viewer": 200, "acme": 200}),
    (
        "POST",
        "/v1/devices",
        NEW_CITY_DEVICE,
        {"viewer": 403, "operator": 403, "forestry": 403, "acme": 403, "admin": 201},
    ),
    ("POST", "/v1/devices", NEW_ACME_DEVICE, {"acme": 201, "beta": 403}),
    (
        "PATCH",
        "/v1/devices/gauge-1",
        {"name": "x"},
        {"viewer": 403, "operator": 403, "acme": 404, "beta": 404, "admin": 200},
    ),
    ("PATCH", "/v1/devices/acme-soil-1", {"name": "mine"}, {"beta": 404, "acme": 200}),
    ("PATCH", "/v1/devices/acme-soil-1", {"tenant_id": "beta"}, {"acme": 422}),
    ("POST", "/v1/devices/gauge-1/retire", None, {"viewer": 403, "forestry": 403, "acme": 404, "beta": 404}),
    ("POST", "/v1/devices/gauge-1/credentials", None, {"viewer": 403, "operator": 403, "acme": 404, "beta": 404}),
    ("POST", "/v1/devices/gauge-1/credentials/rotate", None, {"viewer": 403, "acme": 404}),
    ("DELETE", "/v1/devices/gauge-1/credentials", None, {"viewer": 403, "acme": 404}),
    ("GET", "/v1/tenants", None, {"admin": 200, "acme": 200, "viewer": 200}),
    (
        "POST",
        "/v1/tenants",
        {"id": "gamma", "name": "Gamma"},
        {"acme": 403, "viewer": 403, "operator": 403, "admin": 201},
    ),
    # Words of the hub's own topics cannot name a tenant (mimamori/v1/alerts/… would read as its telemetry).
    ("POST", "/v1/tenants", {"id": "alerts", "name": "Alerts"}, {"admin": 422, "acme": 403}),
    ("POST", "/v1/tenants", {"id": "telemetry", "name": "T"}, {"admin": 422}),
    ("POST", "/v1/tenants", {"id": "events", "name": "E"}, {"admin": 422}),
    ("POST", "/v1/tenants", {"id": "status", "name": "S"}, {"admin": 422}),
    ("GET", "/v1/keys", None, {"acme": 403, "viewer": 403, "operator": 403, "forestry": 403, "admin": 200}),
    ("POST", "/v1/keys", {"tenant_id": "acme", "role": "admin"}, {"acme": 403, "viewer": 403}),
    ("DELETE", "/v1/keys/mk_00000000", None, {"acme": 403, "viewer": 403, "admin": 404}),
    ("GET", "/v1/audit", None, {"acme": 403, "viewer": 403, "operator": 403, "admin": 200}),
    ("POST", "/v1/telemetry?device=acme-soil-1", {"values": {"soil_moisture": 0.3}}, {"viewer": 403, "operator": 403}),
    # Open datasets: admins and partners manage them (a partner its own tenant's only); docs/open-data.md
    ("GET", "/v1/open-datasets", None, {"admin": 200, "acme": 200, "viewer": 403, "operator": 403, "forestry": 403}),
    (
        "PUT",
        "/v1/open-datasets/m-rain",
        OPEN_RAIN,
        {"admin": 200, "acme": 200, "viewer": 403, "operator": 403, "forestry": 403},
    ),
    ("PUT", "/v1/open-datasets/m-rain", {**OPEN_RAIN, "tenant_id": "beta"}, {"acme": 403, "admin": 200}),
    ("PUT", "/v1/open-datasets/m-rain", {**OPEN_RAIN, "tenant_id": "toyota-city"}, {"acme": 403, "beta": 403}),
    ("POST", "/v1/open-datasets/m-none/publish", None, {"admin": 404, "acme": 404, "viewer": 403, "operator": 403}),
    ("DELETE", "/v1/open-datasets/m-none", None, {"admin": 404, "acme": 404, "viewer": 403}),
]


def _cases():
    for method, path, body, expected in MATRIX:
        for who, status in expected.items():
            yield pytest.param(method, path, body, who, status, id=f"{who}-{method}-{path}")


@pytest.mark.parametrize(("method", "path", "body", "who", "status"), list(_cases()))
def test_role_and_tenant_matrix(api, world, method, path, body, who, status):
    response = call(api, world[who], method, path, json=body)
    assert response.status_code == status, response.text
    if status in (403, 404):
        text = response.text
        # Refusals carry no data: no other device, tenant, reading or secret.
        for leak in ("toyota-city", "beta-dendro-1", "3.2", "0.31", "Acme", "Beta Forestry"):
            assert leak not in text, (leak, text)


def test_partners_list_only_their_own_devices_and_tenant(api, world):
    for who, tenant, devices in [("acme", "acme", {"acme-soil-1"}), ("beta", "beta", {"beta-dendro-1"})]:
        listed = call(api, world[who], "GET", "/v1/devices").json()
        assert {d["id"] for d in listed} == devices
        # Asking for another tenant explicitly changes nothing: the confinement is in the query itself.
        assert call(api, world[who], "GET", "/v1/devices?tenant=toyota-city").json() == []
        assert [t["id"] for t in call(api, world[who], "GET", "/v1/tenants").json()] == [tenant]
    everything = {d["id"] for d in call(api, world["viewer"], "GET", "/v1/devices").json()}
    assert everything == {"gauge-1", "rain-1", "acme-soil-1", "beta-dendro-1"}


def test_list_filters(api, world):
    got = call(api, world["admin"], "GET", "/v1/devices?type=rain_gauge").json()
    assert [d["id"] for d in got] == ["rain-1"]
    got = call(api, world["admin"], "GET", "/v1/devices?bbox=137.1,35.0,137.2,35.1").json()
    assert [d["id"] for d in got] == ["gauge-1"]
    assert call(api, world["admin"], "GET", "/v1/devices?bbox=137.2,35.0,137.1,35.1").status_code == 422
    got = call(api, world["admin"], "GET", "/v1/devices?tenant=beta&status=active").json()
    assert [d["id"] for d in got] == ["beta-dendro-1"]


def test_a_partner_cannot_push_for_another_tenants_device(api, world, db):
    before = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    response = call(api, world["acme"], "POST", "/v1/telemetry?device=gauge-1", json={"values": {"water_level": 9}})
    assert response.status_code in (403, 404, 422)
    assert "toyota-city" not in response.text
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == before


def test_a_partner_provisions_its_own_device_and_the_answer_is_the_only_copy(api, world, db, settings):
    from devices.broker import BrokerAdmin

    response = call(api, world["acme"], "POST", "/v1/devices/acme-soil-1/credentials")
    assert response.status_code == 201, response.text
    creds = response.json()
    assert creds["telemetry_topic"] == "mimamori/v1/acme/acme-soil-1/telemetry"
    assert call(api, world["acme"], "POST", "/v1/devices/acme-soil-1/credentials").status_code == 422
    listed = call(api, world["acme"], "GET", "/v1/devices/acme-soil-1").json()
    assert listed["has_credentials"] is True and creds["password"] not in json.dumps(listed)
    audit = call(api, world["admin"], "GET", "/v1/audit?action=device.credentials").json()
    assert audit[0]["action"] == "device.credentials.provision" and audit[0]["target"] == "acme-soil-1"
    assert creds["password"] not in json.dumps(audit)
    with BrokerAdmin(settings) as admin:
        admin.revoke_device("acme-soil-1")


def test_an_admin_revoking_the_key_it_is_using_is_answered_and_then_refused(api, world):
    """What the schemathesis stateful run once found: a sequence that lists keys and revokes its own."""
    own = next(k for k in call(api, world["admin"], "GET", "/v1/keys").json() if k["name"] == "matrix admin")
    assert call(api, world["admin"], "DELETE", f"/v1/keys/{own['id']}").status_code == 204
    after = call(api, world["admin"], "GET", "/v1/keys")
    assert after.status_code == 401, after.text
    assert call(api, world["admin"], "DELETE", f"/v1/keys/{own['id']}").status_code == 401
    assert call(api, world["operator"], "GET", "/v1/devices").status_code == 200  # the others' keys still work


def test_missing_or_bad_keys_get_401_on_every_endpoint(api, world):
    """Every /v1 operation the app documents, whoever wrote it, refuses a missing or bad key the same way."""
    paths = api.get("/openapi.json").json()["paths"]
    operations = [(m.upper(), p) for p, item in paths.items() if p.startswith("/v1") for m in item]
    assert len(operations) >= 15
    checked = 0
    for method, template in operations:
        if PUBLIC_PREFIXES and template.startswith(PUBLIC_PREFIXES):
            continue
        path = re.sub(r"\{[^}]*\}", "gauge-1", template)
        for headers in (
            {},
            {"X-API-Key": "mk_deadbeef.nope"},
            {"Authorization": "Bearer garbage"},
            {"Authorization": "Basic " + base64.b64encode(b"key:mk_deadbeef.nope").decode()},
        ):
            response = api.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.status_code, response.text)
            assert response.json() == {"detail": "missing or invalid API key"}
            checked += 1
    assert checked >= 45


def test_open_data_is_anonymous_and_ignores_credentials(api, world):
    """Every /open operation answers without a key, and a bad or conflicting key changes nothing (it is not read);
    the OpenAPI document asks for no key there. A dataset published by its owner is what they serve."""
    body = {"kind": "river_levels", "title_ja": "水位", "title_en": "Levels", "attribution": "Toyota City"}
    assert call(api, world["admin"], "PUT", "/v1/open-datasets/m-rivers", json=body).status_code == 200
    assert call(api, world["admin"], "POST", "/v1/open-datasets/m-rivers/publish").status_code == 200
    assert call(api, world["acme"], "PUT", "/v1/open-datasets/m-acme", json=body).status_code == 200  # unpublished
    doc = api.get("/openapi.json").json()
    operations = [p for p in doc["paths"] if p.startswith("/open")]
    assert len(operations) >= 8
    checked = 0
    for template in operations:
        assert "security" not in doc["paths"][template]["get"], template
        path = template.replace("{dataset_id}", "m-rivers").replace("{fmt}", "csv").replace("{alert_id}", "1")
        for headers in ({}, {"X-API-Key": "mk_deadbeef.nope"}, {"X-API-Key": "a", "Authorization": "Bearer b"}):
            response = api.get(path, headers=headers)
            expected = 404 if template.startswith("/open/alerts/") else 200  # no alert 1
            assert response.status_code == expected, (path, headers, response.text)
            checked += 1
    assert checked >= 24
    for path in ("/open/datasets/m-acme", "/open/datasets/m-acme/latest", "/open/datasets/m-acme/download.csv"):
        assert api.get(path).status_code == 404, path  # a partner's dataset it has not published


def test_the_openapi_document_names_the_key_schemes_on_every_operation_that_needs_a_key(api):
    doc = api.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "API key as a bearer token"},
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "API key"},
        "HTTPBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "API key as the password, any user name: for clients that offer only Basic "
            "authentication, such as QGIS before 3.26",
        },
    }
    either = [{"HTTPBearer": []}, {"APIKeyHeader": []}, {"HTTPBasic": []}]
    keyed = [(m, p) for p, item in doc["paths"].items() if p.startswith(("/v1", "/ogc/collections")) for m in item]
    assert len(keyed) >= 45
    for method, path in keyed:
        assert doc["paths"][path][method].get("security") == either, (method, path)
    # Open documents: the OGC landing page and conformance (for clients discovering the API) and the map's files.
    for path in ("/ogc", "/ogc/conformance", "/web/config.json"):
        assert "security" not in doc["paths"][path]["get"], path


@pytest.mark.parametrize(
    ("headers", "secret"),
    [
        ({"X-API-Key": "mk_a.b"}, "mk_a.b"),
        ({"Authorization": "Bearer mk_a.b"}, "mk_a.b"),
        ({"Authorization": "bearer mk_a.b"}, "mk_a.b"),  # the scheme's name is case-insensitive (RFC 7235)
        ({"X-API-Key": "mk_a.b", "Authorization": "Bearer mk_a.b"}, "mk_a.b"),  # the same key twice is one key
        ({"X-API-Key": "", "Authorization": "Bearer mk_a.b"}, "mk_a.b"),
        ({"Authorization": "Basic bWs6eA=="}, "x"),  # "mk:x": the password is the key, the user name any
        ({"Authorization": "basic " + base64.b64encode(b"key:mk_a.b:c").decode()}, "mk_a.b:c"),  # first colon splits
        ({"Authorization": "Basic " + base64.b64encode(b"mk_a.b:").decode()}, None),  # no password: no key
        ({"Authorization": "Basic " + base64.b64encode(b"mk_a.b").decode()}, None),  # no colon at all
        ({"Authorization": "Basic not*base64"}, None),
        ({"Authorization": "Basic " + base64.b64encode(b"k:\xff\xfe").decode()}, None),  # not UTF-8
        ({"Authorization": "Basic"}, None),
        ({"Authorization": "Bearer"}, None),
        ({"Authorization": "Digest mk_a.b"}, None),
        ({}, None),
    ],
)
def test_a_key_is_read_from_x_api_key_a_bearer_token_or_a_basic_password(
    headers: dict[str, str], secret: str | None
) -> None:
    assert presented_secret(Headers(headers)) == secret


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", "mk_a.b"), ("Authorization", "Bearer mk_c.d")],
        [("X-API-Key", "mk_a.b"), ("Authorization", "Digest mk_a.b")],
        [("X-API-Key", "mk_a.b"), ("Authorization", "")],
        [("X-API-Key", "mk_a.b"), ("X-API-Key", "mk_c.d")],
    ],
)
def test_two_different_credentials_in_one_request_conflict(headers):
    from api.auth import ConflictingCredentials

    with pytest.raises(ConflictingCredentials):
        presented_secret(Headers(raw=[(k.lower().encode(), v.encode()) for k, v in headers]))


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Basic " + base64.b64encode(b"u:mk_nope.nope").decode(), "Basic !!!", "Digest x", "Bearer"],
)
def test_a_valid_x_api_key_beside_an_invalid_authorization_header_is_refused(api, world, authorization):
    for path in ("/v1/devices", "/v1/tenants", "/ogc/collections/devices/items"):
        r = api.get(path, headers={"X-API-Key": world["admin"], "Authorization": authorization})
        assert r.status_code == 401, (path, r.text)
        assert r.json()["detail"].startswith("conflicting credentials")
        assert r.headers["WWW-Authenticate"] == "Bearer"
    # the same key in both places is one credential, and is served
    same = {"X-API-Key": world["admin"], "Authorization": f"Bearer {world['admin']}"}
    assert api.get("/v1/devices", headers=same).status_code == 200


def test_a_basic_password_is_a_key_like_any_other_and_keeps_its_tenant(api, world):
    def basic(key: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"qgis:{key}".encode()).decode()}

    mine = api.get("/v1/devices", headers=basic(world["acme"]))
    assert mine.status_code == 200 and {d["id"] for d in mine.json()} == {"acme-soil-1"}
    assert api.get("/v1/devices/beta-dendro-1", headers=basic(world["acme"])).status_code == 404
    assert api.get("/v1/devices", headers=basic(world["acme"] + "x")).status_code == 401


def test_administrative_actions_are_audited_with_who_and_when(api, world, db):
    admin_id = world["admin"].split(".")[0]
    assert call(api, world["admin"], "POST", "/v1/devices", json=NEW_CITY_DEVICE).status_code == 201
    assert call(api, world["admin"], "POST", "/v1/devices/m-new/retire").status_code == 200
    key = call(api, world["admin"], "POST", "/v1/keys", json={"tenant_id": "acme", "role": "viewer"}).json()
    assert call(api, world["admin"], "DELETE", f"/v1/keys/{key['id']}").status_code == 204
    entries = call(api, world["admin"], "GET", "/v1/audit?limit=4").json()
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        (admin_id, "key.revoke", key["id"]),
        (admin_id, "key.create", key["id"]),
        (admin_id, "device.retire", "m-new"),
        (admin_id, "device.create", "m-new"),
    ]
    assert all(e["at"] for e in entries)
    assert key["secret"] not in json.dumps(entries)


# -- rate limit on HTTP push ------------------------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2.0, burst=3, tokens=3, stamp=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0  # one token back after half a second at 2/s
    assert bucket.take(10.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # refilled to the burst, no further


def test_rate_limiter_keeps_keys_apart_and_bounded():
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    assert limiter.check("a", 0.0) == 0.0
    assert limiter.check("a", 0.0) > 0
    assert limiter.check("b", 0.0) == 0.0
    limiter.check("c", 0.0)  # "a" is forgotten: at most two buckets
    assert len(limiter._buckets) == 2 and "a" not in limiter._buckets


def test_http_push_answers_429_with_retry_after_per_key(settings, pool, world):
    slow = settings.model_copy(update={"api_push_rate_per_s": 0.01, "api_push_burst": 2})
    body = {"values": {"soil_moisture": 0.3}}
    with TestClient(create_app(slow, pool)) as api:
        codes = [call(api, world["acme"], "POST", "/v1/telemetry?device=acme-soil-1", json=body) for _ in range(3)]
        assert [r.status_code for r in codes[:2]] == [200, 200], codes[0].text
        assert codes[2].status_code == 429
        assert int(codes[2].headers["Retry-After"]) >= 1
        assert codes[2].json() == {"detail": "rate limit exceeded for this API key; retry later"}
        # Another key has its own bucket.
        other = call(api, world["admin"], "POST", "/v1/telemetry?device=acme-soil-1", json=body)
        assert other.status_code == 200


# -- no secrets in logs, errors or the repository ------------------------------------------------------------


def test_no_secret_reaches_logs_errors_or_the_repository(api, world, db, settings, broker, caplog):
    from devices.broker import BrokerAdmin
    from devices.manage import Caller, provision_device, rotate_credentials

    caplog.set_level(logging.DEBUG)
    secrets = [world[k] for k in world]
    created = call(api, world["admin"], "POST", "/v1/keys", json={"tenant_id": "acme", "role": "partner"}).json()
    secrets.append(created["secret"])
    answer = call(api, world["acme"], "POST", "/v1/devices/acme-soil-1/credentials").json()
    secrets.append(answer["password"])
    rotated = rotate_credentials(db, Caller("t", None), "acme-soil-1", lambda: BrokerAdmin(settings))
    secrets.append(rotated.password)
    secrets.append(provision_device(db, Caller("t", None), "gauge-1", lambda: BrokerAdmin(settings)).password)
    assert "***" in repr(rotated) and rotated.password not in repr(rotated)
    # A refused broker login and bad API keys produce errors: they do not echo what was presented.
    bad = call(api, world["acme"][:-3] + "xyz", "GET", "/v1/devices")
    assert bad.status_code == 401 and world["acme"][:-3] not in bad.text
    wrong = settings.model_copy(update={"mqtt_admin_password": type(settings.mqtt_admin_password)("wrong-pw-42")})
    with pytest.raises(Exception, match="refused the hub's admin account") as refused:
        BrokerAdmin(wrong).__enter__()
    assert "wrong-pw-42" not in str(refused.value)

    logged = caplog.text + (broker.data_dir / "mosquitto.log").read_text()
    stored = "\n".join(str(r) for r in db.execute("SELECT * FROM audit_log")) + "\n".join(
        str(r) for r in db.execute("SELECT * FROM api_keys")
    )
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for secret in secrets:
        assert secret not in logged
        assert secret not in stored
        # -e: a random secret may begin with "-", which git would take for an option
        found = subprocess.run(["git", "grep", "-F", "-q", "-e", secret], cwd=ROOT, capture_output=True)
        assert found.returncode == 1, f"a secret is in a tracked file (git grep: {found.stderr[:200]!r})"
    assert tracked  # the repository was really searched
    assert settings.mqtt_admin_password.get_secret_value() not in logged
    for name in ("acme-soil-1", "gauge-1"):
        with BrokerAdmin(settings) as admin:
            admin.revoke_device(name)
