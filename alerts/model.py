"""Value types shared by the pure core and the store: what rules know of a device, and where a subject is.

Pure: no database. They live here, not in alerts/store.py, so binding.py can match rules to devices without
importing the SQL that reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What rules need to know of a device: type, tenant, site metadata, place, expected interval."""

    id: str
    tenant_id: str
    device_type: str
    metadata: dict[str, Any]
    lon: float | None
    lat: float | None
    expected_interval: timedelta


@dataclass(frozen=True, slots=True)
class SubjectPlace:
    """Who owns a subject and where it is: copied onto the alert when it opens."""

    device_id: str | None
    tenant_id: str
    location: tuple[float, float] | None  # lon, lat
    area_geojson: dict[str, Any] | None
    buffer_m: float
