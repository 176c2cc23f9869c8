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


def ensure_admin_key(conn: psycopg.Connection, tenant_id: str = "toyota-city") -> str | None:
    """On a hub with no keys at all, create a first admin key and return its secret (to print once)."""
    from devices.keys import Role, audit, create_key

    with conn.transaction():
        conn.execute("LOCK TABLE api_keys IN EXCLUSIVE MODE")
        if conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone():
            return None
        key_id, secret = create_key(conn, tenant_id, Role.admin, "first admin key (mimamori up)")
        audit(conn, "mimamori up", "key.create", key_id, {"role": "admin", "first": True})
    return secret
