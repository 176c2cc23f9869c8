"""Shared pieces of the alert tests: a rule folder, stored readings, an engine on the test database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from alerts.evaluate import Observation
from devices import upsert_device
from devkit.api_server import ApiServer

__all__ = [
    "RIVER_RULES",
    "SITE",
    "T0",
    "ApiServer",
    "SseReader",
    "add_gauges",
    "clean_alert_tables",
    "levels",
    "store",
    "write_rules",
]

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)

RIVER_RULES = """\
rules:
  - id: river-level
    kind: threshold
    hazard: flood
    title: {en: River water level, ja: 河川水位}
    target: {device_type: river_gauge}
    metric: water_level
    levels_from_site: {1: standby_m, 2: caution_m, 3: evacuation_m, 4: danger_m}
    deadband: 0.05
    area_buffer_m: 500
  - id: gauge-silent
    kind: silence
    title: {en: Gauge silent, ja: 水位計の途絶}
    target: {device_type: river_gauge}
    factor: 3
    level: 1
    nearby_level: 3
    nearby_m: 5000
"""

SITE = {"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8}


def write_rules(folder: Path, text: str = RIVER_RULES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(text, "utf-8")
    return folder


def add_gauges(db: psycopg.Connection, *ids_and_places: tuple[str, str, float, float]) -> None:
    for device_id, tenant, lon, lat in ids_and_places:
        upsert_device(
            db,
            device_id=device_id,
            tenant_id=tenant,
            device_type="river_gauge",
            lon=lon,
            lat=lat,
            metadata=SITE,
            expected_interval=timedelta(minutes=10),
        )


def store(db: psycopg.Connection, observations: list[Observation]) -> None:
    """Readings as the ingest writer commits them: the readings table and the latest value per metric."""
    for o in observations:
        db.execute(
            "INSERT INTO readings (time, device_id, metric, value) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (o.time, o.device_id, o.metric, o.value),
        )
        db.execute(
            "INSERT INTO latest_readings (device_id, metric, time, value) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (device_id, metric) DO UPDATE SET time = excluded.time, value = excluded.value"
            " WHERE latest_readings.time < excluded.time",
            (o.device_id, o.metric, o.time, o.value),
        )


def levels(device: str, values: list[float], start: datetime = T0, step: timedelta = timedelta(minutes=10)):
    return [Observation(device, "water_level", start + i * step, v) for i, v in enumerate(values)]


def clean_alert_tables(db: psycopg.Connection) -> None:
    db.execute("TRUNCATE alert_rules, alert_dispatch_cursors, alerts, alert_events, alert_webhooks CASCADE")


class SseReader:
    """Reads an SSE stream in a thread and keeps the parsed events (id, event, data as JSON)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        import threading

        self.events: list[dict] = []
        self.status: int | None = None
        self._url, self._headers = url, headers
        self._stop = threading.Event()
        self.closed_by: str | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        import json

        import httpx

        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as client,
                client.stream("GET", self._url, headers=self._headers) as response,
            ):
                self.status = response.status_code
                current: dict = {}
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        if "data" in current:
                            self.events.append(current)
                        current = {}
                    elif line.startswith("id: "):
                        current["id"] = int(line[4:])
                    elif line.startswith("data: "):
                        current["data"] = json.loads(line[6:])
        except httpx.TransportError as exc:
            # The server went away (a test stopping it): the events read so far are the result.
            self.closed_by = repr(exc)

    def __enter__(self) -> SseReader:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()  # the thread ends at the next line (keep-alives come every few seconds at most)

    def kinds(self) -> list[tuple[str, int]]:
        return [(e["data"]["kind"], e["data"]["level"]) for e in self.events]
