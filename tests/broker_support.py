"""Helpers for the broker's client-id tests: a broker initialised as production does, old-way installations,
and single MQTT 5 connections that record what the broker told them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices import dynsec
from devices.broker import BrokerAdmin
from mimamori.settings import Settings
from tests.services import Mosquitto, wait_until

PREFIX = "mimamori/v1"
NOT_AUTHORIZED = 0x87
INGEST_ID = "mimamori-ingest-1"
WORKER_ID = "mimamori-ingest-1-2"  # worker 2 of `mimamori ingest --workers 2`
ALERTS_ID = "mimamori-alerts-1"


@contextmanager
def hub_broker(bind: bool = True) -> Iterator[Mosquitto]:
    """A private broker with the hub's accounts as `mimamori broker init --ingest-workers 2` makes them (bound),
    or as brokers initialised before client-id binding were (``bind=False``)."""
    mosq = Mosquitto(bind_hub_accounts=bind, ingest_ids=(INGEST_ID, WORKER_ID), alerts_ids=(ALERTS_ID,))
    mosq.start()
    try:
        yield mosq
    finally:
        mosq.cleanup()


def hub_settings(base: Settings, mosq: Mosquitto) -> Settings:
    """``base`` (the test's database) pointed at ``mosq`` with the hub's production client ids."""
    return base.model_copy(
        update={
            "mqtt_url": mosq.url,
            "mqtt_client_id": INGEST_ID,
            "mqtt_username": mosq.ingest_username,
            "mqtt_password": _secret(mosq.ingest_password),
            "alerts_mqtt_client_id": ALERTS_ID,
            "alerts_mqtt_username": mosq.alerts_username,
            "alerts_mqtt_password": _secret(mosq.alerts_password),
            "mqtt_admin_username": mosq.admin_username,
            "mqtt_admin_password": _secret(mosq.admin_password),
        }
    )


def _secret(value: str | None) -> Any:
    from pydantic import SecretStr

    return SecretStr(value) if value is not None else None


def provision_old_way(admin: BrokerAdmin, tenant: str, device_id: str) -> str:
    """A device account as the hub created it before client-id binding: no client id. Returns its password."""
    password = f"pw-{device_id}"
    role = dynsec.device_role(device_id)
    admin.execute(
        [
            dynsec.create_role(role, dynsec.device_acls(PREFIX, tenant, device_id)),
            dynsec.create_client(device_id, password, [role], f"device {device_id} of {tenant}", client_id=None),
        ]
    )
    return password


@dataclass
class Conn:
    """One MQTT 5 connection (no automatic reconnect during a test) and what the broker told it."""

    client: mqtt.Client
    connack: list[ReasonCode] = field(default_factory=list)
    session_present: list[bool] = field(default_factory=list)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: list[list[ReasonCode]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    dropped: threading.Event = field(default_factory=threading.Event)

    @property
    def accepted(self) -> bool:
        return not self.connack[0].is_failure

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int, username: str, password: str | None, client_id: str, *, clean_start: bool = True, expiry: int = 0
) -> Conn:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    conn = Conn(client)
    client.username_pw_set(username, password)

    def on_connect(_c: mqtt.Client, _u: object, flags: Any, rc: ReasonCode, _p: object) -> None:
        conn.session_present.append(bool(flags.session_present))
        conn.connack.append(rc)

    client.on_connect = on_connect
    client.on_publish = lambda _c, _u, mid, rc, _p: conn.pubacks.__setitem__(mid, rc)
    client.on_subscribe = lambda _c, _u, _m, rcs, _p: conn.subacks.append(rcs)
    client.on_message = lambda _c, _u, msg: conn.messages.append(msg.payload)
    client.on_disconnect = lambda *_: conn.dropped.set()
    client.reconnect_delay_set(60, 60)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    client.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
    client.loop_start()
    wait_until(lambda: conn.connack, timeout=5, what=f"CONNACK for {username} as {client_id}")
    return conn


def try_connect(port: int, username: str, password: str | None, client_id: str, *, clean_start: bool) -> ReasonCode:
    """One CONNECT, driven in this thread (no network thread to join: quick enough for a matrix); its CONNACK.
    Accepted, it disconnects at once."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    got: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: got.append(rc)
    client.connect("127.0.0.1", port, clean_start=clean_start)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        client.loop(timeout=0.02)
    if got and not got[0].is_failure:
        client.disconnect()
        client.loop(timeout=0.02)
    assert got, f"no CONNACK for {username} as {client_id}"
    return got[0]


def publish(conn: Conn, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
    """Publish at QoS 1 and return the broker's PUBACK reason."""
    info = conn.client.publish(topic, payload, qos=1, retain=retain)
    wait_until(lambda: info.mid in conn.pubacks, timeout=5, what=f"PUBACK for {topic}")
    return conn.pubacks[info.mid]
