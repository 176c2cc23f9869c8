"""No broker account can connect under another's client id (issue 14, item 2), with real Mosquitto clients.

MQTT's session takeover lets a CONNECT with a live client's id disconnect it, and with clean start discard its
persistent session and the messages queued for it. Every account is bound to its own client id, so the
broker refuses such a CONNECT before any takeover: here every kind of account tries every other's id.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from alerts.mqtt_publish import event_topic, state_topic
from devices.broker import BrokerAdmin
from mimamori.settings import Settings
from tests.broker_support import (
    ALERTS_ID,
    INGEST_ID,
    NOT_AUTHORIZED,
    PREFIX,
    WORKER_ID,
    Conn,
    connect,
    hub_broker,
    hub_settings,
    provision_old_way,
    publish,
    try_connect,
)
from tests.services import Mosquitto, running_ingestor, wait_until


@dataclass(frozen=True)
class Login:
    kind: str
    username: str
    password: str
    client_id: str
    subscribes: bool = False  # may hold subscriptions, hence messages queued in its persistent session


def _logins(mosq: Mosquitto, admin: BrokerAdmin) -> dict[str, Login]:
    city = admin.provision_device("toyota-city", "tk-city-gauge")
    acme = admin.provision_device("acme", "tk-acme-soil")
    beta = admin.provision_device("beta", "tk-beta-dendro")
    gateway = admin.create_publisher("tk-acme-gateway", "acme")
    assert mosq.ingest_username and mosq.ingest_password and mosq.alerts_username and mosq.alerts_password
    return {
        login.kind: login
        for login in [
            Login("city device", city.username, city.password, city.device_id),
            Login("partner device", acme.username, acme.password, acme.device_id),
            Login("other partner's device", beta.username, beta.password, beta.device_id),
            Login("partner gateway", "tk-acme-gateway", gateway, "tk-acme-gateway"),
            Login("ingestor", mosq.ingest_username, mosq.ingest_password, INGEST_ID, subscribes=True),
            Login("ingest worker 2", WORKER_ID, mosq.ingest_password, WORKER_ID, subscribes=True),
            Login("alert publisher", mosq.alerts_username, mosq.alerts_password, ALERTS_ID),
        ]
    }


@pytest.fixture
def bound(settings: Settings) -> Iterator[tuple[Mosquitto, Settings, dict[str, Login]]]:
    with hub_broker(bind=True) as mosq:
        hub = hub_settings(settings, mosq)
        with BrokerAdmin(hub) as admin:
            logins = _logins(mosq, admin)
        yield mosq, hub, logins


VICTIMS = [
    "city device",
    "partner device",
    "other partner's device",
    "partner gateway",
    "ingestor",
    "ingest worker 2",
    "alert publisher",
]


@pytest.mark.parametrize("victim_kind", VICTIMS)
def test_no_account_takes_over_another_accounts_client_id(bound, victim_kind):
    mosq, _hub, logins = bound
    victim = logins[victim_kind]
    attackers = [a for a in logins.values() if a is not victim]
    probe_topic = f"{PREFIX}/toyota-city/tk-city-gauge/telemetry"
    takeovers: list[str] = []

    def attack_all(phase: str, live: Conn | None) -> None:
        for attacker in attackers:
            for clean in (True, False):
                who = (attacker.username, attacker.password)
                reason = try_connect(mosq.port, *who, victim.client_id, clean_start=clean)
                what = f"{attacker.kind} as {victim.client_id} (clean start {clean}, {phase})"
                if reason.value != NOT_AUTHORIZED:
                    takeovers.append(f"{what}: CONNACK {reason}")
                if live is not None and live.dropped.is_set():
                    takeovers.append(f"{what}: the victim was disconnected")

    # Its own id works (the diagonal of the matrix); a persistent session, subscribed where it may.
    own = connect(mosq.port, victim.username, victim.password, victim.client_id, clean_start=False, expiry=600)
    assert own.accepted, own.connack
    if victim.subscribes:
        own.client.subscribe(probe_topic, qos=1)
        wait_until(lambda: own.subacks, what="SUBACK")
        assert not own.subacks[0][0].is_failure
    attack_all("victim connected", own)
    own.close()  # away, its session kept by the broker: the case of a stopped ingestor

    if victim.subscribes:
        device = logins["city device"]
        sender = connect(mosq.port, device.username, device.password, device.client_id)
        assert not publish(sender, probe_topic, b'{"values": {"water_level": 1.0}}').is_failure
        sender.close()
    attack_all("victim away", None)

    back = connect(mosq.port, victim.username, victim.password, victim.client_id, clean_start=False, expiry=600)
    try:
        assert back.accepted
        if back.session_present != [True]:
            takeovers.append("its persistent session was discarded")
        elif victim.subscribes:
            wait_until(lambda: back.messages, what="the message queued while it was away")
            assert back.messages == [b'{"values": {"water_level": 1.0}}']
    finally:
        back.close()
    assert takeovers == []


def test_the_admin_is_the_only_unbound_account(bound):
    _mosq, hub, _logins = bound
    with BrokerAdmin(hub) as admin:
        clients = admin.list_clients()
    unbound = [c["username"] for c in clients if not c.get("clientid")]
    assert unbound == [hub.mqtt_admin_username], clients
    bound_to = {c["username"]: c["clientid"] for c in clients if c.get("clientid")}
    assert bound_to["mimamori-ingest"] == INGEST_ID and bound_to[WORKER_ID] == WORKER_ID
    assert bound_to["mimamori-alerts"] == ALERTS_ID and bound_to["tk-city-gauge"] == "tk-city-gauge"


def test_a_device_cannot_be_provisioned_under_a_hub_client_id(bound):
    from mimamori.errors import ValidationError

    _mosq, hub, _logins = bound
    with BrokerAdmin(hub) as admin:
        for device_id in (INGEST_ID, "mimamori-alerts-2", "mimamori-anything"):
            with pytest.raises(ValidationError, match="client id of the hub"):
                admin.provision_device("acme", device_id)
        roles = {c["username"]: [r["rolename"] for r in c["roles"]] for c in admin.list_clients()}
    assert roles[INGEST_ID] == ["mimamori-ingest"]  # the hub's own account, untouched
    assert "mimamori-alerts-2" not in roles and "mimamori-anything" not in roles


# -- the issue's measurement -----------------------------------------------------------------------------

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _queue_100_then_attack(mosq: Mosquitto, hub: Settings, pool, gauge_password: str, attacker_password: str) -> int:
    """Ingest stopped, 100 readings published and acknowledged, a device connects once under the ingestor's id
    (clean start), ingest starts: how many of the 100 are stored."""
    with running_ingestor(hub, pool):
        pass  # its persistent session and subscription now exist; it stops
    gauge = connect(mosq.port, "gauge-1", gauge_password, "gauge-1")
    topic = f"{PREFIX}/toyota-city/gauge-1/telemetry"
    for i in range(100):
        payload = f'{{"ts": "{(T0 + timedelta(seconds=i)).isoformat()}", "values": {{"water_level": 1.5}}}}'
        assert publish(gauge, topic, payload.encode()).value == 0  # acknowledged: the broker holds it
    gauge.close()
    refused = try_connect(mosq.port, "rain-1", attacker_password, hub.mqtt_client_id, clean_start=True).is_failure
    with running_ingestor(hub, pool) as ingestor:
        if refused:
            wait_until(lambda: ingestor.stats.snapshot()["stored"] >= 100, timeout=30, what="the 100 queued readings")
        else:  # the session is gone: nothing can come; give a redelivery time to show up all the same
            threading.Event().wait(2)
    with pool.connection() as conn:
        return conn.execute("SELECT count(*) FROM readings WHERE device_id = 'gauge-1'").fetchone()[0]


def test_issue_14_reproduction_a_device_under_the_ingestors_id_loses_nothing(settings, pool, db, city):
    with hub_broker(bind=True) as mosq:
        hub = hub_settings(settings, mosq).model_copy(update={"mqtt_share_group": "tk-repro"})
        with BrokerAdmin(hub) as admin:
            gauge = admin.provision_device("toyota-city", "gauge-1").password
            rain = admin.provision_device("toyota-city", "rain-1").password
        assert _queue_100_then_attack(mosq, hub, pool, gauge, rain) == 100


def test_issue_14_control_on_a_broker_without_bindings_the_queue_is_lost(settings, pool, db, city):
    """The same steps on a broker provisioned the old way: the measurement the issue reported (0 of 100)."""
    with hub_broker(bind=False) as mosq:
        hub = hub_settings(settings, mosq).model_copy(update={"mqtt_share_group": "tk-control"})
        with BrokerAdmin(hub) as admin:
            gauge = provision_old_way(admin, "toyota-city", "gauge-1")
            rain = provision_old_way(admin, "toyota-city", "rain-1")
        assert _queue_100_then_attack(mosq, hub, pool, gauge, rain) == 0


# -- the alert publisher publishes exactly its topics ----------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "allowed"),
    [
        (state_topic(PREFIX, "toyota-city", 7), True),
        (event_topic(PREFIX, "toyota-city", 7), True),
        (f"{PREFIX}/alerts/x/telemetry", False),  # would read as telemetry of a tenant named `alerts`
        (f"{PREFIX}/alerts/x/status", False),
        (f"{PREFIX}/alerts/toyota-city/7/other", False),
        (f"{PREFIX}/alerts/toyota-city", False),
        (f"{PREFIX}/toyota-city/gauge-1/telemetry", False),
        ("somewhere/else", False),
    ],
)
def test_the_alert_publisher_may_publish_only_alert_states_and_events(bound, topic, allowed):
    mosq, _hub, logins = bound
    login = logins["alert publisher"]
    conn = connect(mosq.port, login.username, login.password, login.client_id)
    try:
        reason = publish(conn, topic, b"{}", retain=False)
        assert (not reason.is_failure) is allowed, reason
    finally:
        conn.close()


# -- each hub process under its own account -------------------------------------------------------------


def test_ingest_workers_each_log_in_under_their_own_bound_account(settings, db, city):
    """`mimamori ingest --workers 2` on a broker initialised with `--ingest-workers 2`: worker 2 logs in as the
    account named after its client id, and the stream is shared and stored."""
    from tests.services import HubProcess

    with hub_broker(bind=True) as mosq:
        hub = hub_settings(settings, mosq).model_copy(update={"mqtt_share_group": "tk-workers"})
        with BrokerAdmin(hub) as admin:
            gauge = admin.provision_device("toyota-city", "gauge-1").password
        proc = HubProcess(hub, "ingest", "--workers", "2")
        try:
            wait_until(lambda: sum("ingesting from" in ln for ln in proc.lines) == 2, timeout=60, what="both workers")
            sender = connect(mosq.port, "gauge-1", gauge, "gauge-1")
            for i in range(50):
                payload = f'{{"ts": "{(T0 + timedelta(seconds=i)).isoformat()}", "values": {{"water_level": 2}}}}'
                assert not publish(sender, f"{PREFIX}/toyota-city/gauge-1/telemetry", payload.encode()).is_failure
            sender.close()
            wait_until(lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] == 50, what="50 readings")
        finally:
            proc.stop()
        assert proc.proc.returncode == 0, "".join(proc.lines)
        assert any(f"as {WORKER_ID}" in ln for ln in proc.lines), proc.lines
