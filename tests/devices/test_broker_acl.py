"""The broker enforces who may connect and where they may publish (Mosquitto dynamic security, real MQTT 5)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices.broker import BrokerAdmin, DeviceCredentials
from tests.services import wait_until

NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86


@dataclass
class Session:
    """A paho MQTT 5 client with what the broker told it."""

    client: mqtt.Client
    connack: list[ReasonCode] = field(default_factory=list)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    subacks: list[list[ReasonCode]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(broker, username: str | None, password: str | None, client_id: str = "") -> Session:
    """Connect once (no automatic reconnect) and wait for the CONNACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    session = Session(client)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: session.connack.append(rc)
    client.on_publish = lambda _c, _u, mid, rc, _p: session.pubacks.__setitem__(mid, rc)
    client.on_subscribe = lambda _c, _u, _m, rcs, _p: session.subacks.append(rcs)
    client.on_message = lambda _c, _u, msg: session.messages.append(msg.topic)
    client.on_disconnect = lambda *_: session.disconnected.set()
    client.reconnect_delay_set(60, 60)  # a refused client must not quietly come back during the test
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    wait_until(lambda: session.connack, timeout=5, what="CONNACK")
    return session


def refused(session: Session) -> bool:
    return session.connack[0].is_failure and session.connack[0].value in (NOT_AUTHORIZED, BAD_CREDENTIALS)


@pytest.fixture
def admin(settings):
    with BrokerAdmin(settings) as a:
        yield a


@pytest.fixture
def ingest_listener(broker, request):
    """The ingestor's account, subscribed to every device topic on a shared subscription."""
    s = connect(broker, broker.ingest_username, broker.ingest_password, f"listen-{request.node.name[:30]}")
    # Retained messages other tests left (alert states) are not part of what these tests publish.
    s.client.subscribe(
        "$share/acl-test/mimamori/v1/#",
        options=SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND),
    )
    wait_until(lambda: s.subacks, what="SUBACK")
    assert not s.subacks[0][0].is_failure
    yield s
    s.close()


@pytest.fixture
def device(settings, request) -> DeviceCredentials:
    device_id = f"acl-{request.node.name[5:35].replace('_', '-').strip('[]')}-{abs(hash(request.node.nodeid)) % 1000}"
    with BrokerAdmin(settings) as a:
        creds = a.provision_device("acme", device_id)
    yield creds
    with BrokerAdmin(settings) as a:
        a.revoke_device(device_id)


def test_a_device_publishes_to_its_own_topics(broker, device, ingest_listener):
    s = connect(broker, device.username, device.password, device.device_id)
    try:
        assert not s.connack[0].is_failure
        for topic in (device.telemetry_topic, device.status_topic):
            info = s.client.publish(topic, b'{"values": {"soil_moisture": 0.3}}', qos=1)
            wait_until(lambda info=info: info.mid in s.pubacks, what="PUBACK")
            assert s.pubacks[info.mid].value == 0
        wait_until(lambda: len(ingest_listener.messages) == 2, what="both messages at the ingestor")
        assert ingest_listener.messages == [device.telemetry_topic, device.status_topic]
    finally:
        s.close()


@pytest.mark.parametrize(
    "topic",
    [
        "mimamori/v1/acme/some-other-device/telemetry",  # another device of the same tenant
        "mimamori/v1/toyota-city/{device}/telemetry",  # its own id under another tenant
        "mimamori/v1/toyota-city/yahagi-takahashi/status",  # another tenant's device
        "mimamori/v1/acme/{device}/command",  # not one of its two topics
    ],
)
def test_a_device_cannot_publish_anywhere_else(broker, device, ingest_listener, topic):
    s = connect(broker, device.username, device.password, device.device_id)
    try:
        info = s.client.publish(topic.format(device=device.device_id), b'{"values": {"water_level": 9.9}}', qos=1)
        wait_until(lambda: info.mid in s.pubacks, what="PUBACK")
        assert s.pubacks[info.mid].value == NOT_AUTHORIZED
        # Mosquitto 2.0.11 also drops the offending connection after that PUBACK.
        # A message it may publish, sent afterwards by a fresh connection, arrives: the refused one never did.
        # (Under its own client id: the account may use no other.)
        probe = connect(broker, device.username, device.password, device.device_id)
        probe.client.publish(device.status_topic, b"{}", qos=1).wait_for_publish(5)
        probe.close()
        wait_until(lambda: ingest_listener.messages, what="the probe message")
        assert ingest_listener.messages == [device.status_topic]
    finally:
        s.close()


def test_a_device_cannot_subscribe_to_readings(broker, device):
    s = connect(broker, device.username, device.password, device.device_id)
    try:
        s.client.subscribe([("mimamori/v1/#", 1), (device.telemetry_topic, 1)])
        wait_until(lambda: s.subacks, what="SUBACK")
        assert [rc.value for rc in s.subacks[0]] == [NOT_AUTHORIZED, NOT_AUTHORIZED]
    finally:
        s.close()


def test_the_ingest_account_cannot_publish_readings(broker, ingest_listener):
    info = ingest_listener.client.publish("mimamori/v1/acme/acme-soil-1/telemetry", b"{}", qos=1)
    wait_until(lambda: info.mid in ingest_listener.pubacks, what="PUBACK")
    assert ingest_listener.pubacks[info.mid].value == NOT_AUTHORIZED


def test_a_wrong_password_is_refused_at_connect(broker, device):
    s = connect(broker, device.username, device.password + "x")
    try:
        assert refused(s), s.connack
    finally:
        s.close()


def test_an_anonymous_client_is_refused(broker):
    s = connect(broker, None, None)
    try:
        assert refused(s), s.connack
    finally:
        s.close()


def test_an_unknown_user_is_refused(broker):
    s = connect(broker, "no-such-device", "whatever")
    try:
        assert refused(s), s.connack
    finally:
        s.close()


def test_a_revoked_device_is_dropped_and_refused(broker, admin, device):
    live = connect(broker, device.username, device.password, device.device_id)
    try:
        assert admin.revoke_device(device.device_id)
        assert live.disconnected.wait(5), "the open connection is dropped at once"
        again = connect(broker, device.username, device.password)
        assert refused(again), again.connack
        again.close()
    finally:
        live.close()
    assert not admin.revoke_device(device.device_id)  # revoking twice is harmless


def test_a_rotated_password_works_at_once_and_the_old_one_does_not(broker, admin, device):
    live = connect(broker, device.username, device.password, device.device_id)
    try:
        rotated = admin.rotate_password("acme", device.device_id)
        assert rotated.password != device.password
        assert live.disconnected.wait(5), "the session opened with the old password is dropped"
        old = connect(broker, device.username, device.password)
        assert refused(old), old.connack
        old.close()
        new = connect(broker, rotated.username, rotated.password, device.device_id)
        assert not new.connack[0].is_failure
        info = new.client.publish(rotated.telemetry_topic, b"{}", qos=1)
        wait_until(lambda: info.mid in new.pubacks, what="PUBACK")
        assert not new.pubacks[info.mid].is_failure  # 0x10 "no matching subscribers" is a success
        new.close()
    finally:
        live.close()


def test_provisioning_twice_is_refused_and_leaves_the_first_password_working(broker, admin, device):
    from mimamori.errors import ValidationError

    with pytest.raises(ValidationError, match="already has a broker account"):
        admin.provision_device("acme", device.device_id)
    s = connect(broker, device.username, device.password, device.device_id)
    try:
        assert not s.connack[0].is_failure
    finally:
        s.close()


def test_the_broker_keeps_accounts_across_a_restart(broker, admin, device):
    broker.restart()
    s = connect(broker, device.username, device.password, device.device_id)
    try:
        assert not s.connack[0].is_failure
    finally:
        s.close()
