"""Seeding the city's own devices (a laptop hub and the simulators start from these)."""

from __future__ import annotations

import os
from dataclasses import dataclass
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


ADMIN_KEY_COMMAND = 'mimamori keys create --tenant toyota-city --role admin --name "Your Name"'


@dataclass(frozen=True)
class WayIn:
    """How the person who started a laptop hub signs in to its map: told at the end of start-up, every time."""

    new_secret: str | None  # an admin key made just now (printed once)
    kept_in: Path | None  # the file holding a working admin key

    def lines(self) -> list[str]:
        if self.kept_in is not None and self.new_secret is not None:
            return [f"admin key (also kept in {self.kept_in}, mode 0600): {self.new_secret}"]
        if self.kept_in is not None:
            return [f"admin key: in {self.kept_in} (cat {self.kept_in})"]
        if self.new_secret is not None:
            return [f"admin key (shown once, keep it): {self.new_secret}"]
        return ["no admin key is kept here; make one with", f"  {ADMIN_KEY_COMMAND}"]


def admin_way_in(conn: psycopg.Connection, key_file: str, tenant_id: str = "toyota-city") -> WayIn:
    """A way in for the laptop hub's user: the admin key kept in ``key_file`` if it still works, else a new one
    kept there (an earlier run may have failed after printing its key, or the database was reset). Without a key
    file, only a hub with no keys at all gets a first key, printed once."""
    from devices.keys import Role, authenticate

    path = Path(key_file).expanduser().resolve() if key_file else None
    if path is not None and path.is_file():
        who = authenticate(conn, path.read_text("utf-8").strip())
        if who is not None and who.role is Role.admin:
            conn.commit()
            return WayIn(None, path)
    if path is None:
        return WayIn(ensure_admin_key(conn, tenant_id), None)
    secret = _new_admin_key(conn, tenant_id, "laptop admin key (mimamori up)")
    conn.commit()  # the key exists before the file names it
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_suffix(".tmp")
    fresh.unlink(missing_ok=True)
    with os.fdopen(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    fresh.replace(path)
    return WayIn(secret, path)


def _new_admin_key(conn: psycopg.Connection, tenant_id: str, name: str) -> str:
    from devices.keys import Role, audit, create_key

    with conn.transaction():
        key_id, secret = create_key(conn, tenant_id, Role.admin, name)
        audit(conn, "mimamori up", "key.create", key_id, {"role": "admin", "kept_in_file": True})
    return secret


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
