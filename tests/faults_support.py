"""Pieces the fault tests share: a fleet of gauges, a paced publisher that survives broker restarts, counts."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices import upsert_device
from tests.services import Mosquitto, wait_until

PREFIX = "mimamori/v1"
TENANT = "toyota-city"
PER_MESSAGE = 10
# Old enough that a whole run's readings stay in the past, young enough to pass the max-past check.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


def add_fleet(db: psycopg.Connection, n: int, prefix: str = "fg") -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    for i, device_id in enumerate(ids):
        upsert_device(
            db, device_id=device_id, tenant_id=TENANT, device_type="river_gauge", lon=137.1 + i / 100, lat=35.1
        )
    return ids


def value_of(message: int, reading: int) -> float:
    return ((message * PER_MESSAGE + reading) % 700) / 100  # metres, inside the gauge's range


def stream(devices: list[str], messages: int) -> list[tuple[str, bytes]]:
    """``messages`` messages of PER_MESSAGE readings, round-robin over ``devices``; every reading distinct."""
    out = []
    for m in range(messages):
        device = devices[m % len(devices)]
        k = m // len(devices)  # the device's own message number: its readings are one second apart
        sets = [
            {"ts": (T0 + timedelta(seconds=k * PER_MESSAGE + r)).isoformat(), "values": {"water_level": value_of(m, r)}}
            for r in range(PER_MESSAGE)
        ]
        out.append((f"{PREFIX}/{TENANT}/{device}/telemetry", json.dumps(sets).encode()))
    return out


def expected_sum(messages: int) -> float:
    return sum(value_of(m, r) for m in range(messages) for r in range(PER_MESSAGE))


class PacedPublisher:
    """Publishes a list of messages at about ``rate`` per second, QoS 1, like a fleet of devices would.

    Its session survives a broker restart (clean start off, a session expiry) and paho re-sends what the broker had
    not acknowledged, so a restart costs at most duplicates, which the hub stores once.
    """

    def __init__(self, broker: Mosquitto, messages: list[tuple[str, bytes]], rate: float, client_id: str) -> None:
        self.messages = messages
        self.rate = rate
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(broker.username, broker.password)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        # Acknowledgements by message id: a message published while the broker was away reports "not connected"
        # in its info, yet paho keeps it and sends it after the reconnect; its PUBACK lands here.
        self.acked: set[int] = set()
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked.add(mid)
        self.client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        for i, (topic, payload) in enumerate(self.messages):
            self.infos.append(self.client.publish(topic, payload, qos=1))
            self.sent = i + 1
            ahead = started + (i + 1) / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)

    def start(self) -> PacedPublisher:
        self._thread.start()
        return self

    def wait_acknowledged(self, timeout: float = 180) -> None:
        """Until the broker has acknowledged every message (after any restart)."""
        self._thread.join(timeout)
        wait_until(
            lambda: all(info.mid in self.acked for info in self.infos),
            timeout=timeout,
            interval=0.2,
            what="the broker to acknowledge every published message",
        )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def count(db: psycopg.Connection, sql: str = "SELECT count(*) FROM readings", params: tuple = ()) -> int:
    return db.execute(sql, params).fetchone()[0]
