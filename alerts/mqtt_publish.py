"""Alert state changes on MQTT: ``{prefix}/alerts/{tenant}/{alert id}`` holds the alert's current state (retained),
``.../events`` carries each change (not retained). A closed alert's retained state is cleared.

The publisher reads the events table after its cursor, so it never holds up evaluation, catches up after a broker
outage, and publishes each event at least once (QoS 1, cursor moved after the broker acknowledged).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from psycopg_pool import ConnectionPool

from alerts import outbox, store
from alerts.stream import event_json
from mimamori import metrics
from mimamori.settings import Settings

log = logging.getLogger(__name__)

CONSUMER = "mqtt"


def state_topic(prefix: str, tenant: str, alert_id: int) -> str:
    return f"{prefix}/alerts/{tenant}/{alert_id}"


def event_topic(prefix: str, tenant: str, alert_id: int) -> str:
    return f"{state_topic(prefix, tenant, alert_id)}/events"


class MqttAlertPublisher:
    def __init__(self, settings: Settings, pool: ConnectionPool, *, batch: int = 200) -> None:
        self.settings = settings
        self._pool = pool
        self._batch = batch
        self.published = 0
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=settings.alerts_mqtt_client_id, protocol=mqtt.MQTTv5
        )
        # its own account when configured: publishing alerts needs rights that ingest does not
        username = settings.alerts_mqtt_username or settings.mqtt_username
        secret = settings.alerts_mqtt_password if settings.alerts_mqtt_username else settings.mqtt_password
        if username:
            self._client.username_pw_set(username, secret.get_secret_value() if secret else None)
        if settings.mqtt.tls:
            self._client.tls_set(ca_certs=settings.mqtt_ca_file)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)

    @property
    def client(self) -> mqtt.Client:
        """The connection, shared with the STA Observation publisher (alerts/sta_mqtt.py)."""
        return self._client

    def run(self, stop: threading.Event) -> None:
        addr = self.settings.mqtt
        self._client.connect_async(addr.host, addr.port, keepalive=30)
        self._client.loop_start()
        poll = self.settings.alerts_stream_poll_ms / 1000
        try:
            while not stop.is_set():
                try:
                    moved = self.publish_pending()
                except Exception as exc:  # broker or database away: nothing moved, the next round retries
                    log.warning("alert MQTT publisher: %s", str(exc).strip()[:200])
                    stop.wait(2.0)
                    continue
                if not moved:
                    stop.wait(poll)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def publish_pending(self) -> int:
        """Publish events after the cursor; returns how many. Raises when the broker does not acknowledge."""
        if not self._client.is_connected():
            return 0
        prefix = self.settings.mqtt_topic_prefix
        with self._pool.connection() as conn, conn.transaction():
            after = outbox.lock_cursor(conn, CONSUMER)
            rows = store.events_after(conn, after, None, limit=self._batch)
            for row in rows:
                self._publish_one(prefix, row)
            if rows:
                outbox.move_cursor(conn, CONSUMER, rows[-1]["id"])
        self.published += len(rows)
        metrics.ALERT_MQTT_PUBLISHED.inc(len(rows))
        return len(rows)

    def _publish_one(self, prefix: str, row: dict[str, Any]) -> None:
        alert = row["alert"]
        tenant, alert_id = alert["tenant_id"], alert["id"]
        infos = [self._client.publish(event_topic(prefix, tenant, alert_id), event_json(row), qos=1)]
        if row["kind"] == "closed":
            state: bytes | str = b""  # an empty retained message clears the retained state
        else:
            state = json.dumps({"event_id": row["id"], **alert}, default=str, ensure_ascii=False)
        infos.append(self._client.publish(state_topic(prefix, tenant, alert_id), state, qos=1, retain=True))
        for info in infos:
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                raise ConnectionError("the broker did not acknowledge an alert publication")
