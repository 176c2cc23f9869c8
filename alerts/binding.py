"""Which rule watches which subject: targets matched against the device registry. Pure: values in, values out.

A subject is a device for every kind but ``composite``, whose subject is a group: the devices sharing a metadata
value (``group_by``) or all devices its target selects (an area), so one alert covers a district.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shapely.geometry import Point, Polygon, mapping

from alerts.evaluate import site_levels
from alerts.model import SubjectPlace
from alerts.ruleset import AnyRule, Area, CompositeRule, LevelStep, Target
from devices.records import DeviceRecord


@dataclass(frozen=True, slots=True)
class Binding:
    """One rule applied to one subject."""

    rule: AnyRule
    subject: str
    devices: tuple[str, ...]
    steps: tuple[LevelStep, ...]
    place: SubjectPlace

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule.id, self.subject)


def area_geojson(area: Area) -> dict[str, Any]:
    """The area as a GeoJSON polygon (a circle is approximated by 32 segments, on a local metric scale)."""
    if area.polygon is not None:
        ring = list(area.polygon)
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
    assert area.center is not None and area.radius_m is not None
    return dict(mapping(_circle(area.center, area.radius_m)))


def _circle(center: tuple[float, float], radius_m: float) -> Polygon:
    import math

    lon, lat = center
    dlat = radius_m / 111_320.0
    dlon = radius_m / (111_320.0 * max(math.cos(math.radians(lat)), 1e-6))
    return Polygon(
        [(lon + dlon * math.cos(2 * math.pi * i / 32), lat + dlat * math.sin(2 * math.pi * i / 32)) for i in range(32)]
    )


def _shape(area: Area) -> Polygon:
    if area.polygon is not None:
        return Polygon(area.polygon)
    assert area.center is not None and area.radius_m is not None
    return _circle(area.center, area.radius_m)


def matches(target: Target, device: DeviceRecord) -> bool:
    if target.device and device.id not in target.device:
        return False
    if target.device_type and device.device_type not in target.device_type:
        return False
    if target.tag:
        tags = device.metadata.get("tags") or []
        for tag in target.tag:
            key, eq, value = tag.partition("=")
            ok = str(device.metadata.get(key)) == value if eq else tag in tags
            if not ok:
                return False
    if target.area is not None:
        if device.lon is None or device.lat is None:
            return False
        if not _shape(target.area).covers(Point(device.lon, device.lat)):
            return False
    return True


def bind(rules: Iterable[AnyRule], devices: Iterable[DeviceRecord]) -> list[Binding]:
    """Every (rule, subject) to evaluate. Devices a threshold rule has no levels for are left out."""
    devices = list(devices)
    out: list[Binding] = []
    for rule in rules:
        if not rule.enabled:
            continue
        chosen = [d for d in devices if matches(rule.target, d)]
        area = rule.area or rule.target.area
        if isinstance(rule, CompositeRule):
            groups: dict[str, list[DeviceRecord]] = {}
            for d in chosen:
                if rule.group_by:
                    value = d.metadata.get(rule.group_by)
                    if value is not None:
                        groups.setdefault(f"{rule.group_by}={value}", []).append(d)
                else:
                    groups.setdefault(f"area:{area.name}" if area and area.name else "all", []).append(d)
            for subject, members in sorted(groups.items()):
                located = [(d.lon, d.lat) for d in members if d.lon is not None and d.lat is not None]
                if area is not None:
                    c = _shape(area).centroid
                    location: tuple[float, float] | None = (c.x, c.y)
                elif located:
                    location = (sum(p[0] for p in located) / len(located), sum(p[1] for p in located) / len(located))
                else:
                    location = None
                tenants = sorted({d.tenant_id for d in members})
                # a group spanning tenants would leak one tenant's data to another: one alert per tenant instead
                for tenant in tenants:
                    own = [d for d in members if d.tenant_id == tenant]
                    name = subject if len(tenants) == 1 else f"{subject}@{tenant}"
                    place = SubjectPlace(
                        None, tenant, location, area_geojson(area) if area else None, rule.area_buffer_m
                    )
                    out.append(Binding(rule, name, tuple(d.id for d in own), site_levels(rule, {}), place))
            continue
        for d in chosen:
            steps = site_levels(rule, d.metadata)
            if not steps:
                continue
            location = (d.lon, d.lat) if d.lon is not None and d.lat is not None else None
            own_area = area_geojson(rule.area) if rule.area else None  # target.area selects, it is not affected
            place = SubjectPlace(d.id, d.tenant_id, location, own_area, rule.area_buffer_m)
            out.append(Binding(rule, d.id, (d.id,), steps, place))
    return out
