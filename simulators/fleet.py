"""The devices to simulate: from the city's device file, the registry, or generated for load. Pure data.

A generated device is SYNTHETIC: placed around the places of shared/domain.md §5 with a seeded jitter,
named ``sim-<type>-<n>``; it must be registered in the hub before its readings can be stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simulators._noise import gauss, uniform
from simulators.errors import FleetError

CITY_DEVICES = Path(__file__).resolve().parent.parent / "devices" / "city_devices.yaml"

DEVICE_TYPES = (
    "river_gauge",
    "river_gauge_crisis",
    "rain_gauge",
    "extensometer",
    "tiltmeter",
    "soil_moisture",
    "weather_station",
    "dendrometer",
)


@dataclass(frozen=True, slots=True)
class SimDevice:
    id: str
    tenant: str
    device_type: str
    lat: float
    lon: float
    interval_s: int = 600
    metadata: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def place(self) -> tuple[float, float]:
        return (self.lat, self.lon)


def _check(devices: Iterable[SimDevice]) -> list[SimDevice]:
    out = []
    for d in devices:
        if d.device_type not in DEVICE_TYPES:
            raise FleetError(f"device {d.id}: no simulator model for type {d.device_type!r}")
        out.append(d)
    return out


def city_devices(path: Path | None = None) -> list[SimDevice]:
    """The devices of a city device file (``devices/city_devices.yaml`` by default)."""
    path = path or CITY_DEVICES
    try:
        doc = yaml.safe_load(path.read_text("utf-8"))
        tenant = doc["tenant"]["id"]
        return _check(
            SimDevice(
                id=d["id"],
                tenant=d.get("tenant", tenant),
                device_type=d["type"],
                lat=float(d["lat"]),
                lon=float(d["lon"]),
                interval_s=int(d.get("interval_s", 600)),
                metadata=dict(d.get("metadata") or {}),
                name=d.get("name", ""),
            )
            for d in doc["devices"]
        )
    except OSError as exc:
        raise FleetError(f"cannot read device file {path}: {exc.strerror}") from None
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise FleetError(f"device file {path} is invalid: {exc}") from None


# Places from domain.md §5 and the kinds of device that belong there.
_RIVER_SITES = [
    ("Yahagi", 35.094, 137.179),
    ("Yahagi", 35.085, 137.171),
    ("Yahagi", 35.036, 137.160),
    ("Tomoe", 35.134, 137.312),
    ("Kago", 35.198, 137.207),
]
_MOUNTAIN_SITES = [(35.232, 137.362), (35.216, 137.509), (35.230, 137.285), (35.134, 137.312), (35.041, 137.319)]
_FOREST_SITES = [(35.216, 137.509), (35.232, 137.362), (35.236, 137.420), (35.041, 137.319)]
_ANY_SITES = [(35.082, 137.156), (35.198, 137.207), *_MOUNTAIN_SITES]
# Share of a generated fleet per type (sums to 1).
_MIX = {
    "rain_gauge": 0.2,
    "river_gauge": 0.1,
    "river_gauge_crisis": 0.1,
    "extensometer": 0.12,
    "tiltmeter": 0.12,
    "soil_moisture": 0.14,
    "weather_station": 0.1,
    "dendrometer": 0.12,
}
_RIVER_THRESHOLDS = {
    "river_gauge": {"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8},
    "river_gauge_crisis": {
        "observation_start_m": 1.0,
        "standby_m": 1.5,
        "caution_m": 2.0,
        "evacuation_m": 2.6,
        "danger_m": 3.0,
    },
}
_INTERVALS = {"river_gauge_crisis": 300}


def synthesize(count: int, seed: int, tenant: str = "toyota-city", start: int = 0) -> list[SimDevice]:
    """``count`` generated devices, the same for the same seed; numbered from ``start``."""
    devices = []
    types = list(_MIX)
    cumulative = []
    total = 0.0
    for t in types:
        total += _MIX[t]
        cumulative.append(total)
    for n in range(start, start + count):
        pick = uniform(seed, "fleet-type", n) * total
        dtype = next(t for t, c in zip(types, cumulative, strict=True) if pick < c)
        meta: dict[str, Any] = {"synthetic": True}
        if dtype in _RIVER_THRESHOLDS:
            river, lat, lon = _RIVER_SITES[int(uniform(seed, "fleet-river", n) * len(_RIVER_SITES))]
            meta |= {"river": river, **_RIVER_THRESHOLDS[dtype]}
            jitter = 0.01
        elif dtype in ("extensometer", "tiltmeter", "soil_moisture"):
            lat, lon = _MOUNTAIN_SITES[int(uniform(seed, "fleet-site", n) * len(_MOUNTAIN_SITES))]
            meta["slope_id"] = f"sim-slope-{n // 3}"  # about three instruments per slope
            jitter = 0.03
        elif dtype in ("weather_station", "dendrometer"):
            lat, lon = _FOREST_SITES[int(uniform(seed, "fleet-site", n) * len(_FOREST_SITES))]
            # A synthetic label (the world keys a dendrometer's soil by it), not a register id: load fleets
            # are not placed in real stands, and the API finds a stand's sensors by location anyway.
            meta["stand_id"] = f"sim-stand-{n // 4}"
            jitter = 0.03
        else:
            lat, lon = _ANY_SITES[int(uniform(seed, "fleet-site", n) * len(_ANY_SITES))]
            jitter = 0.05
        devices.append(
            SimDevice(
                id=f"sim-{dtype.replace('_', '-')}-{n:05d}",
                tenant=tenant,
                device_type=dtype,
                lat=round(lat + jitter * gauss(seed, "fleet-lat", n), 5),
                lon=round(lon + jitter * gauss(seed, "fleet-lon", n), 5),
                interval_s=_INTERVALS.get(dtype, 600),
                metadata=meta,
                name=f"{dtype} (synthetic #{n})",
            )
        )
    return devices


def sized_fleet(base: list[SimDevice], count: int | None, seed: int, tenant: str = "toyota-city") -> list[SimDevice]:
    """``count`` devices: the base fleet first (sorted by id), then generated ones when more are asked for."""
    ordered = sorted(base, key=lambda d: d.id)
    if count is None:
        return ordered
    if count <= len(ordered):
        return ordered[:count]
    return ordered + synthesize(count - len(ordered), seed, tenant)
