"""NGSI-LD subscriptions to Alert entities over the alert webhooks: made, read and deleted through
/ngsi-ld/v1/subscriptions, confined to the key's tenant, and delivered as NGSI-LD Notifications by the webhooks'
own dispatcher (signed, to addresses the allow-list admits)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from psycopg_pool import ConnectionPool

from alerts import SIGNATURE_HEADER, WebhookDispatcher
from api.ngsi_ld.subscriptions import NOTIFICATION_FORMATS
from tests.alerts.test_distribution import _Receiver
from tests.alerts_helpers import clean_alert_tables
from tests.geo_support import api_client, geo_settings, role_keys

BASE = "/ngsi-ld/v1"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
LOOPBACK = {"alerts_webhook_allow": ["127.0.0.1/32"]}


@pytest.fixture
def receiver():
    r = _Receiver()
    yield r
    r.close()


@pytest.fixture
def keys(db, city):
    clean_alert_tables(db)
    return role_keys(db)


@pytest.fixture
def client(database_url, keys):
    with api_client(database_url, **LOOPBACK) as c:
        yield c


def _subscription(url: str, **extra) -> dict:
    return {
        "type": "Subscription",
        "entities": [{"type": "Alert"}],
        "q": 'warningLevel>=2;category=="flood"',
        "notification": {"endpoint": {"uri": url, "accept": "application/json"}, "attributes": ["warningLevel"]},
        **extra,
    }


def _post(client, key, body):
    return client.post(BASE + "/subscriptions", json=body, headers={**key, "Content-Type": "application/json"})


def test_a_subscription_is_made_read_and_deleted(client, keys, receiver):
    made = _post(client, keys["operator"], _subscription(f"http://127.0.0.1:{receiver.port}/n"))
    assert made.status_code == 201, made.text
    location = made.headers["location"]
    assert location.startswith(BASE + "/subscriptions/urn:ngsi-ld:Subscription:")
    assert made.headers["x-mimamori-webhook-secret"]
    sub_id = location.rsplit("/", 1)[1]
    [listed] = client.get(BASE + "/subscriptions", headers=keys["operator"]).json()
    assert listed["id"] == sub_id and listed["entities"] == [{"type": "Alert"}] and listed["isActive"] is True
    assert "_context" not in listed
    one = client.get(f"{BASE}/subscriptions/{sub_id}", headers={**keys["operator"], "Accept": "application/ld+json"})
    assert one.json()["@context"] == ["http://testserver/ngsi-ld/v1/jsonldContexts/mimamori.jsonld"]
    assert client.get(f"{BASE}/subscriptions/{sub_id}", headers=keys["partner"]).status_code == 404
    assert client.delete(f"{BASE}/subscriptions/{sub_id}", headers=keys["partner"]).status_code == 404
    assert client.delete(f"{BASE}/subscriptions/{sub_id}", headers=keys["operator"]).status_code == 204
    gone = client.get(f"{BASE}/subscriptions/{sub_id}", headers=keys["operator"])
    assert gone.status_code == 404 and gone.json()["type"] == ERRORS + "ResourceNotFound"


@pytest.mark.parametrize(
    "change",
    [
        {"entities": [{"type": "Device"}]},
        {"q": 'name=="x"'},
        {"q": "warningLevel>=9"},
        {"q": "((("},
        {"notification": {"endpoint": {}}},
        {"notification": {"endpoint": {"uri": "http://10.1.2.3/n"}}},  # a private address the allow-list lacks
        {"notification": {"endpoint": {"uri": "http://127.0.0.1/n"}, "attributes": ["colour"]}},
        {"type": "Entity"},
        {"throttling": 5},
    ],
)
def test_bad_subscriptions_are_400_problem_details(client, keys, change):
    r = _post(client, keys["operator"], {**_subscription("http://127.0.0.1/n"), **change})
    assert r.status_code == 400, r.text
    assert r.json()["type"] == ERRORS + "BadRequestData"


def test_a_viewer_may_not_subscribe(client, keys):
    r = _post(client, keys["viewer"], _subscription("http://127.0.0.1/n"))
    assert r.status_code == 403 and r.json()["type"].startswith(ERRORS)


def _raise_alert(db, tenant: str, device: str, level: int, hazard: str = "flood") -> int:
    rule = f"{hazard}-rule"
    alert_id = db.execute(
        "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
        " peak_level, location) VALUES (%s, %s, 'threshold', %s, 'River level', %s, %s, 'open', %s, %s,"
        " ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326)) RETURNING id",
        (rule, device, hazard, device, tenant, level, level),
    ).fetchone()[0]
    db.execute(
        "INSERT INTO alert_events (alert_id, kind, level, state, actor) VALUES (%s, 'raised', %s, 'open', 'rule:x')",
        (alert_id, level),
    )
    return alert_id


def test_a_matching_alert_change_is_delivered_as_an_ngsi_ld_notification(database_url, db, client, keys, receiver):
    made = _post(client, keys["operator"], _subscription(f"http://127.0.0.1:{receiver.port}/n"))
    sub_id = made.headers["location"].rsplit("/", 1)[1]
    raised = _raise_alert(db, "toyota-city", "gauge-1", 3)
    _raise_alert(db, "toyota-city", "rain-1", 1)  # below the subscription's warningLevel>=2
    _raise_alert(db, "toyota-city", "gauge-1", 4, hazard="landslide")  # not its category
    settings = geo_settings(database_url, **LOOPBACK)
    pool = ConnectionPool(database_url, min_size=1, max_size=2, open=True)
    try:
        dispatcher = WebhookDispatcher(settings, pool, formats=NOTIFICATION_FORMATS)
        assert dispatcher.fan_out() == 1
        with httpx.Client(timeout=2.0) as http, ThreadPoolExecutor(2) as senders:
            assert dispatcher.deliver_due(http, senders) == 1
    finally:
        pool.close()
    [(headers, body)] = receiver.received
    assert SIGNATURE_HEADER.lower() in {k.lower() for k in headers}
    note = json.loads(body)
    assert note["type"] == "Notification" and note["subscriptionId"] == sub_id
    assert note["data"] == [
        {"id": f"urn:ngsi-ld:Alert:{raised}", "type": "Alert", "warningLevel": {"type": "Property", "value": 3}}
    ]


@pytest.mark.parametrize("content", [b"not json", b"[" * 100_000, b'{"type": NaN}', b"\xff\xfe"])
def test_unreadable_subscription_bodies_are_400_problem_details(client, keys, content):
    r = client.post(
        BASE + "/subscriptions", content=content, headers={**keys["operator"], "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["type"] == ERRORS + "BadRequestData"
