"""Preparing a Mosquitto for the hub: its configuration rendered for a machine, and dynamic security initialised.

Used by ``mimamori broker init`` (the laptop hub in ./var/mosquitto) and by the tests' private broker, so both
run the one configuration in deploy/mosquitto/mosquitto.conf.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devices import dynsec
from devices.hub_accounts import ALERTS, INGEST, HubLogin, hub_logins
from mimamori.errors import ConfigError

PLUGIN_NAME = "mosquitto_dynamic_security.so"
# Where distributions put the plugin: Debian/Ubuntu (multiarch), Fedora, Alpine, source builds, Homebrew.
PLUGIN_SEARCH = (
    "/usr/lib/*-linux-gnu/" + PLUGIN_NAME,
    "/usr/lib64/" + PLUGIN_NAME,
    "/usr/lib/" + PLUGIN_NAME,
    "/usr/lib/mosquitto/" + PLUGIN_NAME,
    "/usr/local/lib/" + PLUGIN_NAME,
    "/usr/local/lib/mosquitto/" + PLUGIN_NAME,
    "/opt/homebrew/lib/" + PLUGIN_NAME,
    "/opt/homebrew/opt/mosquitto/lib/" + PLUGIN_NAME,
)
DYNSEC_FILE = "dynamic-security.json"
CREDENTIALS_FILE = "hub-credentials.env"
ADMIN_USERNAME = "mimamori-admin"
INGEST_USERNAME = "mimamori-ingest"
ALERTS_USERNAME = "mimamori-alerts"
# The settings' defaults (MIMAMORI_MQTT_CLIENT_ID, MIMAMORI_ALERTS_MQTT_CLIENT_ID).
INGEST_CLIENT_IDS = ("mimamori-ingest-1",)
ALERTS_CLIENT_IDS = ("mimamori-alerts-1",)


def find_dynsec_plugin(configured: str | None = None) -> Path:
    """The plugin library: ``configured`` when given, else the first of the usual places that has it."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ConfigError(f"MIMAMORI_MQTT_DYNSEC_PLUGIN: no file at {configured}")
        return path
    for pattern in PLUGIN_SEARCH:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    raise ConfigError(
        f"Mosquitto's dynamic-security plugin ({PLUGIN_NAME}) was not found; install Mosquitto 2 "
        "or set MIMAMORI_MQTT_DYNSEC_PLUGIN to its path"
    )


def render_mosquitto_conf(
    template: str, *, port: int, data_dir: Path, plugin: Path, bind: str = "127.0.0.1", extra: str = ""
) -> str:
    """The shipped configuration with this machine's port, folders and plugin path."""
    text = re.sub(r"^listener 1883 .*$", f"listener {port} {bind}", template, flags=re.M)
    text = re.sub(r"^persistence_location .*$", f"persistence_location {data_dir}/", text, flags=re.M)
    text = re.sub(r"^plugin .*$", f"plugin {plugin}", text, flags=re.M)
    text = re.sub(r"^plugin_opt_config_file .*$", f"plugin_opt_config_file {data_dir / DYNSEC_FILE}", text, flags=re.M)
    return text + ("\n" + extra if extra else "")


@dataclass(frozen=True)
class HubAccounts:
    """The broker accounts the hub itself uses (secrets: keep them out of logs)."""

    admin_username: str
    admin_password: str
    ingest_username: str
    ingest_password: str
    # The alert publisher's account; None in brokers initialised before it existed.
    alerts_username: str | None = None
    alerts_password: str | None = None

    def as_env(self) -> str:
        env = (
            f"MIMAMORI_MQTT_ADMIN_USERNAME={self.admin_username}\n"
            f"MIMAMORI_MQTT_ADMIN_PASSWORD={self.admin_password}\n"
            f"MIMAMORI_MQTT_USERNAME={self.ingest_username}\n"
            f"MIMAMORI_MQTT_PASSWORD={self.ingest_password}\n"
        )
        if self.alerts_username:
            env += (
                f"MIMAMORI_ALERTS_MQTT_USERNAME={self.alerts_username}\n"
                f"MIMAMORI_ALERTS_MQTT_PASSWORD={self.alerts_password}\n"
            )
        return env


def new_password() -> str:
    return secrets.token_urlsafe(32)


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start, never world-readable for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def init_dynsec(
    data_dir: Path,
    topic_prefix: str,
    extra_accounts: tuple[dynsec.Account, ...] = (),
    *,
    ingest_ids: Sequence[str] = INGEST_CLIENT_IDS,
    alerts_ids: Sequence[str] = ALERTS_CLIENT_IDS,
    bind: bool = True,
) -> tuple[HubAccounts, bool]:
    """Create the plugin's file with the hub's accounts unless it exists; returns the accounts (read back from the
    credentials file when already initialised) and whether they were created now.

    The admin account is unbound (devices/hub_accounts.py says why); the ingest and alert accounts are bound to
    the first of ``ingest_ids`` / ``alerts_ids``, and every id gets an account of its own named after it, with
    its kind's password. ``bind=False`` leaves the hub's accounts unbound: only for the test suite's shared
    broker, whose tests each connect under a client id of their own.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / DYNSEC_FILE
    creds_path = data_dir / CREDENTIALS_FILE
    if config_path.exists():
        if not creds_path.exists():
            raise ConfigError(f"{config_path} exists but {creds_path} does not; remove both to start afresh")
        return read_credentials(creds_path), False
    accounts = HubAccounts(
        ADMIN_USERNAME, new_password(), INGEST_USERNAME, new_password(), ALERTS_USERNAME, new_password()
    )
    roles = {INGEST: dynsec.INGEST_ROLE, ALERTS: dynsec.ALERTS_ROLE}
    acls = {INGEST: dynsec.ingest_acls(topic_prefix), ALERTS: dynsec.alerts_acls(topic_prefix)}
    passwords = {INGEST: accounts.ingest_password, ALERTS: accounts.alerts_password or ""}
    names = {INGEST: "Mimamori ingestor", ALERTS: "Mimamori alert publisher"}
    if bind:
        logins = [*hub_logins(INGEST_USERNAME, ingest_ids, INGEST), *hub_logins(ALERTS_USERNAME, alerts_ids, ALERTS)]
    else:  # the two base accounts, unbound (an empty client id is not written)
        logins = [HubLogin(INGEST_USERNAME, "", INGEST), HubLogin(ALERTS_USERNAME, "", ALERTS)]
    broker_accounts = [
        dynsec.Account(
            accounts.admin_username,
            accounts.admin_password,
            {dynsec.ADMIN_ROLE: dynsec.admin_acls()},
            "Mimamori hub: provisions device accounts",
        ),
        *(
            dynsec.Account(
                login.username,
                passwords[login.kind],
                {roles[login.kind]: acls[login.kind]},
                names[login.kind],
                client_id=login.client_id or None,
            )
            for login in logins
        ),
        *extra_accounts,
    ]
    config = dynsec.initial_config(broker_accounts, [secrets.token_bytes(12) for _ in broker_accounts])
    _write_private(creds_path, accounts.as_env())
    _write_private(config_path, json.dumps(config, indent=1))
    _hand_to_broker_user(data_dir, config_path)
    return accounts, True


def _hand_to_broker_user(data_dir: Path, config_path: Path) -> None:
    """Mosquitto started as root drops to the ``mosquitto`` user, which must then read and rewrite the plugin's
    file (and create its temporary copy beside it). The hub's credentials file stays with us."""
    if os.name != "posix" or os.geteuid() != 0:
        return
    import pwd

    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        return  # no such user: the broker keeps running as root
    for path in (data_dir, config_path):
        os.chown(path, user.pw_uid, user.pw_gid)


def read_credentials(path: Path) -> HubAccounts:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, eq, value = line.partition("=")
        if eq:
            values[key.strip()] = value.strip()
    try:
        return HubAccounts(
            values["MIMAMORI_MQTT_ADMIN_USERNAME"],
            values["MIMAMORI_MQTT_ADMIN_PASSWORD"],
            values["MIMAMORI_MQTT_USERNAME"],
            values["MIMAMORI_MQTT_PASSWORD"],
            values.get("MIMAMORI_ALERTS_MQTT_USERNAME"),
            values.get("MIMAMORI_ALERTS_MQTT_PASSWORD"),
        )
    except KeyError as exc:
        raise ConfigError(f"{path} lacks {exc.args[0]}") from None


def prepare_broker(
    template: Path,
    data_dir: Path,
    *,
    port: int,
    topic_prefix: str,
    plugin: str | None = None,
    bind: str = "127.0.0.1",
    extra_conf: str = "",
    extra_accounts: tuple[dynsec.Account, ...] = (),
    ingest_ids: Sequence[str] = INGEST_CLIENT_IDS,
    alerts_ids: Sequence[str] = ALERTS_CLIENT_IDS,
) -> tuple[Path, HubAccounts, bool]:
    """Write ``data_dir``/mosquitto.conf and initialise dynamic security; returns (conf path, accounts, created)."""
    conf = render_mosquitto_conf(
        template.read_text(),
        port=port,
        data_dir=data_dir.resolve(),
        plugin=find_dynsec_plugin(plugin),
        bind=bind,
        extra=extra_conf,
    )
    accounts, created = init_dynsec(
        data_dir.resolve(), topic_prefix, extra_accounts, ingest_ids=ingest_ids, alerts_ids=alerts_ids
    )
    conf_path = data_dir / "mosquitto.conf"
    conf_path.write_text(conf)
    return conf_path, accounts, created
