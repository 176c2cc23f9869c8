"""Client-id binding on the NATS path: with the auth callout (devices/nats_callout.py), a device is admitted only
with its password and only under its own device id as MQTT client id, on every node, as Mosquitto's dynamic
security binds it."""

from __future__ import annotations

import pytest

from devices import nats_auth
from devices.nats_accounts import NatsAccounts, StoredUser
from devices.nats_callout import decide, user_claims
from tests.devices.test_nats_acl import REFUSED, arrived, connect, make_hub, publish
from tests.nats_support import nats_callout_cluster
from tests.services import wait_until

__all__ = ["nats_callout_cluster"]

PERMS = nats_auth.device_permissions("mimamori/v1", "acme", "dev-1")
USERS = {"dev-1": StoredUser("dev-1", "$2a$04$x", PERMS), "off": StoredUser("off", "$2a$04$x", PERMS, enabled=False)}


def request(user: str, mqtt_id: str | None, kind: str = "mqtt") -> dict:
    return {"client_info": {"type": kind, "mqtt_id": mqtt_id}, "connect_opts": {"user": user, "pass": "p"}}


@pytest.mark.parametrize(
    ("req", "password_ok", "admitted"),
    [
        (request("dev-1", "dev-1"), True, True),
        (request("dev-1", "dev-2"), True, False),  # another device's client id
        (request("dev-1", None, kind="client"), True, False),  # a device over the NATS protocol
        (request("dev-1", "dev-1"), False, False),
        (request("nobody", "nobody"), True, False),
        (request("off", "off"), True, False),  # disabled
    ],
)
def test_a_device_is_admitted_with_its_password_under_its_own_client_id_only(req, password_ok, admitted):
    user, reason = decide(req, USERS, password_ok)
    assert (user is not None) == admitted, reason


def test_the_user_jwt_carries_the_accounts_files_permissions():
    claims = user_claims(USERS["dev-1"], "UABC")
    assert claims["aud"] == nats_auth.ACCOUNT and claims["sub"] == "UABC"
    assert claims["nats"]["pub"] == {"allow": list(PERMS.publish)}
    assert claims["nats"]["sub"] == {"deny": [">"]}
    assert claims["nats"]["allowed_connection_types"] == ["MQTT"]


@pytest.fixture(scope="module")
def hub(nats_callout_cluster):
    return make_hub(nats_callout_cluster)


@pytest.fixture
def device(hub, request):
    device_id = f"call-{abs(hash(request.node.nodeid)) % 10**6}"
    with NatsAccounts(hub) as accounts:
        creds = accounts.provision_device("acme", device_id)
    yield creds
    with NatsAccounts(hub) as accounts:
        accounts.revoke_device(device_id)


def test_a_device_connects_under_its_own_client_id_on_every_node(nats_callout_cluster, hub, device):
    for node in nats_callout_cluster.nodes:
        s = connect(node.mqtt_port, device.username, device.password, device.device_id)
        try:
            assert s.accepted, s.connack
            publish(s, device.telemetry_topic)
        finally:
            s.close()
    wait_until(lambda: arrived(nats_callout_cluster, device.telemetry_topic) == 3, what="one message per node")


def test_another_account_cannot_connect_under_a_devices_client_id(nats_callout_cluster, hub, device):
    with NatsAccounts(hub) as accounts:
        other = accounts.provision_device("acme", f"{device.device_id}-other")
    try:
        live = connect(nats_callout_cluster.nodes[0].mqtt_port, device.username, device.password, device.device_id)
        thief = connect(nats_callout_cluster.nodes[1].mqtt_port, other.username, other.password, device.device_id)
        assert live.accepted
        assert thief.connack[0] in REFUSED
        assert not live.disconnected.wait(1), "the refused connection did not take the device's session over"
        thief.close()
        live.close()
    finally:
        with NatsAccounts(hub) as accounts:
            accounts.revoke_device(other.device_id)


def test_a_wrong_password_and_a_revoked_device_are_refused(nats_callout_cluster, hub, device):
    port = nats_callout_cluster.nodes[2].mqtt_port
    bad = connect(port, device.username, device.password + "x", device.device_id)
    assert bad.connack[0] in REFUSED
    bad.close()
    with NatsAccounts(hub) as accounts:
        accounts.revoke_device(device.device_id)
    again = connect(port, device.username, device.password, device.device_id)
    assert again.connack[0] in REFUSED
    again.close()


def test_nats_init_writes_private_accounts_a_seed_and_the_nodes_authorization_block(tmp_path):
    import stat
    import subprocess
    import sys

    from devices.nats_callout import issuer_public_key
    from tests.services import outside_environment

    def cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub.cli", "broker", "nats-init", "--dir", str(tmp_path / "nats")],
            env=outside_environment() | {"COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = cli()
    assert first.returncode == 0, first.stderr
    folder = tmp_path / "nats"
    for name in ("accounts.conf", "accounts.json", "callout.seed", "hub-credentials.env"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    env = dict(line.split("=", 1) for line in (folder / "hub-credentials.env").read_text().splitlines())
    assert env["MIMAMORI_BROKER"] == "nats"
    for key in ("MIMAMORI_NATS_PASSWORD", "MIMAMORI_NATS_SYSTEM_PASSWORD", "MIMAMORI_NATS_CALLOUT_PASSWORD"):
        assert env[key] not in first.stdout + (folder / "accounts.conf").read_text()
    assert f"issuer: {issuer_public_key((folder / 'callout.seed').read_bytes())}" in first.stdout
    second = cli()
    assert second.returncode != 0 and "kept as they are" in second.stdout + second.stderr


def test_rotating_and_revoking_drop_the_open_connection_of_a_callout_admitted_device(nats_callout_cluster, hub, device):
    port = nats_callout_cluster.nodes[0].mqtt_port
    live = connect(port, device.username, device.password, device.device_id)
    try:
        assert live.accepted
        with NatsAccounts(hub) as accounts:
            rotated = accounts.rotate_password("acme", device.device_id)
        assert live.disconnected.wait(10), "the connection opened with the old password is dropped"
    finally:
        live.close()
    again = connect(port, rotated.username, rotated.password, device.device_id)
    try:
        assert again.accepted
        with NatsAccounts(hub) as accounts:
            assert accounts.revoke_device(device.device_id)
        assert again.disconnected.wait(10), "a revoked device's connection is dropped"
    finally:
        again.close()


def test_provisioning_another_device_leaves_open_connections_alone(nats_callout_cluster, hub, device):
    live = connect(nats_callout_cluster.nodes[0].mqtt_port, device.username, device.password, device.device_id)
    try:
        assert live.accepted
        with NatsAccounts(hub) as accounts:
            other = accounts.provision_device("acme", f"{device.device_id}-next")
            accounts.revoke_device(other.device_id)
        assert not live.disconnected.wait(3), "a reload for another device dropped this one"
    finally:
        live.close()
