"""Device accounts on the NATS cluster (MIMAMORI_BROKER=nats): what ``BrokerAdmin`` is for Mosquitto.

Users and their subject permissions are kept in an accounts file that every node ``include``s
(``MIMAMORI_NATS_ACCOUNTS_FILE``; its JSON source of truth beside it, ``….json``, mode 0600, bcrypt hashes only).
Each change rewrites both files atomically under a lock (several API workers provision at once) and then asks
every node of the cluster to reload, over the system account (``$SYS.REQ.SERVER.PING`` finds the nodes,
``$SYS.REQ.SERVER.<id>.RELOAD`` reloads one): a node drops the connections of a user it no longer has or whose
password changed, as Mosquitto's plugin does. Nodes on other machines must read the same file (a shared volume, or
a copy step before the reload: docs/scaling.md).

The file is the one store of users: nats-server reads it itself, so the hub's own users need no service of ours
to connect. What it cannot express is the client-id binding; the auth callout (devices/nats_callout.py) reads the
same store and adds it for devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import nats
import nats.errors

from devices import nats_auth
from devices.broker import BrokerAdmin, DeviceCredentials, new_device_password
from devices.dynsec import HUB_CLIENT_ID_PREFIX, device_topics
from mimamori.errors import ConfigError, UnreachableError, ValidationError
from mimamori.settings import Settings

log = logging.getLogger(__name__)

SYSTEM_USER = "mimamori-system"
CALLOUT_USER = "mimamori-callout"


@dataclass(frozen=True, slots=True)
class StoredUser:
    username: str
    password_hash: str
    permissions: nats_auth.Permissions
    enabled: bool = True

    def as_json(self) -> dict[str, Any]:
        p = self.permissions
        return {
            "username": self.username,
            "password_hash": self.password_hash,
            "publish": list(p.publish),
            "subscribe": list(p.subscribe),
            "mqtt_only": p.mqtt_only,
            "responses": p.responses,
            "enabled": self.enabled,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoredUser:
        perms = nats_auth.Permissions(
            tuple(d["publish"]), tuple(d["subscribe"]), bool(d["mqtt_only"]), bool(d.get("responses", False))
        )
        return cls(d["username"], d["password_hash"], perms, bool(d.get("enabled", True)))


def _source(accounts_file: Path) -> Path:
    return accounts_file.with_suffix(".json")


def write_accounts(accounts_file: Path, users: list[StoredUser], system_password_hash: str) -> None:
    """Both files, each replaced atomically (a node reloading meanwhile reads the old one or the new one)."""
    source = {"system_password_hash": system_password_hash, "users": [u.as_json() for u in users]}
    rendered = nats_auth.render_accounts(
        [nats_auth.NatsUser(u.username, u.password_hash, u.permissions) for u in users if u.enabled],
        system_password_hash,
    )
    for path, text in ((_source(accounts_file), json.dumps(source, indent=1)), (accounts_file, rendered)):
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        tmp.replace(path)


def read_accounts(accounts_file: Path) -> tuple[list[StoredUser], str]:
    try:
        source = json.loads(_source(accounts_file).read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no NATS accounts at {_source(accounts_file)}: initialise them first (devkit/nats.py shows how)"
        ) from None
    return [StoredUser.from_json(u) for u in source["users"]], source["system_password_hash"]


def init_accounts(
    accounts_file: Path,
    prefix: str,
    ingest_username: str,
    ingest_password: str,
    system_password: str,
    callout_password: str | None = None,
) -> None:
    """The accounts a new cluster starts with: the ingestor's, the system user the hub reloads nodes as, and (with
    the auth callout, devices/nats_callout.py) the callout service's."""
    users = [
        StoredUser(
            ingest_username,
            nats_auth.hash_password(ingest_password, nats_auth.new_salt()),
            nats_auth.ingest_permissions(),
        )
    ]
    if callout_password is not None:
        hashed = nats_auth.hash_password(callout_password, nats_auth.new_salt())
        users.append(StoredUser(CALLOUT_USER, hashed, nats_auth.callout_permissions()))
    write_accounts(accounts_file, users, nats_auth.hash_password(system_password, nats_auth.new_salt()))


class NatsAccounts:
    """Device accounts on the NATS cluster; use as a context manager, like ``BrokerAdmin``."""

    def __init__(self, settings: Settings, timeout_s: float | None = None, *, reload: bool = True) -> None:
        """``reload=False``: the files only, for a cluster not yet started (its nodes read them at start)."""
        if not settings.nats_accounts_file:
            raise ConfigError("MIMAMORI_NATS_ACCOUNTS_FILE is not set: the hub cannot manage NATS device accounts")
        if not settings.nats_system_password:
            raise ConfigError("MIMAMORI_NATS_SYSTEM_PASSWORD is not set: the hub cannot reload the NATS nodes")
        self._settings = settings
        self._file = Path(settings.nats_accounts_file)
        self._timeout = timeout_s if timeout_s is not None else settings.mqtt_admin_timeout_s
        self._lock_fd: int | None = None
        self._reload = reload

    def __enter__(self) -> NatsAccounts:
        lock = self._file.with_name(self._file.name + ".lock")
        self._lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- device accounts -------------------------------------------------------------------------

    def provision_device(self, tenant_id: str, device_id: str) -> DeviceCredentials:
        self._refuse_hub_id(device_id)
        users, system = read_accounts(self._file)
        if any(u.username == device_id for u in users):
            raise ValidationError(f"device {device_id} already has a broker account (rotate its password instead)")
        password = new_device_password()
        prefix = self._settings.mqtt_topic_prefix
        user = StoredUser(
            device_id,
            nats_auth.hash_password(password, nats_auth.new_salt()),
            nats_auth.device_permissions(prefix, tenant_id, device_id),
        )
        self._apply([*users, user], system)
        log.info("NATS account created for device %s of %s", device_id, tenant_id)
        return DeviceCredentials(device_id, device_id, password, *device_topics(prefix, tenant_id, device_id))

    def rotate_password(self, tenant_id: str, device_id: str) -> DeviceCredentials:
        self._refuse_hub_id(device_id)
        users, system = read_accounts(self._file)
        if not any(u.username == device_id for u in users):
            raise ValidationError(f"device {device_id} has no broker account; provision it first")
        password = new_device_password()
        prefix = self._settings.mqtt_topic_prefix
        new_hash = nats_auth.hash_password(password, nats_auth.new_salt())
        perms = nats_auth.device_permissions(prefix, tenant_id, device_id)
        self._apply(
            [StoredUser(u.username, new_hash, perms, u.enabled) if u.username == device_id else u for u in users],
            system,
        )
        log.info("NATS password rotated for device %s", device_id)
        return DeviceCredentials(device_id, device_id, password, *device_topics(prefix, tenant_id, device_id))

    def revoke_device(self, device_id: str) -> bool:
        users, system = read_accounts(self._file)
        kept = [u for u in users if u.username != device_id]
        if len(kept) == len(users):
            return False
        self._apply(kept, system)
        log.info("NATS account of device %s revoked", device_id)
        return True

    def set_enabled(self, device_id: str, enabled: bool) -> None:
        users, system = read_accounts(self._file)
        self._apply(
            [
                StoredUser(u.username, u.password_hash, u.permissions, enabled) if u.username == device_id else u
                for u in users
            ],
            system,
        )

    def create_publisher(self, username: str, tenant_id: str | None, password: str | None = None) -> str:
        """A gateway or load generator publishing for one tenant's devices (or every tenant's); its password."""
        self._refuse_hub_id(username)
        password = password or new_device_password()
        users, system = read_accounts(self._file)
        perms = nats_auth.publisher_permissions(self._settings.mqtt_topic_prefix, tenant_id)
        user = StoredUser(username, nats_auth.hash_password(password, nats_auth.new_salt()), perms)
        self._apply([*(u for u in users if u.username != username), user], system)
        return password

    def account_exists(self, username: str) -> bool:
        return any(u.username == username for u in read_accounts(self._file)[0])

    def _refuse_hub_id(self, client_id: str) -> None:
        hub = {self._settings.mqtt_client_id, self._settings.alerts_mqtt_client_id, SYSTEM_USER}
        if client_id in hub or client_id.startswith(HUB_CLIENT_ID_PREFIX):
            raise ValidationError(
                f"{client_id!r} is a name of the hub's own processes ({HUB_CLIENT_ID_PREFIX}…); choose another id"
            )

    # -- files and reload ------------------------------------------------------------------------

    def _apply(self, users: list[StoredUser], system_password_hash: str) -> None:
        write_accounts(self._file, users, system_password_hash)
        if self._reload:
            asyncio.run(self._reload_all())

    async def _reload_all(self) -> None:
        """Every node rereads the accounts file; fails (the caller's transaction rolls back) unless all did."""
        settings = self._settings
        password = settings.nats_system_password.get_secret_value() if settings.nats_system_password else None
        try:
            nc = await nats.connect(
                servers=settings.nats_servers,
                user=SYSTEM_USER,
                password=password,
                connect_timeout=self._timeout,
                allow_reconnect=False,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise UnreachableError(f"cannot reach NATS at {settings.nats_urls} to reload its accounts: {exc}") from None
        try:
            servers = await _ping_servers(nc, min(self._timeout, 1.0))
            if not servers:
                raise UnreachableError("no NATS node answered the system ping")
            for server_id, name in servers.items():
                answer = json.loads(
                    (await nc.request(f"$SYS.REQ.SERVER.{server_id}.RELOAD", b"", timeout=self._timeout)).data
                )
                if answer.get("error"):
                    raise UnreachableError(f"NATS node {name} did not reload its accounts: {answer['error']}")
            log.info("NATS accounts reloaded on %d nodes (%s)", len(servers), ", ".join(sorted(servers.values())))
        except (nats.errors.Error, TimeoutError) as exc:
            raise UnreachableError(f"NATS did not reload its accounts: {exc}") from None
        finally:
            with contextlib.suppress(nats.errors.Error):
                await nc.close()


async def _ping_servers(nc: Any, wait_s: float) -> dict[str, str]:
    """Server id → name of every node that answers the system ping within ``wait_s``."""
    found: dict[str, str] = {}

    async def on_answer(msg: Any) -> None:
        server = json.loads(msg.data).get("server", {})
        if server.get("id"):
            found[server["id"]] = server.get("name", server["id"])

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_answer)
    await nc.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
    await asyncio.sleep(wait_s)
    await sub.unsubscribe()
    return found


def broker_admin(settings: Settings) -> BrokerAdmin | NatsAccounts:
    """The device-account manager of the configured broker (MIMAMORI_BROKER): ``BrokerAdmin`` or ``NatsAccounts``."""
    if settings.broker == "nats":
        return NatsAccounts(settings)
    return BrokerAdmin(settings)
