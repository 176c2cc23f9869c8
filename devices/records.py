"""What other packages may know of a device without asking the database: pure value types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceRecord:
    """What ingest needs to know about a device to accept its readings."""

    id: str
    tenant_id: str
    device_type: str
    status: str
