"""Value types shared by the pure core and the store: where a subject is. (What rules know of a device is the
device read model itself, devices.records.DeviceRecord.)

Pure: no database. They live here, not in alerts/store.py, so binding.py can place subjects without importing the
SQL that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SubjectPlace:
    """Who owns a subject and where it is: copied onto the alert when it opens."""

    device_id: str | None
    tenant_id: str
    location: tuple[float, float] | None  # lon, lat
    area_geojson: dict[str, Any] | None
    buffer_m: float
