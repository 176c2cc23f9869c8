"""What a feature query asks for, and the collections the hub serves as features. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from geo.geometry import BBox


@dataclass(frozen=True)
class FeatureQuery:
    """One page of a collection: spatial, temporal and property filters, and whose data the caller may see."""

    bbox: BBox | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # inclusive (OGC intervals are closed)
    filters: dict[str, str] = field(default_factory=dict)
    limit: int = 100
    offset: int = 0
    tenant_id: str | None = None  # None: the caller sees every tenant
    # Say how many features match over every page (numberMatched): told by the page where it can (the last page,
    # or a first page holding them all), else counted on the first page (offset 0) alone, with one COUNT more.
    count: bool = False


@dataclass(frozen=True)
class Feature:
    id: str
    geometry: dict[str, object] | None
    properties: dict[str, object]

    def as_geojson(self) -> dict[str, object]:
        return {"type": "Feature", "id": self.id, "geometry": self.geometry, "properties": self.properties}


@dataclass(frozen=True)
class FeaturePage:
    features: list[Feature]
    more: bool  # another page follows
    matched: int | None = None  # every feature the query matches, over all pages (None: not counted)


@dataclass(frozen=True)
class Collection:
    """A feature collection: its id, what it says about itself, and the properties it may be filtered by."""

    id: str
    title: str
    description: str
    queryables: tuple[str, ...]
    temporal: str | None  # which time the datetime parameter filters, or None when it has none
    partners: bool  # whether partner keys may read it (confined to their tenant in the SQL)


COLLECTIONS: dict[str, Collection] = {
    c.id: c
    for c in (
        Collection(
            "devices",
            "Sensors",
            "Every registered sensor with its status and latest readings (one property per metric).",
            ("device_type", "status", "tenant_id"),
            "time of the latest reading",
            partners=True,
        ),
        Collection(
            "stands",
            "Forest stands (森林簿)",
            "Sub-compartments (林小班) of the forest register: species, age, area, volume, ownership, 保安林.",
            ("species_1", "forest_type", "ownership", "rinpan", "age_class", "density"),
            None,
            partners=False,
        ),
        Collection(
            "areas",
            "Areas",
            "Configured areas: river reaches, slopes, districts and evacuation zones.",
            ("kind",),
            "last update",
            partners=True,
        ),
        Collection(
            "alerts",
            "Alerts",
            "Active alerts by default; pass datetime for the history over an interval.",
            ("state", "hazard", "level", "rule_id", "device_id"),
            "time the alert was raised",
            partners=True,
        ),
    )
}
