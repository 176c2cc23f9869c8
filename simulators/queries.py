"""The one question the simulator asks the registry: which devices exist, where, with what site metadata.

Read-only and parameterised. (Reading the registry is what the registry tooling does for a real fleet too:
the devices to simulate, not the hub's insides.)
"""

from __future__ import annotations

import psycopg

from simulators.fleet import SimDevice

_DEVICES = """
SELECT id, tenant_id, device_type, ST_Y(location), ST_X(location), extract(epoch FROM expected_interval)::int,
       metadata, name
FROM devices
WHERE status = 'active' AND location IS NOT NULL AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)
ORDER BY id
"""


def registered_devices(conn: psycopg.Connection, tenant: str | None = None) -> list[SimDevice]:
    """Active devices with a location (optionally one tenant's), as the simulator models them."""
    rows = conn.execute(_DEVICES, {"tenant": tenant}).fetchall()
    return [
        SimDevice(
            id=r[0],
            tenant=r[1],
            device_type=r[2],
            lat=r[3],
            lon=r[4],
            interval_s=r[5] or 600,
            metadata=r[6] or {},
            name=r[7] or "",
        )
        for r in rows
    ]
