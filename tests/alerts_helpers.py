"""Shared pieces of the alert tests: a rule folder, stored readings, an engine on the test database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from alerts.evaluate import Observation
from devices import upsert_device

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
