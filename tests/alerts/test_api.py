"""The alert API over a real HTTP connection: list and filter, detail with events, acknowledge/resolve/close with
roles and tenant isolation, rules, webhooks, the live stream with resume, CAP 1.2 and the Atom feed against the
official schema."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from alerts import AlertEngine
from api.app import create_app
from devices.keys import Role, create_key
from mimamori.settings import Settings
from tests.alerts_helpers import (
    ApiServer,
    SseReader,
    add_gauges,
    clean_alert_tables,
    levels,
    store,
    write_rules,
)
from tests.services import ROOT, wait_until

CAP_XSD = etree.XMLSchema(etree.parse(str(ROOT / "tests" / "data" / "CAP-v1.2.xsd")))
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def alert_settings(settings: Settings, tmp_path) -> Settings:
    return settings.model_copy(
        update={
            "alerts_rules_dir": str(write_rules(tmp_path / "rules")),
            "alerts_stream_keepalive_s": 1.0,
            # the tests' receivers listen on loopback, which webhooks may reach only when allowed
            "alerts_webhook_allow": ["127.0.0.1/32"],
        }
    )


@pytest.fixture
def world(alert_settings, pool, db, city):
    """Two gauges (the city's g1, the partner's g2), an engine, the API server and a key per role."""
    clean_alert_tables(db)
    add_gauges(db, ("g1", "toyota-city", 137.179, 35.094), ("g2", "acme", 137.50, 35.20))
    keys = {
        role: create_key(db, "acme" if role is Role.partner else "toyota-city", role)[1]
        for role in (Role.admin, Role.operator, Role.viewer, Role.partner)
    }
    engine = AlertEngine(alert_settings, pool)
    engine.reload(force=True)
    with ApiServer(create_app(alert_settings, pool)) as server:
        yield {"engine": engine, "db": db, "url": server.url, "keys": keys}


def feed(world, observations):
    for o in observations:
        store(world["db"], [o])
        world["engine"].evaluate_batch([o])


def get(world, path, role=Role.viewer, **params):
    return httpx.get(world["url"] + path, headers={"X-API-Key": world["keys"][role]}, params=params, timeout=10)


def post(world, path, role=Role.operator, json=None):
    return httpx.post(world["url"] + path, headers={"X-API-Key": world["keys"][role]}, json=json, timeout=10)


def test_list_filter_and_detail(world):
    feed(world, levels("g1", [4.6, 6.2]) + levels("g2", [3.6]))
    everything = get(world, "/v1/alerts").json()
    assert [(a["subject"], a["level"], a["state"]) for a in everything] == [("g1", 3, "open"), ("g2", 1, "open")]
    assert [a["subject"] for a in get(world, "/v1/alerts", min_level=2).json()] == ["g1"]
    assert [a["subject"] for a in get(world, "/v1/alerts", bbox="137.4,35.1,137.6,35.3").json()] == ["g2"]
    assert get(world, "/v1/alerts", state="resolved").json() == []
    assert [a["hazard"] for a in get(world, "/v1/alerts", hazard="flood").json()] == ["flood", "flood"]
    detail = get(world, f"/v1/alerts/{everything[0]['id']}").json()
    assert [(e["kind"], e["level"]) for e in detail["events"]] == [("raised", 2), ("escalated", 3)]
    assert detail["location"] == {"type": "Point", "coordinates": [137.179, 35.094]}
    assert detail["area"]["type"] == "Polygon"  # the 500 m buffer
    assert get(world, "/v1/alerts", bbox="1,2,3").status_code == 422


def test_partner_sees_only_its_tenant(world):
    feed(world, levels("g1", [4.6]) + levels("g2", [4.6]))
    mine = get(world, "/v1/alerts", Role.partner).json()
    assert [a["subject"] for a in mine] == ["g2"]
    city_alert = next(a for a in get(world, "/v1/alerts").json() if a["subject"] == "g1")
    assert get(world, f"/v1/alerts/{city_alert['id']}", Role.partner).status_code == 404
    assert get(world, f"/v1/alerts/{city_alert['id']}/cap", Role.partner).status_code == 404


def test_lifecycle_by_roles(world):
    feed(world, levels("g1", [4.6]))
    alert_id = get(world, "/v1/alerts").json()[0]["id"]
    assert post(world, f"/v1/alerts/{alert_id}/acknowledge", Role.viewer).status_code == 403
    assert post(world, f"/v1/alerts/{alert_id}/close").status_code == 422  # only resolved alerts close
    acked = post(world, f"/v1/alerts/{alert_id}/acknowledge", json={"note": "team sent to the levee"})
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged"
    assert post(world, f"/v1/alerts/{alert_id}/acknowledge").status_code == 422
    # still acknowledged when the river rises: one alert, escalated
    feed(world, levels("g1", [6.2], start=levels("g1", [0, 0])[1].time))
    detail = get(world, f"/v1/alerts/{alert_id}").json()
    assert (detail["state"], detail["level"]) == ("acknowledged", 3)
    assert post(world, f"/v1/alerts/{alert_id}/resolve", json={"note": "gauge under repair"}).json()["state"] == (
        "resolved"
    )
    closed = post(world, f"/v1/alerts/{alert_id}/close").json()
    assert closed["state"] == "closed"
    events = [(e["kind"], e["actor"].startswith("rule:"), e["note"]) for e in closed["events"]]
    assert events == [
        ("raised", True, None),
        ("acknowledged", False, "team sent to the levee"),
        ("escalated", True, None),
        ("resolved", False, "gauge under repair"),
        ("closed", False, None),
    ]


def test_viewers_and_partners_may_not_resolve_or_close(world):
    feed(world, levels("g1", [4.6]) + levels("g2", [4.6]))
    by_subject = {a["subject"]: a["id"] for a in get(world, "/v1/alerts").json()}
    for role, alert_id in ((Role.viewer, by_subject["g1"]), (Role.partner, by_subject["g2"])):
        assert post(world, f"/v1/alerts/{alert_id}/resolve", role).status_code == 403
    assert post(world, f"/v1/alerts/{by_subject['g2']}/resolve").json()["state"] == "resolved"
    for role in (Role.viewer, Role.partner):
        assert post(world, f"/v1/alerts/{by_subject['g2']}/close", role).status_code == 403
    states = {a["subject"]: a["state"] for a in get(world, "/v1/alerts").json()}
    assert states == {"g1": "open", "g2": "resolved"}


def test_history_names_the_person_as_named_at_the_time_and_not_to_partners(world):
    db = world["db"]
    key_id, secret = create_key(db, "toyota-city", Role.operator, "Sato Hanako")
    as_sato = {"X-API-Key": secret}
    feed(world, levels("g2", [4.6]))  # the partner's gauge: the partner sees this alert's history too
    alert_id = get(world, "/v1/alerts").json()[0]["id"]
    url = f"{world['url']}/v1/alerts/{alert_id}"
    assert httpx.post(f"{url}/acknowledge", headers=as_sato, json={"note": "on it"}, timeout=10).status_code == 200
    db.execute("UPDATE api_keys SET name = 'Suzuki Ichiro' WHERE id = %s", (key_id,))  # the key passed on
    assert httpx.post(f"{url}/resolve", headers=as_sato, timeout=10).status_code == 200
    history = [(e["kind"], e["actor"], e["actor_name"]) for e in get(world, f"/v1/alerts/{alert_id}").json()["events"]]
    assert history == [
        ("raised", "rule:river-level", None),
        ("acknowledged", key_id, "Sato Hanako"),
        ("resolved", key_id, "Suzuki Ichiro"),
    ]
    # a key without a name: the key id alone (the map shows it)
    closed = post(world, f"/v1/alerts/{alert_id}/close").json()
    assert closed["events"][-1]["actor"].startswith("mk_") and closed["events"][-1]["actor_name"] is None
    partner_view = get(world, f"/v1/alerts/{alert_id}", Role.partner).json()["events"]
    assert [e["actor_name"] for e in partner_view] == [None, None, None, None]
    assert [e["actor"] for e in partner_view][1:3] == [key_id, key_id]


def test_cap_document_is_valid_and_bilingual(world):
    feed(world, levels("g1", [6.9]))
    alert_id = get(world, "/v1/alerts").json()[0]["id"]
    response = get(world, f"/v1/alerts/{alert_id}/cap")
    assert response.headers["content-type"].startswith("application/cap+xml")
    doc = etree.fromstring(response.content)
    CAP_XSD.assertValid(doc)
    infos = doc.findall(f"{CAP}info")
    assert [i.findtext(f"{CAP}language") for i in infos] == ["ja-JP", "en-US"]
    assert {i.findtext(f"{CAP}severity") for i in infos} == {"Extreme"}  # level 4
    assert infos[0].findtext(f"{CAP}event") == "河川水位"
    polygon = infos[1].find(f"{CAP}area").findtext(f"{CAP}polygon").split()
    assert polygon[0] == polygon[-1] and len(polygon) >= 4
    lat, lon = (float(v) for v in polygon[0].split(","))
    assert 35.08 < lat < 35.11 and 137.17 < lon < 137.19  # lat,lon order


def test_atom_feed_of_active_alerts_is_valid(world):
    feed(world, levels("g1", [4.6]) + levels("g2", [6.2]))
    feed_doc = etree.fromstring(get(world, "/v1/alerts/feed.atom").content)
    entries = feed_doc.findall(f"{ATOM}entry")
    assert len(entries) == 2
    for entry in entries:
        CAP_XSD.assertValid(entry.find(f"{ATOM}content").find(f"{CAP}alert"))
    partner_feed = etree.fromstring(get(world, "/v1/alerts/feed.atom", Role.partner).content)
    assert len(partner_feed.findall(f"{ATOM}entry")) == 1


def test_live_stream_filters_and_resumes_after_reconnect(world):
    url = world["url"] + "/v1/alerts/stream"
    viewer = {"X-API-Key": world["keys"][Role.viewer]}
    with SseReader(url, viewer) as everything, SseReader(url + "?min_level=2", viewer) as severe:
        wait_until(lambda: everything.status == 200 and severe.status == 200, what="streams open")
        import time

        time.sleep(0.3)  # the streams have read their starting point
        feed(world, levels("g1", [3.6, 4.6]))
        wait_until(lambda: len(everything.events) == 2, what="two events on the stream")
        wait_until(lambda: len(severe.events) == 1, what="one severe event")
    assert everything.kinds() == [("raised", 1), ("escalated", 2)]
    assert severe.kinds() == [("escalated", 2)]
    last_seen = everything.events[0]["id"]
    # a dashboard that saw only the first event reconnects and gets what it missed, then live ones
    with SseReader(url, {**viewer, "Last-Event-ID": str(last_seen)}) as resumed:
        wait_until(lambda: len(resumed.events) == 1, what="the missed event")
        feed(world, levels("g1", [6.2], start=levels("g1", [0, 0, 0])[2].time))
        wait_until(lambda: len(resumed.events) == 2, what="the live event after resuming")
    assert resumed.kinds() == [("escalated", 2), ("escalated", 3)]


def test_stream_respects_tenants(world):
    url = world["url"] + "/v1/alerts/stream?since_id=0"
    with SseReader(url, {"X-API-Key": world["keys"][Role.partner]}) as partner:
        feed(world, levels("g1", [4.6]) + levels("g2", [4.6]))
        wait_until(lambda: len(partner.events) == 1, what="the partner's own alert")
    assert partner.events[0]["data"]["alert"]["subject"] == "g2"


def test_stream_needs_a_key(world):
    assert httpx.get(world["url"] + "/v1/alerts/stream", timeout=5).status_code == 401


def test_rules_api_saves_validates_and_applies(world):
    rules = get(world, "/v1/alert-rules").json()
    assert {r["id"] for r in rules} == {"river-level", "gauge-silent"}
    bad = httpx.put(
        world["url"] + "/v1/alert-rules/low-water",
        headers={"X-API-Key": world["keys"][Role.admin]},
        json={"kind": "threshold", "title": {"en": "Low"}, "metric": "water_level"},
        timeout=10,
    )
    assert bad.status_code == 422
    body = {
        "kind": "threshold",
        "title": {"en": "Very low water", "ja": "渇水"},
        "metric": "water_level",
        "direction": "falling",
        "levels": [{"level": 1, "at": 0.2}],
    }
    assert (
        httpx.put(
            world["url"] + "/v1/alert-rules/low-water",
            json=body,
            timeout=10,
            headers={"X-API-Key": world["keys"][Role.operator]},
        ).status_code
        == 403
    )
    saved = httpx.put(
        world["url"] + "/v1/alert-rules/low-water",
        json=body,
        timeout=10,
        headers={"X-API-Key": world["keys"][Role.admin]},
    )
    assert saved.status_code == 200
    world["engine"].reload()
    feed(world, levels("g1", [0.1]))
    assert [(a["rule_id"], a["level"]) for a in get(world, "/v1/alerts").json()] == [("low-water", 1)]
    assert any(r["source"] == "api" for r in get(world, "/v1/alert-rules").json())


# Without MIMAMORI_ALERTS_WEBHOOK_ALLOW: the hub's own networks are off limits. localhost goes through the
# system resolver; the rest are address literals (resolving to themselves, no DNS needed).
INTERNAL_URLS = [
    "http://127.0.0.1:9/hook",
    "http://localhost:9/hook",
    "http://[::1]:9/hook",
    "http://0.0.0.0:9/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.7/hook",
    "http://192.168.1.1/hook",
    "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://100.64.0.1/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one number: the resolver reads it so, and so do we
]


@pytest.fixture
def strict_api(settings, pool, world):
    """The same hub without an allowlist (the default)."""
    assert settings.alerts_webhook_allow == []
    with ApiServer(create_app(settings, pool)) as server:
        yield server.url


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_webhooks_to_the_hubs_own_networks_are_refused_by_default(world, strict_api, url):
    for role in (Role.partner, Role.admin):
        r = httpx.post(strict_api + "/v1/alert-webhooks", headers={"X-API-Key": world["keys"][role]}, json={"url": url})
        assert r.status_code == 422, (role, r.text)
        assert r.json()["error"] == "invalid" and "public addresses" in r.json()["detail"]
    assert world["db"].execute("SELECT count(*) FROM alert_webhooks").fetchone()[0] == 0


def test_a_public_webhook_address_is_registered(world, strict_api):
    r = httpx.post(
        strict_api + "/v1/alert-webhooks",
        headers={"X-API-Key": world["keys"][Role.partner]},
        json={"url": "https://93.184.216.34/hook"},
    )
    assert r.status_code == 201, r.text


def test_the_allowlist_admits_an_internal_receiver(world):
    # world's hub allows 127.0.0.1/32 (MIMAMORI_ALERTS_WEBHOOK_ALLOW), and only that
    assert post(world, "/v1/alert-webhooks", Role.partner, json={"url": "http://127.0.0.1:9/hook"}).status_code == 201
    assert post(world, "/v1/alert-webhooks", Role.partner, json={"url": "http://127.0.0.2:9/hook"}).status_code == 422


def test_another_tenants_webhook_deliveries_answer_404(world):
    from devices import upsert_tenant

    upsert_tenant(world["db"], "beta", "Beta", "partner")
    beta = {"X-API-Key": create_key(world["db"], "beta", Role.partner)[1]}
    created = post(world, "/v1/alert-webhooks", Role.partner, json={"url": "http://127.0.0.1:9/hook"}).json()
    path = f"/v1/alert-webhooks/{created['id']}/deliveries"
    assert get(world, path, Role.partner).json() == []  # its own: an empty log
    assert get(world, path, Role.admin).status_code == 200
    theirs = httpx.get(world["url"] + path, headers=beta, timeout=10)
    assert theirs.status_code == 404 and theirs.json()["error"] == "not_found", theirs.text
    missing = get(world, f"/v1/alert-webhooks/{created['id'] + 1000}/deliveries", Role.partner)
    assert missing.status_code == 404
    assert theirs.json()["detail"].replace(str(created["id"]), "N") == missing.json()["detail"].replace(
        str(created["id"] + 1000), "N"
    )


def test_webhook_subscriptions_hide_secrets_and_confine_partners(world):
    created = post(world, "/v1/alert-webhooks", Role.partner, json={"url": "http://127.0.0.1:9/hook"})
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    assert (
        post(
            world, "/v1/alert-webhooks", Role.partner, json={"url": "http://127.0.0.1:9/x", "all_tenants": True}
        ).status_code
        == 422
    )
    assert post(world, "/v1/alert-webhooks", Role.viewer, json={"url": "http://127.0.0.1:9/x"}).status_code == 403
    listed = get(world, "/v1/alert-webhooks", Role.partner).json()
    assert len(listed) == 1 and "secret" not in listed[0]
    city = post(world, "/v1/alert-webhooks", Role.admin, json={"url": "ftp://example.org"})
    assert city.status_code == 422
