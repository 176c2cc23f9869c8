"""Seeding the city's own devices (a laptop hub and the simulators start from these)."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path

import psycopg
import yaml

from devices.queries import upsert_device, upsert_tenant


def seed_city(conn: psycopg.Connection, path: Path | None = None) -> int:
    """Create the operator tenant and its devices when missing; returns how many devices the file lists.

    Devices that already exist are left as they are, so operators' edits survive a restart.
    """
    text = (
        path.read_text("utf-8") if path else resources.files("devices").joinpath("city_devices.yaml").read_text("utf-8")
    )
    doc = yaml.safe_load(text)
    tenant = doc["tenant"]
    with conn.transaction():
        exists = conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant["id"],)).fetchone()
        if not exists:
            upsert_tenant(conn, tenant["id"], tenant["name"], tenant.get("kind", "operator"))
        for d in doc["devices"]:
            if conn.execute("SELECT 1 FROM devices WHERE id = %s", (d["id"],)).fetchone():
                continue
            upsert_device(
                conn,
                device_id=d["id"],
                tenant_id=tenant["id"],
                device_type=d["type"],
                name=d.get("name", ""),
                lon=d.get("lon"),
                lat=d.get("lat"),
                expected_interval=timedelta(seconds=d.get("interval_s", 600)),
                metadata=d.get("metadata") or {},
            )
    return len(doc["devices"])
