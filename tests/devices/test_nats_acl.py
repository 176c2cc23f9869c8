"""The NATS cluster enforces who may connect and where they may publish (MIMAMORI_BROKER=nats): the broker ACL
matrix of tests/devices/test_broker_acl.py, for devices provisioned by the hub as NATS users with subject
permissions, speaking MQTT 3.1.1 to any node."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import nats
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.broker import DeviceCredentials
from devices.nats_accounts import NatsAccounts
from devkit.nats import INGEST_USER
from ingest.nats_consumer import stream_config
from tests.nats_support import nats_cluster, nats_settings
from tests.services import wait_until

__all__ = ["nats_cluster"]

REFUSED = (0x86, 0x87)  # MQTT 3.1.1 CONNACK 4 and 5 (bad user name or password, not authorised), as paho names them


@dataclass
class Session:
    """A paho MQTT 3.1.1 client and what the broker told it."""

    client: mqtt.Client
    connack: list[int] = field(default_factory=list)
    pubacks: set[int] = field(default_factory=set)
    subacks: list[list[int]] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)

    @property
    def accepted(self) -> bool:
        return self.connack[0] == 0

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(port: int, username: str | None, password: str | None, client_id: str) -> Session:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    session = Session(client)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: session.connack.append(rc.value)
    client.on_publish = lambda _c, _u, mid, _rc, _p: session.pubacks.add(mid)
    client.on_subscribe = lambda _c, _u, _m, rcs, _p: session.subacks.append([rc.value for rc in rcs])
    client.on_disconnect = lambda *_: session.disconnected.set()
    client.reconnect_delay_set(60, 60)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_until(lambda: session.connack, timeout=10, what="CONNACK")
    return session


def make_hub(cluster):
    """The hub's settings for ``cluster``: they manage its accounts; and a stream that keeps what devices publish."""
    settings = cluster.hub_settings()
    ingest = nats_settings(settings, cluster)

    async def make_stream() -> None:
        nc = await nats.connect(servers=cluster.urls, user=INGEST_USER, password=cluster.ingest_password)
        js = nc.jetstream()
        config = stream_config(ingest)
        config.retention = "limits"  # kept, so each test can count what arrived on a subject
        config.name = "ACL_TEST"
        await js.add_stream(config)
        await nc.close()

    asyncio.run(make_stream())
    return settings


@pytest.fixture(scope="module")
def hub(nats_cluster):
    return make_hub(nats_cluster)


def arrived(cluster, topic: str) -> int:
    """Messages the device stream holds on ``topic``'s subject."""
    from devices import topic_to_subject

    async def count() -> int:
        nc = await nats.connect(servers=cluster.urls, user=INGEST_USER, password=cluster.ingest_password)
        try:
            info = await nc.jetstream().stream_info("ACL_TEST", subjects_filter=topic_to_subject(topic))
            return int((info.state.subjects or {}).get(topic_to_subject(topic), 0))
        finally:
            await nc.close()

    return asyncio.run(count())


@pytest.fixture
def device(hub, request) -> DeviceCredentials:
    device_id = f"nacl-{abs(hash(request.node.nodeid)) % 10**6}"
    with NatsAccounts(hub) as accounts:
        creds = accounts.provision_device("acme", device_id)
    yield creds
    with NatsAccounts(hub) as accounts:
        accounts.revoke_device(device_id)


def publish(s: Session, topic: str) -> None:
    info = s.client.publish(topic, b'{"values": {"soil_moisture": 0.3}}', qos=1)
    wait_until(lambda: info.mid in s.pubacks or s.disconnected.is_set(), what=f"PUBACK for {topic}")


def test_a_device_publishes_to_its_own_topics_on_any_node(nats_cluster, device):
    for node in nats_cluster.nodes:
        s = connect(node.mqtt_port, device.username, device.password, device.device_id)
        try:
            assert s.accepted
            publish(s, device.telemetry_topic)
            publish(s, device.status_topic)
        finally:
            s.close()
    wait_until(lambda: arrived(nats_cluster, device.telemetry_topic) == 3, what="telemetry from every node")
    assert arrived(nats_cluster, device.status_topic) == 3


@pytest.mark.parametrize(
    "topic",
    [
        "mimamori/v1/acme/some-other-device/telemetry",  # another device of the same tenant
        "mimamori/v1/toyota-city/{device}/telemetry",  # its own id under another tenant
        "mimamori/v1/toyota-city/yahagi-takahashi/status",  # another tenant's device
        "mimamori/v1/acme/{device}/command",  # not one of its two topics
    ],
)
def test_a_device_cannot_publish_anywhere_else(nats_cluster, device, topic):
    topic = topic.format(device=device.device_id)
    s = connect(nats_cluster.nodes[0].mqtt_port, device.username, device.password, device.device_id)
    try:
        publish(s, topic)  # MQTT 3.1.1 has no refusing PUBACK: the node acknowledges (or drops) and discards it
    finally:
        s.close()
    # A message it may publish, sent afterwards, arrives: the refused one never did.
    probe = connect(nats_cluster.nodes[1].mqtt_port, device.username, device.password, device.device_id)
    try:
        publish(probe, device.status_topic)
    finally:
        probe.close()
    wait_until(lambda: arrived(nats_cluster, device.status_topic) == 1, what="the probe message")
    assert arrived(nats_cluster, topic) == 0


def test_a_device_cannot_subscribe_to_readings(nats_cluster, device):
    s = connect(nats_cluster.nodes[0].mqtt_port, device.username, device.password, device.device_id)
    try:
        s.client.subscribe([("mimamori/v1/#", 1), (device.telemetry_topic, 1)])
        wait_until(lambda: s.subacks or s.disconnected.is_set(), what="SUBACK")
        assert s.subacks == [] or s.subacks[0] == [0x80, 0x80]
    finally:
        s.close()


def test_the_ingest_account_cannot_connect_over_mqtt_or_publish_readings(nats_cluster):
    async def try_publish() -> str:
        nc = await nats.connect(servers=nats_cluster.urls, user=INGEST_USER, password=nats_cluster.ingest_password)
        errors: list[str] = []
        try:
            await nc.jetstream().publish("mimamori.v1.acme.acme-soil-1.telemetry", b"{}", timeout=2)
        except Exception as exc:  # the JetStream publish gets no answer: the node refused the subject
            errors.append(type(exc).__name__)
        finally:
            await nc.close()
        return ",".join(errors)

    assert asyncio.run(try_publish())  # refused (no acknowledgement from the stream)
    assert arrived(nats_cluster, "mimamori/v1/acme/acme-soil-1/telemetry") == 0


def test_a_wrong_password_an_unknown_user_and_anonymous_are_refused(nats_cluster, device):
    port = nats_cluster.nodes[2].mqtt_port
    for user, password in ((device.username, device.password + "x"), ("no-such-device", "whatever"), (None, None)):
        s = connect(port, user, password, device.device_id)
        try:
            assert s.connack[0] in REFUSED, (user, s.connack)
        finally:
            s.close()


def test_a_revoked_device_is_dropped_and_refused_on_every_node(nats_cluster, hub, device):
    live = [
        connect(n.mqtt_port, device.username, device.password, f"{device.device_id}-{n.name}")
        for n in nats_cluster.nodes
    ]
    try:
        assert all(s.accepted for s in live)
        with NatsAccounts(hub) as accounts:
            assert accounts.revoke_device(device.device_id)
        for s in live:
            assert s.disconnected.wait(10), "open connections are dropped at the reload"
        for node in nats_cluster.nodes:
            again = connect(node.mqtt_port, device.username, device.password, device.device_id)
            assert again.connack[0] in REFUSED
            again.close()
    finally:
        for s in live:
            s.close()
    with NatsAccounts(hub) as accounts:
        assert not accounts.revoke_device(device.device_id)  # revoking twice is harmless


def test_a_rotated_password_works_at_once_and_the_old_one_does_not(nats_cluster, hub, device):
    port = nats_cluster.nodes[0].mqtt_port
    live = connect(port, device.username, device.password, device.device_id)
    try:
        with NatsAccounts(hub) as accounts:
            rotated = accounts.rotate_password("acme", device.device_id)
        assert rotated.password != device.password
        assert live.disconnected.wait(10), "the session opened with the old password is dropped"
        old = connect(port, device.username, device.password, device.device_id)
        assert old.connack[0] in REFUSED
        old.close()
        new = connect(port, rotated.username, rotated.password, device.device_id)
        assert new.accepted
        publish(new, rotated.telemetry_topic)
        new.close()
        wait_until(lambda: arrived(nats_cluster, rotated.telemetry_topic) == 1, what="the new session's message")
    finally:
        live.close()


def test_provisioning_twice_is_refused_and_leaves_the_first_password_working(nats_cluster, hub, device):
    from mimamori.errors import ValidationError

    with NatsAccounts(hub) as accounts, pytest.raises(ValidationError, match="already has a broker account"):
        accounts.provision_device("acme", device.device_id)
    s = connect(nats_cluster.nodes[0].mqtt_port, device.username, device.password, device.device_id)
    try:
        assert s.accepted
    finally:
        s.close()


def test_a_hub_process_name_cannot_be_provisioned(hub):
    from mimamori.errors import ValidationError

    with NatsAccounts(hub) as accounts, pytest.raises(ValidationError, match="hub's own"):
        accounts.provision_device("acme", "mimamori-ingest-1")


@pytest.mark.xfail(
    strict=True,
    reason="client-id binding: an accounts file cannot tie a NATS user to an MQTT client id; the auth callout does"
    " (tests/devices/test_nats_callout.py; docs/scaling.md, 'NATS JetStream path')",
)
def test_another_account_cannot_connect_under_a_devices_client_id(nats_cluster, hub, device):
    with NatsAccounts(hub) as accounts:
        other = accounts.provision_device("acme", f"{device.device_id}-other")
    try:
        s = connect(nats_cluster.nodes[0].mqtt_port, other.username, other.password, device.device_id)
        accepted = s.accepted
        s.close()
        assert not accepted
    finally:
        with NatsAccounts(hub) as accounts:
            accounts.revoke_device(other.device_id)


def test_the_hubs_device_commands_provision_and_retire_nats_accounts(nats_cluster, hub, db, city):
    """The registry's own provision and retire (what the CLI and the API call) drive the NATS accounts when
    MIMAMORI_BROKER=nats, as they drive Mosquitto's dynamic security otherwise."""
    from devices import broker_admin
    from devices.manage import Caller, get_device, provision_device, retire_device

    caller = Caller("test", None)

    def accounts():
        return broker_admin(hub)

    creds = provision_device(db, caller, "rain-1", accounts)
    assert get_device(db, caller, "rain-1").has_credentials
    live = connect(nats_cluster.nodes[1].mqtt_port, creds.username, creds.password, "rain-1")
    try:
        assert live.accepted
        publish(live, creds.telemetry_topic)
        wait_until(lambda: arrived(nats_cluster, creds.telemetry_topic) == 1, what="the provisioned device's message")
        retire_device(db, caller, "rain-1", accounts)
        assert live.disconnected.wait(10), "retiring drops the device's connection"
    finally:
        live.close()
    again = connect(nats_cluster.nodes[0].mqtt_port, creds.username, creds.password, "rain-1")
    assert again.connack[0] in REFUSED
    again.close()
