"""The one read model of a device: what other packages know of it, as pure value types.

``DeviceRecord`` is the registry row (ingest needs its first four fields, the alert rules the rest); ``DeviceInfo``
is that record with the registry's own facts (created, updated, credentials) for the registry API and the CLI;
``DeviceState`` adds what the hub knows of it now — when it was last heard, its latest readings, whether it is
silent — for the map, the feature collections and the sensors of a stand. The API's answers and the feature
properties are derived from these (``DeviceState.properties``), not read in shapes of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from devices.silence import Silence


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A registered device: who owns it, what it is, where it stands and how often it should report."""

    id: str
    tenant_id: str
    device_type: str
    status: str
    name: str = ""
    lon: float | None = None
    lat: float | None = None
    expected_interval: timedelta = timedelta(minutes=10)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    installed_on: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo(DeviceRecord):
    """A device as the registry shows it: the record, and when it was made and changed, and whether it has broker
    credentials. The registry API's and the CLI's rows are :meth:`registry_row`."""

    created_at: datetime
    updated_at: datetime
    has_credentials: bool

    @property
    def expected_interval_s(self) -> int:
        return int(self.expected_interval.total_seconds())

    def registry_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "device_type": self.device_type,
            "name": self.name,
            "lon": self.lon,
            "lat": self.lat,
            "status": self.status,
            "expected_interval_s": self.expected_interval_s,
            "installed_on": self.installed_on,
            "metadata": dict(self.metadata),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "has_credentials": self.has_credentials,
        }


@dataclass(frozen=True, slots=True)
class Liveness:
    """What the hub last heard of a device (device_liveness): arrival times, not the device's own clock."""

    last_seen: datetime | None = None  # any message
    last_reading: datetime | None = None  # a reading
    online: bool | None = None  # from its status messages (and the broker's will for it)

    @property
    def heard(self) -> datetime | None:
        return self.last_seen or self.last_reading


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device as it is now: its record, liveness, newest (time, value) per metric, and its silence."""

    device: DeviceRecord
    liveness: Liveness
    latest: Mapping[str, tuple[datetime, float]]
    silence: Silence

    def properties(self) -> dict[str, object]:
        """Flat properties (a feature's, a table row's): one per metric and its time, for QGIS and GDAL."""
        d, lv = self.device, self.liveness
        props: dict[str, object] = {
            "name": d.name,
            "tenant_id": d.tenant_id,
            "device_type": d.device_type,
            "status": d.status,
            "last_seen": lv.last_seen,
            "last_reading": lv.last_reading,
            "online": lv.online,
            "silent": self.silence.silent,
            "silent_since": self.silence.since,
        }
        for metric, (at, value) in self.latest.items():
            props[metric] = value
            props[f"{metric}_time"] = at
        return props
