"""`mimamori broker migrate` on a broker provisioned before client-id binding: every account bound, passwords and
devices untouched, the alert publisher's role narrowed, idempotent, with a report."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devices import dynsec
from devices.broker import BrokerAdmin
from devices.hub_accounts import BIND, CREATE, DISABLE, KEEP, HubLogin, hub_logins, ingest_client_ids, plan_bindings
from tests.broker_support import (
    ALERTS_ID,
    INGEST_ID,
    NOT_AUTHORIZED,
    PREFIX,
    WORKER_ID,
    connect,
    hub_broker,
    hub_settings,
    provision_old_way,
    try_connect,
)
from tests.services import outside_environment

OLD_ALERTS_ACL = dynsec.Acl("publishClientSend", f"{PREFIX}/alerts/#")


def _make_alerts_role_old(admin: BrokerAdmin) -> None:
    """The alert publisher's role as it was: anything under {prefix}/alerts/."""
    role = dynsec.ALERTS_ROLE
    admin.execute(
        [
            *(
                {"command": "removeRoleACL", "rolename": role, "acltype": a.acltype, "topic": a.topic}
                for a in dynsec.alerts_acls(PREFIX)
            ),
            {"command": "addRoleACL", "rolename": role, **OLD_ALERTS_ACL.as_json()},
        ]
    )


def _migrate(hub, *args: str) -> subprocess.CompletedProcess[str]:
    env = outside_environment() | {
        "MIMAMORI_DATABASE_URL": hub.dsn,
        "MIMAMORI_MQTT_URL": hub.mqtt_url,
        "MIMAMORI_MQTT_USERNAME": hub.mqtt_username,
        "MIMAMORI_MQTT_PASSWORD": hub.mqtt_password.get_secret_value(),
        "MIMAMORI_ALERTS_MQTT_USERNAME": hub.alerts_mqtt_username,
        "MIMAMORI_ALERTS_MQTT_PASSWORD": hub.alerts_mqtt_password.get_secret_value(),
        "MIMAMORI_MQTT_ADMIN_USERNAME": hub.mqtt_admin_username,
        "MIMAMORI_MQTT_ADMIN_PASSWORD": hub.mqtt_admin_password.get_secret_value(),
    }
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "broker", "migrate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def old_install(settings, db):
    """A broker as `broker init` and `devices provision` left it before this version, devices of two tenants,
    a gateway and a device whose id is of the hub's own form."""
    with hub_broker(bind=False) as mosq:
        hub = hub_settings(settings, mosq)
        with BrokerAdmin(hub) as admin:
            _make_alerts_role_old(admin)
            devices = {
                "old-city-gauge": provision_old_way(admin, "toyota-city", "old-city-gauge"),
                "old-acme-soil": provision_old_way(admin, "acme", "old-acme-soil"),
                "mimamori-sensor-9": provision_old_way(admin, "acme", "mimamori-sensor-9"),
            }
            role = "publisher:acme"
            admin.execute(
                [
                    dynsec.create_role(role, dynsec.publisher_acls(PREFIX, "acme")),
                    dynsec.create_client("old-gateway", "pw-gw", [role], client_id=None),
                ]
            )
        yield mosq, hub, devices


def test_before_migrating_a_device_can_connect_as_the_ingestor(old_install):
    """The hole of issue 14 on an old installation (the control for the test below)."""
    mosq, _hub, devices = old_install
    assert not try_connect(mosq.port, "old-acme-soil", devices["old-acme-soil"], INGEST_ID, clean_start=True).is_failure


def test_migrate_binds_every_account_without_touching_passwords(old_install):
    mosq, hub, devices = old_install
    with BrokerAdmin(hub) as admin:
        before = admin.list_clients()

    dry = _migrate(hub, "--ingest-workers", "2", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would change" in dry.stdout
    with BrokerAdmin(hub) as admin:
        assert admin.list_clients() == before, "a dry run changes nothing"

    done = _migrate(hub, "--ingest-workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    report = done.stdout
    for line in (
        "bind    old-city-gauge → old-city-gauge",
        f"bind    mimamori-ingest → {INGEST_ID}",
        f"create  {WORKER_ID} → {WORKER_ID}",
        f"bind    mimamori-alerts → {ALERTS_ID}",
        "bind    old-gateway → old-gateway",
        "disable mimamori-sensor-9",
        f"remove publishClientSend {PREFIX}/alerts/#",
        "keep    mimamori-admin",
    ):
        assert line in report, (line, report)

    with BrokerAdmin(hub) as admin:
        clients = {c["username"]: c for c in admin.list_clients()}
        alerts_role = admin.execute([{"command": "getRole", "rolename": dynsec.ALERTS_ROLE}])[0]["data"]["role"]
    assert [name for name, c in clients.items() if not c.get("clientid")] == ["mimamori-admin", "mimamori-sensor-9"]
    assert {(a["topic"], a["allow"]) for a in alerts_role["acls"]} == {
        (a.topic, a.allow) for a in dynsec.alerts_acls(PREFIX)
    }

    # Passwords unchanged: each device and hub process logs in as before, under its own id only.
    for device in ("old-city-gauge", "old-acme-soil"):
        assert not try_connect(mosq.port, device, devices[device], device, clean_start=False).is_failure
        for other in (INGEST_ID, WORKER_ID, ALERTS_ID, "old-city-gauge" if device != "old-city-gauge" else "x"):
            assert try_connect(mosq.port, device, devices[device], other, clean_start=True).value == NOT_AUTHORIZED
    assert not try_connect(mosq.port, "old-gateway", "pw-gw", "old-gateway", clean_start=True).is_failure
    ingest_password = hub.mqtt_password.get_secret_value()
    for username, client_id in (("mimamori-ingest", INGEST_ID), (WORKER_ID, WORKER_ID), (INGEST_ID, INGEST_ID)):
        assert not try_connect(mosq.port, username, ingest_password, client_id, clean_start=False).is_failure
    alerts = connect(mosq.port, "mimamori-alerts", hub.alerts_mqtt_password.get_secret_value(), ALERTS_ID)
    assert alerts.accepted
    alerts.close()
    # The device with a hub-form id is disabled, not bound to an id the hub may use.
    assert try_connect(
        mosq.port, "mimamori-sensor-9", devices["mimamori-sensor-9"], "mimamori-sensor-9", clean_start=True
    ).is_failure

    again = _migrate(hub, "--ingest-workers", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed 0," in again.stdout, again.stdout


def test_migrate_reports_a_missing_password_and_fails(old_install):
    from pydantic import SecretStr

    _mosq, hub, _devices = old_install
    done = _migrate(hub.model_copy(update={"mqtt_password": SecretStr("")}), "--ingest-workers", "2")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"cannot create {WORKER_ID}: MIMAMORI_MQTT_PASSWORD is not set" in done.stdout


# -- the plan, pure ------------------------------------------------------------------------------------


def _client(name: str, clientid: str | None = None, *roles: str) -> dict:
    return {"username": name, **({"clientid": clientid} if clientid else {}), "roles": [{"rolename": r} for r in roles]}


def test_the_plan_binds_creates_disables_and_keeps():
    logins = [HubLogin("mimamori-ingest", INGEST_ID, "ingest"), HubLogin(WORKER_ID, WORKER_ID, "ingest")]
    clients = [
        _client("mimamori-admin", None, "mimamori-admin"),
        _client("mimamori-ingest", None, "mimamori-ingest"),
        _client("d1", "d1", "device:d1"),
        _client("d2", None, "device:d2"),
        _client("d3", "elsewhere", "device:d3"),
        _client(WORKER_ID, None, "device:" + WORKER_ID),  # a device that took a hub login's name
    ]
    steps = {(s.action, s.username, s.client_id) for s in plan_bindings(clients, logins, "mimamori-admin")}
    assert steps == {
        (KEEP, "mimamori-admin", None),
        (BIND, "mimamori-ingest", INGEST_ID),
        (KEEP, "d1", "d1"),
        (BIND, "d2", "d2"),
        (BIND, "d3", "d3"),
        (DISABLE, WORKER_ID, None),
    }
    assert CREATE not in {a for a, _u, _c in steps}


def test_each_hub_client_id_has_an_account_named_after_it_and_the_base_account_takes_the_first():
    ids = ingest_client_ids("mimamori-ingest-1", workers=3, extra=["mimamori-ingest-2"])
    assert ids == ["mimamori-ingest-1", "mimamori-ingest-1-2", "mimamori-ingest-1-3", "mimamori-ingest-2"]
    logins = [(lg.username, lg.client_id) for lg in hub_logins("mimamori-ingest", ids[:2], "ingest")]
    assert logins == [
        ("mimamori-ingest", "mimamori-ingest-1"),
        ("mimamori-ingest-1", "mimamori-ingest-1"),
        ("mimamori-ingest-1-2", "mimamori-ingest-1-2"),
    ]
