"""Seed data of the STA tests: the city's devices (tests/conftest.py ``city``), a stand under the partner's probe,
and a day of readings every 10 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from shapely.geometry import box

from geo import Stand, upsert_stands

T0 = datetime(2026, 11, 1, tzinfo=UTC)
STEP = timedelta(minutes=10)
POINTS = 144  # a day


def seed(db: psycopg.Connection) -> dict[str, int]:
    """Readings of gauge-1 (water_level, battery), rain-1 (rain) and acme-soil-1 (soil moisture); the series numbers."""
    db.execute("TRUNCATE stands")
    upsert_stands(
        db,
        [Stand(stand_id="7-1", rinpan=7, shohan=1, geom=box(137.49, 35.19, 137.51, 35.21), species_1="スギ")],
        source_file="test",
        source_crs="EPSG:4326",
    )
    rows = []
    for i in range(POINTS):
        t = T0 + i * STEP
        rows += [
            (t, "gauge-1", "water_level", 1.0 + i / 100),
            (t, "gauge-1", "battery", 3.6),
            (t, "rain-1", "rainfall", float(i % 5)),
            (t, "acme-soil-1", "soil_moisture", 0.3 + (i % 7) / 100),
        ]
    with db.cursor() as cur:
        cur.executemany("INSERT INTO readings (time, device_id, metric, value) VALUES (%s, %s, %s, %s)", rows)
    return {f"{d}/{m}": n for n, d, m in db.execute("SELECT series_id, device_id, metric FROM series").fetchall()}


# Posted Observations must be within ingest's accepted past (a year by default): two days ago, at midnight UTC.
RECENT = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
