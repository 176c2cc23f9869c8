"""Mosquitto dynamic-security data, pure: password hashes, the initial configuration, roles, commands.

The broker's plugin keeps clients, roles and ACLs in a JSON file it owns; we write that file once (the admin
account for the hub, the ingestor's account) and from then on change it only through the plugin's control topic
(``$CONTROL/dynamic-security/v1``), so every change takes effect at once without restarting the broker.
Nothing here does I/O; randomness (salts) is passed in.

Every account but the hub's admin is bound to one MQTT client id (the plugin's ``clientid``): the broker refuses
its CONNECT under any other id, so no account can connect as another's client id and, by MQTT's session
takeover, disconnect it or (with clean start) discard its persistent session and queued messages.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = "$CONTROL/dynamic-security/v1/response"

ADMIN_ROLE = "mimamori-admin"
INGEST_ROLE = "mimamori-ingest"
ALERTS_ROLE = "mimamori-alerts"
DEVICE_ROLE_PREFIX = "device:"

# The plugin's own default: Mosquitto 2.0 hashes every password it is sent (createClient, setClientPassword)
# with PBKDF2-SHA512 and 101 iterations, and its commands take no iteration count. Every password we issue is
# 192 bits (devices) or 256 bits (the hub) of randomness, out of reach of any guessing however cheap a guess
# is; docs/devices.md has the measurements and what protects the file.
PBKDF2_ITERATIONS = 101

# Client ids (and device ids, which are device accounts' client ids) starting with this are the hub's own.
HUB_CLIENT_ID_PREFIX = "mimamori-"

# Usernames are device ids (see migration 0001: devices.id) or our own account names.
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Acl:
    acltype: str  # publishClientSend | publishClientReceive | subscribeLiteral | subscribePattern | ...
    topic: str
    allow: bool = True
    priority: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"acltype": self.acltype, "topic": self.topic, "allow": self.allow, "priority": self.priority}


@dataclass(frozen=True, slots=True)
class Account:
    """A broker client to write into the initial configuration, with its roles and their ACLs."""

    username: str
    password: str
    roles: dict[str, tuple[Acl, ...]]
    text_name: str = ""
    client_id: str | None = None  # the one client id it may connect with; None: any (the hub's admin only)
    iterations: int = PBKDF2_ITERATIONS


def check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise ValueError(f"not a valid broker username: {username!r}")
    return username


def hash_password(password: str, salt: bytes, iterations: int = PBKDF2_ITERATIONS) -> dict[str, Any]:
    """The plugin's stored form of a password: base64 PBKDF2-HMAC-SHA512 of it with the (raw) salt."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": iterations,
    }


def admin_acls() -> tuple[Acl, ...]:
    """What the hub's admin account may do: drive the plugin, nothing else (it cannot read or write readings)."""
    return (
        Acl("publishClientSend", "$CONTROL/dynamic-security/#"),
        Acl("publishClientReceive", "$CONTROL/dynamic-security/#"),
        Acl("subscribePattern", "$CONTROL/dynamic-security/#"),
    )


def ingest_acls(prefix: str) -> tuple[Acl, ...]:
    """The ingestor's account: subscribe to every device topic, directly or on a shared subscription."""
    return (
        Acl("subscribePattern", f"{prefix}/#"),
        Acl("subscribePattern", f"$share/+/{prefix}/#"),
        Acl("publishClientReceive", f"{prefix}/#"),
    )


def alerts_acls(prefix: str) -> tuple[Acl, ...]:
    """The alert publisher: exactly what alerts/mqtt_publish.py publishes, ``{prefix}/alerts/{tenant}/{alert id}``
    (state, retained) and ``…/events``. The two shapes of a device topic under it are denied first (priority):
    ``{prefix}/alerts/x/telemetry`` would otherwise pass ``+/+`` and read as tenant ``alerts``'s telemetry."""
    return (
        Acl("publishClientSend", f"{prefix}/alerts/+/telemetry", allow=False, priority=1),
        Acl("publishClientSend", f"{prefix}/alerts/+/status", allow=False, priority=1),
        Acl("publishClientSend", f"{prefix}/alerts/+/+"),
        Acl("publishClientSend", f"{prefix}/alerts/+/+/events"),
        # SensorThings' MQTT extension (alerts/sta_mqtt.py): a Datastream's new Observations, and a Thing's
        Acl("publishClientSend", f"{STA_VERSION}/+/Observations"),
        Acl("publishClientSend", f"{STA_VERSION}/+/+/Observations"),
    )


# -- SensorThings MQTT extension ---------------------------------------------------------------------
# STA 1.1 (OGC 18-088, 14.2) fixes the topics: ``v1.1/Datastreams(<id>)/Observations`` names a Datastream's new
# Observations, with no room for a tenant level. Tenants are kept apart by ACL instead: each tenant's reader role
# may subscribe to exactly its own Datastreams' and Things' topics (literal ones; a wildcard filter such as
# ``v1.1/#`` or ``v1.1/+/Observations`` matches no literal entry and is refused in the SUBACK).

STA_VERSION = "v1.1"
STA_READER_ROLE_PREFIX = "sta-reader:"


def sta_datastream_topic(series_id: int) -> str:
    return f"{STA_VERSION}/Datastreams({int(series_id)})/Observations"


def sta_thing_topic(device_id: str, series_id: int) -> str:
    return f"{STA_VERSION}/Things({_quoted(device_id)})/Datastreams({int(series_id)})/Observations"


def sta_thing_filter(device_id: str) -> str:
    """Every Observation of one Thing: ``v1.1/Things('<id>')/+/Observations``."""
    return f"{STA_VERSION}/Things({_quoted(device_id)})/+/Observations"


def _quoted(device_id: str) -> str:
    if any(c in device_id for c in "+#/'") or not device_id:
        raise ValueError("device ids in STA topics may not contain MQTT wildcards, slashes or quotes")
    return f"'{device_id}'"


def sta_reader_role(tenant_id: str) -> str:
    return STA_READER_ROLE_PREFIX + tenant_id


def sta_reader_acls(streams: list[tuple[str, int]]) -> tuple[Acl, ...]:
    """What a tenant's STA reader may subscribe to, given the tenant's (device id, Datastream id) pairs: each
    Datastream's topic, each Thing's topic per Datastream, and each Thing's ``+`` filter; nothing else."""
    acls: dict[tuple[str, str], Acl] = {}
    for device_id, series_id in sorted(streams):
        for acl in (
            Acl("subscribeLiteral", sta_datastream_topic(series_id)),
            Acl("subscribeLiteral", sta_thing_topic(device_id, series_id)),
            Acl("subscribeLiteral", sta_thing_filter(device_id)),
        ):
            acls[(acl.acltype, acl.topic)] = acl
    return tuple(acls.values())


def role_acl_changes(rolename: str, current: list[dict[str, Any]], wanted: tuple[Acl, ...]) -> list[dict[str, Any]]:
    """The commands that turn a role's ``current`` ACLs (as getRole answers them) into ``wanted``."""
    have = {(a["acltype"], a["topic"]): a for a in current}
    want = {(a.acltype, a.topic): a for a in wanted}
    commands: list[dict[str, Any]] = []
    for key, acl in want.items():
        old = have.get(key)
        if old is not None and old.get("allow") == acl.allow and old.get("priority", 0) == acl.priority:
            continue
        if old is not None:
            commands.append({"command": "removeRoleACL", "rolename": rolename, "acltype": key[0], "topic": key[1]})
        commands.append({"command": "addRoleACL", "rolename": rolename, **acl.as_json()})
    for key in have.keys() - want.keys():
        commands.append({"command": "removeRoleACL", "rolename": rolename, "acltype": key[0], "topic": key[1]})
    return commands


def get_role(name: str) -> dict[str, Any]:
    return {"command": "getRole", "rolename": name}


def device_topics(prefix: str, tenant_id: str, device_id: str) -> tuple[str, str]:
    """The two topics a device publishes to (the contract of ingest.contract: telemetry and status)."""
    base = f"{prefix}/{tenant_id}/{device_id}"
    return f"{base}/telemetry", f"{base}/status"


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def device_acls(prefix: str, tenant_id: str, device_id: str) -> tuple[Acl, ...]:
    """A device may publish to its own two topics and nowhere else (everything else is denied by default)."""
    if "+" in tenant_id + device_id or "#" in tenant_id + device_id or "/" in tenant_id + device_id:
        raise ValueError("tenant and device ids may not contain MQTT wildcards or slashes")
    return tuple(Acl("publishClientSend", topic) for topic in device_topics(prefix, tenant_id, device_id))


def publisher_acls(prefix: str, tenant_id: str | None) -> tuple[Acl, ...]:
    """A gateway (or a load generator) publishing for many devices: one tenant's topics, or every tenant's."""
    return (Acl("publishClientSend", f"{prefix}/{tenant_id}/#" if tenant_id else f"{prefix}/#"),)


# Nobody may publish or subscribe unless a role allows it; receiving what one may subscribe to is allowed.
DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": True,
    "subscribe": False,
    "unsubscribe": True,
}


def initial_config(accounts: list[Account], salts: list[bytes]) -> dict[str, Any]:
    """The plugin's configuration file holding ``accounts`` (one salt each, in order) and their roles."""
    if len(salts) != len(accounts):
        raise ValueError("one salt per account")
    roles: dict[str, tuple[Acl, ...]] = {}
    clients = []
    for account, salt in zip(accounts, salts, strict=True):
        check_username(account.username)
        roles.update(account.roles)
        clients.append(
            {
                "username": account.username,
                **({"clientid": account.client_id} if account.client_id else {}),
                "textName": account.text_name,
                **hash_password(account.password, salt, account.iterations),
                "roles": [{"rolename": name} for name in account.roles],
            }
        )
    return {
        "clients": clients,
        "groups": [],
        "roles": [{"rolename": name, "acls": [a.as_json() for a in acls]} for name, acls in roles.items()],
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
    }


# -- control commands ------------------------------------------------------------------------------


def create_role(name: str, acls: tuple[Acl, ...]) -> dict[str, Any]:
    return {"command": "createRole", "rolename": name, "acls": [a.as_json() for a in acls]}


def delete_role(name: str) -> dict[str, Any]:
    return {"command": "deleteRole", "rolename": name}


def create_client(
    username: str, password: str, roles: list[str], text_name: str = "", *, client_id: str | None
) -> dict[str, Any]:
    """``client_id`` is required (None only for an account deliberately left unbound): see the module's note."""
    return {
        "command": "createClient",
        "username": check_username(username),
        "password": password,
        **({"clientid": check_username(client_id)} if client_id else {}),
        "textname": text_name,
        "roles": [{"rolename": r} for r in roles],
    }


def set_client_id(username: str, client_id: str) -> dict[str, Any]:
    """Bind an existing account to ``client_id`` (its password and roles are left as they are)."""
    return {"command": "modifyClient", "username": username, "clientid": check_username(client_id)}


def list_clients() -> dict[str, Any]:
    """Every account with its client id and roles (``verbose``)."""
    return {"command": "listClients", "verbose": True}


def delete_client(username: str) -> dict[str, Any]:
    return {"command": "deleteClient", "username": username}


def set_client_password(username: str, password: str) -> dict[str, Any]:
    return {"command": "setClientPassword", "username": username, "password": password}


def disable_client(username: str) -> dict[str, Any]:
    return {"command": "disableClient", "username": username}


def enable_client(username: str) -> dict[str, Any]:
    return {"command": "enableClient", "username": username}


def get_client(username: str) -> dict[str, Any]:
    return {"command": "getClient", "username": username}


def redact(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Commands as they may appear in logs and errors: passwords replaced."""
    return [{k: ("***" if k == "password" else v) for k, v in c.items()} for c in commands]
