"""SQL of the device registry, parameterised, one function per question."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from devices.catalogue import DeviceType, MetricSpec


@dataclass(frozen=True)
class DeviceRecord:
    """What ingest needs to know about a device to accept its readings."""

    id: str
    tenant_id: str
    device_type: str
    status: str


def sync_catalogue(conn: psycopg.Connection, types: dict[str, DeviceType]) -> None:
    """Upsert the catalogue; metrics no longer listed for a type are removed."""
    with conn.transaction():
        for t in types.values():
            conn.execute(
                "INSERT INTO device_types (id, name, name_ja, description, site_schema)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_ja = excluded.name_ja,"
                " description = excluded.description, site_schema = excluded.site_schema",
                (t.id, t.name, t.name_ja, t.description, Jsonb(t.site_schema)),
            )
            conn.execute(
                "DELETE FROM device_type_metrics WHERE device_type = %s AND NOT (metric = ANY(%s))",
                (t.id, list(t.metrics)),
            )
            for m in t.metrics.values():
                conn.execute(
                    "INSERT INTO device_type_metrics (device_type, metric, unit, min_value, max_value, alt_units)"
                    " VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (device_type, metric) DO UPDATE SET unit = excluded.unit,"
                    " min_value = excluded.min_value, max_value = excluded.max_value,"
                    " alt_units = excluded.alt_units",
                    (t.id, m.metric, m.unit, m.min_value, m.max_value, Jsonb(m.alt_units)),
                )


def metric_specs(conn: psycopg.Connection) -> dict[str, dict[str, MetricSpec]]:
    """Every device type's metrics, as stored in the database."""
    specs: dict[str, dict[str, MetricSpec]] = {}
    rows = conn.execute(
        "SELECT device_type, metric, unit, min_value, max_value, alt_units FROM device_type_metrics"
    ).fetchall()
    for dtype, metric, unit, lo, hi, alt in rows:
        alt_units = alt if isinstance(alt, dict) else json.loads(alt or "{}")
        specs.setdefault(dtype, {})[metric] = MetricSpec(
            metric, unit, lo, hi, {k: float(v) for k, v in alt_units.items()}
        )
    return specs


def all_devices(conn: psycopg.Connection) -> list[DeviceRecord]:
    rows = conn.execute("SELECT id, tenant_id, device_type, status FROM devices").fetchall()
    return [DeviceRecord(*row) for row in rows]


def get_device_record(conn: psycopg.Connection, device_id: str) -> DeviceRecord | None:
    row = conn.execute("SELECT id, tenant_id, device_type, status FROM devices WHERE id = %s", (device_id,)).fetchone()
    return DeviceRecord(*row) if row else None


def upsert_tenant(conn: psycopg.Connection, tenant_id: str, name: str, kind: str = "partner") -> None:
    conn.execute(
        "INSERT INTO tenants (id, name, kind) VALUES (%s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind",
        (tenant_id, name, kind),
    )


def upsert_device(
    conn: psycopg.Connection,
    *,
    device_id: str,
    tenant_id: str,
    device_type: str,
    name: str = "",
    lon: float | None = None,
    lat: float | None = None,
    status: str = "active",
    expected_interval: timedelta = timedelta(minutes=10),
    installed_on: date | None = None,
    metadata: dict[str, object] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO devices (id, tenant_id, device_type, name, location, status, expected_interval,"
        " installed_on, metadata)"
        " VALUES (%(id)s, %(tenant)s, %(type)s, %(name)s,"
        " CASE WHEN %(lon)s::float8 IS NULL THEN NULL"
        "      ELSE ST_SetSRID(ST_MakePoint(%(lon)s::float8, %(lat)s::float8), 4326) END,"
        " %(status)s, %(interval)s, %(installed)s, %(meta)s)"
        " ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, device_type = excluded.device_type,"
        " name = excluded.name, location = excluded.location, status = excluded.status,"
        " expected_interval = excluded.expected_interval, installed_on = excluded.installed_on,"
        " metadata = excluded.metadata, updated_at = now()",
        {
            "id": device_id,
            "tenant": tenant_id,
            "type": device_type,
            "name": name,
            "lon": lon,
            "lat": lat,
            "status": status,
            "interval": expected_interval,
            "installed": installed_on,
            "meta": Jsonb(metadata or {}),
        },
    )


def latest_readings(
    conn: psycopg.Connection, device_id: str, tenant_id: str | None
) -> dict[str, tuple[datetime, float]] | None:
    """Newest (time, value) per metric of a device; None when it does not exist or is not ``tenant_id``'s.

    ``tenant_id`` None means the caller may see every tenant.
    """
    exists = conn.execute(
        "SELECT 1 FROM devices WHERE id = %s AND (%s::text IS NULL OR tenant_id = %s)",
        (device_id, tenant_id, tenant_id),
    ).fetchone()
    if not exists:
        return None
    rows = conn.execute(
        "SELECT metric, time, value FROM latest_readings WHERE device_id = %s ORDER BY metric", (device_id,)
    ).fetchall()
    return {metric: (t, v) for metric, t, v in rows}
