"""Device accounts on the broker, changed at run time over the dynamic-security control topic (paho, MQTT 5).

Each call opens a short connection as the hub's admin account, sends its commands in one message with a
correlation id per command, and waits for the plugin's answers; the broker applies them at once (a disabled or
deleted client is disconnected on the spot). Passwords are generated here, returned to the caller once, and
never logged or stored by the hub.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices import dynsec
from mimamori.errors import ConfigError, MimamoriError, NotFound, UnreachableError, ValidationError
from mimamori.settings import Settings

log = logging.getLogger(__name__)


class BrokerCommandError(MimamoriError):
    """The dynamic-security plugin refused a command."""


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """What a device needs to connect. The password exists only in this object: show it once."""

    device_id: str
    username: str
    password: str
    telemetry_topic: str
    status_topic: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"DeviceCredentials(device_id={self.device_id!r}, username={self.username!r}, password='***')"


def new_device_password() -> str:
    return secrets.token_urlsafe(24)


class BrokerAdmin:
    """A connection to the broker as the hub's admin account; use as a context manager."""

    def __init__(self, settings: Settings, timeout_s: float | None = None) -> None:
        if not settings.mqtt_admin_password:
            raise ConfigError(
                "MIMAMORI_MQTT_ADMIN_PASSWORD is not set: the hub cannot manage device accounts on the broker "
                "(with `make up` running, commands in its checkout read them from var/laptop.env; on a server, set "
                "them from the hub-credentials.env that `mimamori broker init` wrote)"
            )
        self._settings = settings
        self._timeout = timeout_s if timeout_s is not None else settings.mqtt_admin_timeout_s
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, Any] | None] = {}
        self._answered = threading.Condition(self._lock)
        self._ready = threading.Event()
        self._refused: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"mimamori-admin-{uuid.uuid4().hex[:12]}", protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(settings.mqtt_admin_username, settings.mqtt_admin_password.get_secret_value())
        if settings.mqtt.tls:
            self._client.tls_set(ca_certs=settings.mqtt_ca_file)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # -- paho callbacks --------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._ready.set()
            return
        client.subscribe(dynsec.RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, reasons: list[Any], _p: object) -> None:
        if reasons and reasons[0].is_failure:
            self._refused = f"may not read the control responses ({reasons[0]})"
        self._ready.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable answer on %s", msg.topic)
            return
        with self._answered:
            for response in responses:
                cid = response.get("correlationData")
                if cid in self._pending:
                    self._pending[cid] = response
            self._answered.notify_all()

    # -- connection ------------------------------------------------------------------------------

    def __enter__(self) -> BrokerAdmin:
        addr = self._settings.mqtt
        try:
            self._client.connect(addr.host, addr.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise UnreachableError(f"cannot connect to MQTT broker at {addr}: {exc}") from None
        self._client.loop_start()
        if not self._ready.wait(self._timeout):
            self.close()
            raise UnreachableError(f"MQTT broker at {addr} did not answer the admin connection in {self._timeout:g}s")
        if self._refused:
            self.close()
            raise ConfigError(f"MQTT broker at {addr} refused the hub's admin account: {self._refused}")
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # -- commands --------------------------------------------------------------------------------

    def execute(self, commands: list[dict[str, Any]], *, tolerate: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Send ``commands`` in one message and return the plugin's answers in order.

        An answer carrying an error raises, unless the error text contains one of ``tolerate``.
        """
        ids = [uuid.uuid4().hex for _ in commands]
        with self._lock:
            for cid in ids:
                self._pending[cid] = None
        payload = json.dumps({"commands": [c | {"correlationData": cid} for c, cid in zip(commands, ids, strict=True)]})
        self._client.publish(dynsec.CONTROL_TOPIC, payload, qos=1)
        with self._answered:
            done = self._answered.wait_for(lambda: all(self._pending[c] is not None for c in ids), self._timeout)
            answers = [self._pending.pop(c) for c in ids]
        if not done:
            raise UnreachableError(
                f"the broker did not answer {[c['command'] for c in commands]} in {self._timeout:g}s "
                "(is the dynamic-security plugin loaded?)"
            )
        results: list[dict[str, Any]] = []
        for command, answer in zip(commands, answers, strict=True):
            assert answer is not None
            error = answer.get("error")
            if error and not any(t in error for t in tolerate):
                raise _command_error(command, error)
            results.append(answer)
        return results

    # -- device accounts -------------------------------------------------------------------------

    def provision_device(self, tenant_id: str, device_id: str) -> DeviceCredentials:
        """Create the device's account and role, bound to its device id as client id; refuses when the account
        exists (rotate it instead) or when the id is one the hub's own processes connect with."""
        prefix = self._settings.mqtt_topic_prefix
        password = new_device_password()
        role = dynsec.device_role(device_id)
        self._refuse_hub_id(device_id)
        if self.account_exists(device_id):
            raise ValidationError(f"device {device_id} already has a broker account (rotate its password instead)")
        # A role left behind by an interrupted earlier attempt is replaced, so provisioning can be retried. (Only
        # once the client is known not to exist: deleting a role in use is not something to ask of the plugin.)
        self.execute([dynsec.delete_role(role)], tolerate=("not found",))
        self.execute(
            [
                dynsec.create_role(role, dynsec.device_acls(prefix, tenant_id, device_id)),
                dynsec.create_client(
                    device_id, password, [role], f"device {device_id} of {tenant_id}", client_id=device_id
                ),
            ]
        )
        telemetry, status = dynsec.device_topics(prefix, tenant_id, device_id)
        log.info("broker account created for device %s of %s", device_id, tenant_id)
        return DeviceCredentials(device_id, device_id, password, telemetry, status)

    def rotate_password(self, tenant_id: str, device_id: str) -> DeviceCredentials:
        """A new password, valid at once; the old one is refused and a connection using it is dropped."""
        prefix = self._settings.mqtt_topic_prefix
        password = new_device_password()
        # Setting a password does not end a session already open with the old one; disabling does, so the
        # device must come back with the new password.
        self._refuse_hub_id(device_id)
        self.execute(
            [
                dynsec.set_client_password(device_id, password),
                # An account provisioned before client-id binding is bound now (docs/devices.md).
                dynsec.set_client_id(device_id, device_id),
                dynsec.disable_client(device_id),
                dynsec.enable_client(device_id),
            ]
        )
        telemetry, status = dynsec.device_topics(prefix, tenant_id, device_id)
        log.info("broker password rotated for device %s", device_id)
        return DeviceCredentials(device_id, device_id, password, telemetry, status)

    def revoke_device(self, device_id: str) -> bool:
        """Delete the device's account and role (its connection is dropped); False when it had none."""
        answers = self.execute(
            [dynsec.delete_client(device_id), dynsec.delete_role(dynsec.device_role(device_id))],
            tolerate=("not found",),
        )
        existed = "error" not in answers[0]
        if existed:
            log.info("broker account of device %s revoked", device_id)
        return existed

    def set_enabled(self, device_id: str, enabled: bool) -> None:
        self.execute([dynsec.enable_client(device_id) if enabled else dynsec.disable_client(device_id)])

    def create_publisher(
        self, username: str, tenant_id: str | None, password: str | None = None, client_id: str | None = None
    ) -> str:
        """An account publishing for every device of one tenant (or of all tenants when None): gateways and
        load generators. It may connect only as ``client_id`` (its username when not given). Returns its
        password (generated when not given)."""
        password = password or new_device_password()
        client_id = client_id or username
        self._refuse_hub_id(client_id)
        role = f"publisher:{tenant_id or '*'}"
        self.execute(
            [dynsec.create_role(role, dynsec.publisher_acls(self._settings.mqtt_topic_prefix, tenant_id))],
            tolerate=("already exists",),
        )
        text = f"publisher for {tenant_id or 'all'}"
        self.execute([dynsec.create_client(username, password, [role], text, client_id=client_id)])
        return password

    def sync_sta_reader_role(self, tenant_id: str, streams: list[tuple[str, int]]) -> int:
        """Bring the tenant's STA reader role in line with its (device, Datastream) pairs; how many ACL changes."""
        role = dynsec.sta_reader_role(tenant_id)
        wanted = dynsec.sta_reader_acls(streams)
        answer = self.execute([dynsec.get_role(role)], tolerate=("not found",))[0]
        if "error" in answer:
            self.execute([dynsec.create_role(role, wanted)])
            return len(wanted)
        current = answer.get("data", {}).get("role", {}).get("acls", [])
        commands = dynsec.role_acl_changes(role, current, wanted)
        if commands:
            self.execute(commands)
        return len(commands)

    def create_sta_reader(
        self, username: str, tenant_id: str, streams: list[tuple[str, int]], client_id: str | None = None
    ) -> str:
        """An account that may subscribe to the tenant's SensorThings MQTT topics and nothing else, bound to one
        client id (its username when not given). Returns its password, once."""
        password = new_device_password()
        client_id = client_id or username
        self._refuse_hub_id(client_id)
        self.sync_sta_reader_role(tenant_id, streams)
        role = dynsec.sta_reader_role(tenant_id)
        text = f"STA reader of {tenant_id}"
        self.execute([dynsec.create_client(username, password, [role], text, client_id=client_id)])
        log.info("STA reader account %s created for %s", username, tenant_id)
        return password

    def list_clients(self) -> list[dict[str, Any]]:
        """Every account on the broker: username, client id (when bound), roles."""
        answer = self.execute([dynsec.list_clients()])[0]
        clients: list[dict[str, Any]] = answer.get("data", {}).get("clients", [])
        return clients

    def _refuse_hub_id(self, client_id: str) -> None:
        # An account bound to the ingestor's (or the alert publisher's) client id could take its place.
        hub = {self._settings.mqtt_client_id, self._settings.alerts_mqtt_client_id}
        if client_id in hub or client_id.startswith(dynsec.HUB_CLIENT_ID_PREFIX):
            raise ValidationError(
                f"{client_id!r} is a client id of the hub's own processes ({dynsec.HUB_CLIENT_ID_PREFIX}…): "
                "a broker account bound to it could take their place; choose another id"
            )

    def account_exists(self, username: str) -> bool:
        answer = self.execute([dynsec.get_client(username)], tolerate=("not found",))[0]
        return "error" not in answer


def _command_error(command: dict[str, Any], error: str) -> MimamoriError:
    what = f"broker refused {command['command']}"
    subject = command.get("username") or command.get("rolename") or ""
    if "not found" in error:
        return NotFound(f"{what}: {subject} {error.lower()}")
    if "already exists" in error:
        return ValidationError(f"{what}: {subject} {error.lower()}")
    return BrokerCommandError(f"{what} for {subject}: {error}")
