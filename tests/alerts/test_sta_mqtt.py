"""SensorThings MQTT extension against the real Mosquitto: a tenant's reader receives each committed Observation
(MQTT or HTTP entry) as the STA document GET answers; another tenant's reader, and wildcard filters, get nothing."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from devices import dynsec
from devices.broker import BrokerAdmin
from devices.sta import ObservationId, tenant_datastreams
from hub.compose import in_process_hub
from tests.alerts_helpers import clean_alert_tables
from tests.api.sta_support import RECENT, iso, seed
from tests.broker_support import NOT_AUTHORIZED, Conn, connect
from tests.geo_support import role_keys
from tests.services import wait_until

STA = "/sta/v1.1"


@pytest.fixture
def hub_settings(settings):
    # the REST face under TestClient answers http://testserver/sta/v1.1: the publisher links to the same base
    return settings.model_copy(update={"alerts_public_url": "http://testserver"})


def reader(s, broker, db, tenant: str) -> Conn:
    name = f"sta-{tenant}-{uuid.uuid4().hex[:8]}"
    with BrokerAdmin(s) as admin:
        password = admin.create_sta_reader(name, tenant, tenant_datastreams(db, tenant))
    return connect(broker.port, name, password, name)


def subscribe(conn: Conn, topic: str) -> int:
    before = len(conn.subacks)
    conn.client.subscribe(topic, qos=1)
    wait_until(lambda: len(conn.subacks) > before, timeout=5, what=f"SUBACK for {topic}")
    return conn.subacks[-1][0].value


def test_a_reader_receives_observations_as_sta_json_after_mqtt_and_http_entries(hub_settings, pool, db, city, broker):
    clean_alert_tables(db)
    series = seed(db)
    ds = series["acme-soil-1/soil_moisture"]
    keys = role_keys(db)
    acme = reader(hub_settings, broker, db, "acme")
    try:
        assert subscribe(acme, dynsec.sta_datastream_topic(ds)) < 0x80
        assert subscribe(acme, dynsec.sta_thing_filter("acme-soil-1")) < 0x80
        with in_process_hub(hub_settings, pool, alerts=True, webhooks=False) as hub:
            wait_until(lambda: hub.alerts.publisher.client.is_connected(), timeout=10, what="the alert publisher")
            from fastapi.testclient import TestClient

            with TestClient(hub.app()) as api:
                # an HTTP entry: STA POST
                body = {"phenomenonTime": iso(RECENT), "result": 0.42, "Datastream": {"@iot.id": ds}}
                assert api.post(STA + "/Observations", json=body, headers=keys["partner"]).status_code == 201
                wait_until(lambda: len(acme.messages) >= 2, timeout=15, what="the posted Observation on MQTT")
                # an MQTT entry: the device's telemetry through ingest
                when = RECENT + timedelta(minutes=5)
                device = broker.client(f"dev-{uuid.uuid4().hex[:8]}")
                device.connect("127.0.0.1", broker.port)
                device.loop_start()
                payload = json.dumps({"ts": iso(when), "values": {"soil_moisture": 0.37}})
                device.publish(f"{hub_settings.mqtt_topic_prefix}/acme/acme-soil-1/telemetry", payload, qos=1)
                wait_until(lambda: len(acme.messages) >= 4, timeout=15, what="the MQTT reading on STA MQTT")
                device.disconnect()
                device.loop_stop()
                got = [json.loads(m) for m in acme.messages]
                for i, t in ((0, RECENT), (2, when)):
                    oid = str(ObservationId(ds, t))
                    rest = api.get(f"{STA}/Observations('{oid}')", headers=keys["partner"])
                    assert rest.status_code == 200
                    assert got[i] == rest.json() == got[i + 1]  # one per subscription: Datastream's and Thing's
                assert [g["result"] for g in got[::2]] == [0.42, 0.37]
    finally:
        acme.close()


def test_another_tenants_reader_and_wildcards_get_nothing(hub_settings, pool, db, city, broker):
    clean_alert_tables(db)
    series = seed(db)
    ds = series["acme-soil-1/soil_moisture"]
    keys = role_keys(db)
    acme = reader(hub_settings, broker, db, "acme")
    city_reader = reader(hub_settings, broker, db, "toyota-city")
    try:
        for topic in (
            dynsec.sta_datastream_topic(ds),
            dynsec.sta_thing_filter("acme-soil-1"),
            dynsec.sta_thing_topic("acme-soil-1", ds),
            "v1.1/#",
            "#",
            "v1.1/+/Observations",
            "v1.1/+/+/Observations",
            "v1.1/Things('gauge-1')/#",
        ):
            assert subscribe(city_reader, topic) == NOT_AUTHORIZED, topic
        assert subscribe(city_reader, dynsec.sta_datastream_topic(series["gauge-1/water_level"])) < 0x80
        assert subscribe(acme, "v1.1/#") == NOT_AUTHORIZED
        assert subscribe(acme, dynsec.sta_datastream_topic(ds)) < 0x80
        with in_process_hub(hub_settings, pool, alerts=True, webhooks=False) as hub:
            wait_until(lambda: hub.alerts.publisher.client.is_connected(), timeout=10, what="the alert publisher")
            from fastapi.testclient import TestClient

            with TestClient(hub.app()) as api:
                body = {"phenomenonTime": iso(RECENT), "result": 0.5, "Datastream": {"@iot.id": ds}}
                assert api.post(STA + "/Observations", json=body, headers=keys["partner"]).status_code == 201
                wait_until(lambda: acme.messages, timeout=15, what="acme's Observation")
        # published to both tenants' readers at once: the city's reader heard nothing of it
        assert len(acme.messages) == 1
        assert city_reader.messages == []
    finally:
        acme.close()
        city_reader.close()


def test_sync_follows_new_datastreams(settings, db, city, broker):
    series = seed(db)
    with BrokerAdmin(settings) as admin:
        admin.sync_sta_reader_role("acme", [])
        assert admin.sync_sta_reader_role("acme", tenant_datastreams(db, "acme")) == 3
        assert admin.sync_sta_reader_role("acme", tenant_datastreams(db, "acme")) == 0  # in line: nothing to do
        role = admin.execute([dynsec.get_role(dynsec.sta_reader_role("acme"))])[0]["data"]["role"]
    topics = {a["topic"] for a in role["acls"]}
    assert dynsec.sta_datastream_topic(series["acme-soil-1/soil_moisture"]) in topics
    assert not any("gauge-1" in t or f"({series['gauge-1/water_level']})" in t for t in topics)


def test_a_new_datastream_becomes_subscribable_once_its_first_observation_is_committed(
    hub_settings, pool, db, city, broker
):
    """The publisher keeps the tenant's reader role in step: a reader made before the series existed may subscribe
    to it once the hub has committed its first Observation, and receives the next."""
    clean_alert_tables(db)
    series = seed(db)
    ds = series["acme-soil-1/soil_moisture"]
    keys = role_keys(db)
    name = f"sta-acme-{uuid.uuid4().hex[:8]}"
    with BrokerAdmin(hub_settings) as admin:
        password = admin.create_sta_reader(name, "acme", [])  # as if acme had no Datastream yet
    acme = connect(broker.port, name, password, name)
    try:
        assert subscribe(acme, dynsec.sta_datastream_topic(ds)) == NOT_AUTHORIZED
        with in_process_hub(hub_settings, pool, alerts=True, webhooks=False) as hub:
            wait_until(lambda: hub.alerts.publisher.client.is_connected(), timeout=10, what="the alert publisher")
            from fastapi.testclient import TestClient

            with TestClient(hub.app()) as api:
                body = {"phenomenonTime": iso(RECENT), "result": 0.3, "Datastream": {"@iot.id": ds}}
                assert api.post(STA + "/Observations", json=body, headers=keys["partner"]).status_code == 201
                wait_until(lambda: hub.alerts.sta.role_syncs, timeout=15, what="the reader role synced")
                assert subscribe(acme, dynsec.sta_datastream_topic(ds)) < 0x80
                body["phenomenonTime"] = iso(RECENT + timedelta(minutes=1))
                assert api.post(STA + "/Observations", json=body, headers=keys["partner"]).status_code == 201
                wait_until(lambda: acme.messages, timeout=15, what="the second Observation")
        assert json.loads(acme.messages[0])["phenomenonTime"] == body["phenomenonTime"]
    finally:
        acme.close()
