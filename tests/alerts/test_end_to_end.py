"""End to end: readings published over MQTT raise, escalate and resolve one alert, seen on the live stream, on
MQTT (retained state), at a webhook receiver run by the test (signature checked), and in the CAP feed validated
against the CAP 1.2 schema."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from lxml import etree
from pydantic import SecretStr

from alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from devices.keys import Role, create_key
from hub.compose import in_process_hub
from ingest import telemetry_topic
from tests.alerts_helpers import ApiServer, SseReader, add_gauges, clean_alert_tables, write_rules
from tests.services import ROOT, free_port, wait_until

CAP_XSD = etree.XMLSchema(etree.parse(str(ROOT / "tests" / "data" / "CAP-v1.2.xsd")))
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
ATOM = "{http://www.w3.org/2005/Atom}"

RULES = """\
rules:
  - id: river-level
    kind: threshold
    hazard: flood
    title: {en: River water level, ja: 河川水位}
    target: {device_type: river_gauge}
    metric: water_level
    levels_from_site: {1: standby_m, 2: caution_m, 3: evacuation_m, 4: danger_m}
    deadband: 0.05
    area_buffer_m: 800
"""


class Receiver:
    """A webhook endpoint: the first call fails with 503 (to see the retry), then every call is accepted."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.refused == 0:
                    outer.refused += 1
                    self.send_response(503)
                else:
                    outer.calls.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()


@pytest.fixture
def hub(settings, pool, db, city, broker, tmp_path):
    """Ingest, the alert services and the API in this process, as `mimamori up` runs them."""
    clean_alert_tables(db)
    add_gauges(db, ("g1", "toyota-city", 137.179, 35.094))
    s = settings.model_copy(
        update={
            "alerts_rules_dir": str(write_rules(tmp_path / "rules", RULES)),
            "alerts_tick_s": 0.5,
            "alerts_webhook_backoff_s": 0.2,
            "alerts_stream_keepalive_s": 1.0,
            "alerts_mqtt_client_id": f"alerts-{tmp_path.name[-20:]}",
            # the broker's alert-publisher account: it may publish under <prefix>/alerts/ and nowhere else
            "alerts_mqtt_username": broker.alerts_username,
            "alerts_mqtt_password": SecretStr(broker.alerts_password),
            # the test's webhook receiver listens on loopback, which webhooks may reach only when allowed
            "alerts_webhook_allow": ["127.0.0.1/32"],
        }
    )
    keys = {r: create_key(db, "toyota-city", r)[1] for r in (Role.operator, Role.viewer)}
    with in_process_hub(s, pool, alerts=True) as hub, ApiServer(hub.app()) as api:
        yield {"settings": s, "api": api.url, "keys": keys, "services": hub.alerts}


def test_mqtt_readings_raise_escalate_and_resolve_one_alert_everywhere(hub, broker):
    s, api, keys = hub["settings"], hub["api"], hub["keys"]
    viewer = {"X-API-Key": keys[Role.viewer]}

    # an MQTT dashboard listening to alert topics
    seen: list[tuple[str, bytes, bool]] = []
    listener = broker.client(username=s.mqtt_username, password=s.mqtt_password.get_secret_value())
    listener.on_message = lambda _c, _u, m: seen.append((m.topic, m.payload, m.retain))
    listener.subscribe(f"{s.mqtt_topic_prefix}/alerts/#", qos=1)

    with Receiver() as receiver, SseReader(api + "/v1/alerts/stream", viewer) as stream:
        created = httpx.post(
            api + "/v1/alert-webhooks",
            headers={"X-API-Key": keys[Role.operator]},
            json={"url": f"http://127.0.0.1:{receiver.port}/hook", "min_level": 1},
            timeout=10,
        ).json()
        wait_until(lambda: stream.status == 200, what="the live stream to open")

        device = broker.client()
        topic = telemetry_topic(s.mqtt_topic_prefix, "toyota-city", "g1")
        start = datetime.now(UTC) - timedelta(minutes=30)

        def publish(i: int, level_m: float, expect_events: int) -> None:
            body = {"ts": (start + timedelta(minutes=5 * i)).isoformat(), "values": {"water_level": level_m}}
            device.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)
            wait_until(lambda: len(stream.events) >= expect_events, what=f"{expect_events} stream events")

        publish(0, 2.0, 0)
        publish(1, 3.6, 1)
        publish(2, 4.7, 2)
        publish(3, 6.3, 3)

        # while active: the Atom feed carries the alert as a valid CAP document
        feed = etree.fromstring(httpx.get(api + "/v1/alerts/feed.atom", headers=viewer, timeout=10).content)
        entries = feed.findall(f"{ATOM}entry")
        assert len(entries) == 1
        cap_alert = entries[0].find(f"{ATOM}content").find(f"{CAP}alert")
        CAP_XSD.assertValid(cap_alert)
        assert cap_alert.find(f"{CAP}info").findtext(f"{CAP}severity") == "Severe"  # level 3

        publish(4, 2.0, 4)
        device.loop_stop()

        assert stream.kinds() == [("raised", 1), ("escalated", 2), ("escalated", 3), ("resolved", 0)]
        alert_ids = {e["data"]["alert_id"] for e in stream.events}
        assert len(alert_ids) == 1  # one alert, never one per reading
        alert_id = alert_ids.pop()

        # MQTT: every change on the events topic, the state retained
        events_topic = f"{s.mqtt_topic_prefix}/alerts/toyota-city/{alert_id}/events"
        wait_until(lambda: sum(1 for t, _p, _r in seen if t == events_topic) == 4, what="4 MQTT alert events")
        kinds = [json.loads(p)["kind"] for t, p, _r in seen if t == events_topic]
        assert kinds == ["raised", "escalated", "escalated", "resolved"]

        # webhooks: each event delivered (the first try was refused and retried), signed
        wait_until(lambda: len(receiver.calls) == 4, timeout=20, what="4 webhook deliveries")
        delivered = []
        for headers, body in receiver.calls:
            assert verify(created["secret"], headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
            delivered.append(json.loads(body)["kind"])
        assert sorted(delivered) == sorted(["raised", "escalated", "escalated", "resolved"])
        log = httpx.get(
            api + f"/v1/alert-webhooks/{created['id']}/deliveries", headers={"X-API-Key": keys[Role.operator]}
        ).json()
        assert {d["status"] for d in log} == {"delivered"}
        assert max(d["attempts"] for d in log) == 2

    listener.loop_stop()
    # a dashboard connecting now gets the alert's current state, retained
    late: list[tuple[str, bytes, bool]] = []
    newcomer = broker.client(username=s.mqtt_username, password=s.mqtt_password.get_secret_value())
    newcomer.on_message = lambda _c, _u, m: late.append((m.topic, m.payload, m.retain))
    newcomer.subscribe(f"{s.mqtt_topic_prefix}/alerts/toyota-city/+", qos=1)
    # other tests' alerts on the same broker and prefix may be retained there too: this alert's is the one read
    mine = f"{s.mqtt_topic_prefix}/alerts/toyota-city/{alert_id}"
    wait_until(lambda: any(t == mine for t, _p, _r in late), what="the retained alert state")
    newcomer.loop_stop()
    topic, payload, retained = next(m for m in late if m[0] == mine)
    assert retained and topic.endswith(f"/{alert_id}")
    assert json.loads(payload)["state"] == "resolved"

    # and the resolved alert is still a valid CAP document (an update, urgency Past)
    doc = etree.fromstring(httpx.get(api + f"/v1/alerts/{alert_id}/cap", headers=viewer, timeout=10).content)
    CAP_XSD.assertValid(doc)
    assert doc.findtext(f"{CAP}msgType") == "Update"
    assert doc.find(f"{CAP}info").findtext(f"{CAP}urgency") == "Past"
