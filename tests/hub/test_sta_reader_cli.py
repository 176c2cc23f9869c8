"""`mimamori broker add-sta-reader` and `sync-sta-readers`: an operator issues a partner's SensorThings MQTT reader."""

from __future__ import annotations

import subprocess
import sys
import uuid

from devices import dynsec
from devkit.processes import outside_environment
from tests.api.sta_support import seed
from tests.broker_support import NOT_AUTHORIZED, connect
from tests.services import wait_until

MIMAMORI = [sys.executable, "-m", "hub.cli"]


def _cli(settings, *args: str) -> str:
    env = outside_environment() | {
        "MIMAMORI_DATABASE_URL": settings.dsn,
        "MIMAMORI_MQTT_URL": settings.mqtt_url,
        "MIMAMORI_MQTT_ADMIN_USERNAME": settings.mqtt_admin_username,
        "MIMAMORI_MQTT_ADMIN_PASSWORD": settings.mqtt_admin_password.get_secret_value(),
        "COLUMNS": "400",
    }
    done = subprocess.run([*MIMAMORI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_operator_issues_a_reader_that_may_follow_its_tenant_only(settings, db, city, broker):
    series = seed(db)
    name = f"acme-dash-{uuid.uuid4().hex[:6]}"
    out = _cli(settings, "broker", "add-sta-reader", name, "--tenant", "acme")
    assert f"STA reader {name} of acme (1 Datastreams)" in out
    password = out.strip().splitlines()[-1]
    assert "sync" not in password and len(password) >= 24
    assert "acme: 1 Datastreams, 0 ACL changes" in _cli(settings, "broker", "sync-sta-readers", "--tenant", "acme")

    conn = connect(broker.port, name, password, name)
    try:
        assert conn.accepted
        for topic, allowed in (
            (dynsec.sta_datastream_topic(series["acme-soil-1/soil_moisture"]), True),
            (dynsec.sta_datastream_topic(series["gauge-1/water_level"]), False),
            ("v1.1/#", False),
        ):
            before = len(conn.subacks)
            conn.client.subscribe(topic, qos=1)
            wait_until(lambda b=before: len(conn.subacks) > b, timeout=5, what=f"SUBACK for {topic}")
            assert (conn.subacks[-1][0].value != NOT_AUTHORIZED) is allowed, topic
    finally:
        conn.close()
