"""NATS accounts for the clustered broker path, pure: subjects, per-user permissions, the accounts file.

The NATS path (docs/scaling.md, "NATS JetStream path") keeps the broker's rules of the Mosquitto path: each device
may publish to its own two topics and nowhere else and may subscribe to nothing; the ingestor may read through
JetStream and publish nothing a device could. NATS's MQTT support maps a topic onto a subject level by level:
``/`` becomes ``.`` and a ``.`` inside a level becomes ``//``, so ``mimamori/v1/acme/soil.1/telemetry`` is the
subject ``mimamori.v1.acme.soil//1.telemetry``.

Users live in one accounts file (``include``d by every node's configuration), rewritten whole by the hub and
reloaded by each node; passwords are stored as bcrypt hashes (salts passed in: nothing here does I/O).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import bcrypt

from devices.dynsec import check_username

ACCOUNT = "MIMAMORI"  # the one account of devices and the hub, with JetStream
SYSTEM_ACCOUNT = "SYS"
STREAM = "MIMAMORI_DEVICES"  # telemetry and status of every device, replicated
BCRYPT_COST = 11  # NATS's own default for `nats server passwd`


def topic_to_subject(topic: str) -> str:
    """The NATS subject NATS's MQTT support publishes an MQTT topic on (wildcards ``+`` and ``#`` included)."""
    return ".".join(
        "*" if level == "+" else ">" if level == "#" else level.replace(".", "//") for level in topic.split("/")
    )


def subject_to_topic(subject: str) -> str:
    """The MQTT topic a subject carries (the inverse of ``topic_to_subject`` for literal subjects)."""
    # ``//`` is a dot inside a level: split on single dots only.
    return "/".join(level.replace("\0", ".") for level in subject.replace("//", "\0").split("."))


def stream_subjects(prefix: str) -> list[str]:
    """What the device stream holds: every tenant's devices' telemetry and status, nothing else."""
    return [topic_to_subject(f"{prefix}/+/+/telemetry"), topic_to_subject(f"{prefix}/+/+/status")]


@dataclass(frozen=True, slots=True)
class Permissions:
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    mqtt_only: bool = False  # devices: no NATS protocol connection, MQTT only
    responses: bool = False  # may answer the requests it receives (the auth callout service)

    def as_conf(self) -> dict[str, object]:
        # Deny everything not allowed: NATS allows all when a direction has no rules at all.
        perms = {
            "publish": {"allow": list(self.publish)} if self.publish else {"deny": [">"]},
            "subscribe": {"allow": list(self.subscribe)} if self.subscribe else {"deny": [">"]},
        }
        conf: dict[str, object] = {"permissions": perms}
        if self.mqtt_only:
            conf["allowed_connection_types"] = ["MQTT"]
        if self.responses:
            perms["allow_responses"] = True  # type: ignore[assignment]
        return conf


@dataclass(frozen=True, slots=True)
class NatsUser:
    username: str
    password_hash: str  # bcrypt, as NATS reads it
    permissions: Permissions = field(default_factory=Permissions)


def new_salt() -> bytes:
    return bcrypt.gensalt(BCRYPT_COST, prefix=b"2a")  # NATS knows bcrypt hashes by their "$2a$"


def hash_password(password: str, salt: bytes) -> str:
    """The bcrypt form NATS checks a password against; ``salt`` from ``new_salt()``."""
    return bcrypt.hashpw(password.encode(), salt).decode()


def device_permissions(prefix: str, tenant_id: str, device_id: str) -> Permissions:
    """Its own telemetry and status topics, as subjects; nothing to subscribe to; MQTT connections only."""
    for part in (tenant_id, device_id):
        if any(c in part for c in "+#/*> "):
            raise ValueError("tenant and device ids may not contain wildcards, slashes or spaces")
    base = f"{prefix}/{tenant_id}/{device_id}"
    return Permissions(
        publish=(topic_to_subject(f"{base}/telemetry"), topic_to_subject(f"{base}/status")), mqtt_only=True
    )


def publisher_permissions(prefix: str, tenant_id: str | None) -> Permissions:
    """A gateway or load generator: one tenant's device topics, or every tenant's."""
    return Permissions(publish=(topic_to_subject(f"{prefix}/{tenant_id}/#" if tenant_id else f"{prefix}/#"),))


def ingest_permissions(stream: str = STREAM) -> Permissions:
    """The ingestor: the JetStream API (to ensure its stream and consumer and pull), acknowledgements of the
    stream's messages, and its own inboxes for the answers. No device subject: it cannot publish a reading."""
    return Permissions(publish=("$JS.API.>", f"$JS.ACK.{stream}.>"), subscribe=("_INBOX.>",))


def callout_permissions() -> Permissions:
    """The auth callout service: it reads the nodes' authorisation requests and answers them, nothing else."""
    return Permissions(subscribe=("$SYS.REQ.USER.AUTH",), responses=True)


def render_accounts(users: list[NatsUser], system_password_hash: str) -> str:
    """The accounts file every node includes: devices and the hub in one JetStream account, and the system
    account whose user the hub reloads the nodes with. JSON is a subset of NATS's configuration syntax."""
    for user in users:
        check_username(user.username)
    body = {
        ACCOUNT: {
            "jetstream": "enabled",
            "users": [
                {"user": u.username, "password": u.password_hash, **u.permissions.as_conf()}
                for u in sorted(users, key=lambda u: u.username)
            ],
        },
        SYSTEM_ACCOUNT: {"users": [{"user": "mimamori-system", "password": system_password_hash}]},
    }
    return f"accounts: {json.dumps(body, indent=2)}\nsystem_account: {SYSTEM_ACCOUNT}\n"
