"""SensorThings API 1.1 MQTT extension (OGC 18-088, 14.2): each committed reading is published, as the Observation
document ``GET /sta/v1.1/Observations(id)`` answers, on ``v1.1/Datastreams(<id>)/Observations`` and on
``v1.1/Things('<device>')/Datastreams(<id>)/Observations``. QoS 1, never retained (a subscriber gets what is
committed while it listens; the past is the REST face's).

It listens on the same committed-readings port as the alert engine (in process or via the NOTIFY feed), so every
entry (MQTT, HTTP push, STA POST) is published once, by the one active alert process, whatever process committed
it. Publishing never holds up ingest: readings wait in a bounded queue, and a batch that does not fit (or meets the
broker away) is dropped and counted: a live feed, not a store. Tenants are kept apart by the broker (see
``devices.dynsec.sta_reader_acls``), since the standard topics have no room for a tenant.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from psycopg_pool import ConnectionPool

from devices import BrokerAdmin, dynsec
from devices.sta import (
    ENTITY_SETS,
    ObservationId,
    Options,
    datastream_tenant,
    entity,
    fetch_entity,
    series_number,
    tenant_datastreams,
)
from mimamori import metrics
from mimamori.committed import CommittedReading
from mimamori.errors import MimamoriError
from mimamori.settings import Settings

log = logging.getLogger(__name__)

STA_PATH = "/sta/v1.1"


def observation_topics(device_id: str, series_id: int) -> tuple[str, str]:
    return dynsec.sta_datastream_topic(series_id), dynsec.sta_thing_topic(device_id, series_id)


def observation_json(base: str, row: dict[str, Any]) -> str:
    """The Observation document of a ``series_readings`` row (as devices.sta reads it), the REST face's own."""
    return json.dumps(entity(base, ENTITY_SETS["Observations"], row, {}, Options()), ensure_ascii=False)


class StaObservationPublisher:
    def __init__(self, settings: Settings, pool: ConnectionPool, client: mqtt.Client) -> None:
        """``client`` is the alert publisher's connection (alerts/mqtt_publish.py), which owns it: the broker binds
        the alerts account to one client id, and a paho client may publish from any thread."""
        self.settings = settings
        self._pool = pool
        self._queue: queue.Queue[list[tuple[str, str, datetime]]] = queue.Queue(maxsize=settings.alerts_queue_max)
        self.published = 0
        self.base = settings.public_url.rstrip("/") + STA_PATH
        self._client = client
        # Datastreams whose tenant's reader role is known to grant them (kept in step when the hub may manage the
        # broker: MIMAMORI_MQTT_ADMIN_PASSWORD set); otherwise `mimamori broker sync-sta-readers` does it.
        self._granted: set[int] = set()
        self.role_syncs = 0

    def on_readings(self, readings: Iterable[CommittedReading]) -> None:
        """The committed-readings listener: never blocks."""
        batch = [(r.device_id, r.metric, r.time) for r in readings]
        if not batch:
            return
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            metrics.STA_MQTT_DROPPED.inc(len(batch))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                batch = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.publish(batch)
            except Exception as exc:  # broker or database away: this batch is lost to the live feed
                metrics.STA_MQTT_DROPPED.inc(len(batch))
                log.warning("STA MQTT publisher: %s", str(exc).strip()[:200])
                stop.wait(1.0)

    def publish(self, batch: list[tuple[str, str, datetime]]) -> int:
        """Render and publish each reading of ``batch``; returns how many were published."""
        if not self._client.is_connected():
            raise ConnectionError("not connected to the broker")
        now = datetime.now(UTC)
        infos = []
        with self._pool.connection() as conn:
            series: dict[tuple[str, str], int | None] = {}
            for device_id, metric, when in batch:
                if (device_id, metric) not in series:
                    series[(device_id, metric)] = series_number(conn, device_id, metric)
                series_id = series[(device_id, metric)]
                if series_id is None:
                    continue
                if series_id not in self._granted:
                    self._grant(conn, series_id)
                key = str(ObservationId(series_id, when))
                found = fetch_entity(conn, ENTITY_SETS["Observations"], key, Options(), tenant=None, now=now)
                if found is None:
                    continue
                payload = observation_json(self.base, found[0])
                for topic in observation_topics(device_id, series_id):
                    infos.append(self._client.publish(topic, payload, qos=1, retain=False))
        for info in infos:
            info.wait_for_publish(timeout=10)
            if not info.is_published():
                raise ConnectionError("the broker did not acknowledge an STA publication")
        done = len(infos) // 2
        self.published += done
        metrics.STA_MQTT_PUBLISHED.inc(done)
        return done

    def _grant(self, conn: psycopg.Connection, series_id: int) -> None:
        """A Datastream not seen yet: bring its tenant's reader role in line (a new series, or a restart)."""
        if not self.settings.mqtt_admin_password:
            self._granted.add(series_id)
            return
        tenant = datastream_tenant(conn, series_id)
        if tenant is None:
            return
        streams = tenant_datastreams(conn, tenant)
        try:
            with BrokerAdmin(self.settings) as admin:
                admin.sync_sta_reader_role(tenant, streams)
        except MimamoriError as exc:  # the broker's admin away: publish anyway, try again with the next reading
            log.warning("STA reader role of %s not synced: %s", tenant, str(exc)[:200])
            return
        self.role_syncs += 1
        self._granted.update(s for _, s in streams)
