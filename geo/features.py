"""What a feature query asks for, and the collections the hub serves as features. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from geo.crs import STORAGE, Crs
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
    crs: Crs = STORAGE  # the CRS the geometries are answered in (Part 2 ``crs``)
    # Say how many features match over every page (numberMatched): told by the page where it can (the last page,
    # or a first page holding them all), else counted on the first page (offset 0) alone, with one COUNT more.
    count: bool = False
    # A CQL2 filter (Part 3) as geo.cql2.parse_filter reads it, translated by each collection's owner; None: none.
    filter: object | None = None
    # Sort keys (OGC API Features Part 8): (property, descending), each one of the collection's sortables; the
    # owner's default order follows them, and the id ends every order so that pages are stable.
    sortby: tuple[tuple[str, bool], ...] = ()
    # Only these properties in each feature (Part 6 property selection); None: every one.
    properties: tuple[str, ...] | None = None


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


def select_properties(page: FeaturePage, names: tuple[str, ...] | None) -> FeaturePage:
    """The page with only ``names`` among each feature's properties (in the feature's own order); its id and
    geometry stay. None: the page as it is."""
    if names is None:
        return page
    return replace(page, features=[select_feature_properties(f, names) for f in page.features])


def select_feature_properties(feature: Feature, names: tuple[str, ...] | None) -> Feature:
    """One feature with only ``names`` among its properties (None: as it is)."""
    if names is None:
        return feature
    keep = frozenset(names)
    return replace(feature, properties={k: v for k, v in feature.properties.items() if k in keep})


# The type of a feature property, in JSON Schema's words: "date-time" is a string in RFC 3339, "strings" an array
# of strings, "object" a JSON object; "number" a double, written with a decimal point even when whole (548.0).
PROPERTY_TYPES = frozenset({"string", "integer", "number", "boolean", "date-time", "strings", "object"})


@dataclass(frozen=True)
class Collection:
    """A feature collection: its id, what it says about itself, its features' properties (name and type, as its
    provider writes them) and the properties it may be filtered by."""

    id: str
    title: str
    description: str
    queryables: tuple[str, ...]
    temporal: str | None  # which time the datetime parameter filters, or None when it has none
    partners: bool  # whether partner keys may read it (confined to their tenant in the SQL)
    properties: tuple[tuple[str, str], ...] = ()  # (name, one of PROPERTY_TYPES), every feature's
    geometry: str = "Geometry"  # its features' GeoJSON geometry type ("Geometry": any)
    open_properties: bool = False  # features carry more properties than these (a device's metrics)
    roles: tuple[tuple[str, str], ...] = ()  # (property, OGC API Features Part 5 role: id, primary-instant …)
    # The properties a CQL2 filter (and an equality parameter) may name: the scalar ones that are real columns.
    # The queryables are among them; the others are filtered through geo.cql2.
    filterables: tuple[str, ...] = ()
    # The properties its items may be sorted by (Part 8): each a column in its owner's SQL, never one computed in
    # Python (a device's silence, its metrics); the owner maps each to its column.
    sortables: tuple[str, ...] = ()

    def property_types(self) -> dict[str, str]:
        return dict(self.properties)

    def filterable(self) -> tuple[str, ...]:
        """Every property a filter may name, in the order of ``properties``."""
        names = set(self.filterables) | set(self.queryables)
        return tuple(name for name, _ in self.properties if name in names)

    def doubles(self) -> tuple[str, ...]:
        return tuple(name for name, kind in self.properties if kind == "number")


# Every scalar column of the stands table: not the array of 保安林 designations, nor the attributes object.
_STAND_SORTABLES = (
    "stand_id",
    "rinpan",
    "rinpan_branch",
    "shohan",
    "shohan_branch",
    "species_1",
    "species_2",
    "species_3",
    "age_1",
    "age_2",
    "age_3",
    "age_reference_year",
    "age_class",
    "area_ha",
    "volume_m3",
    "forest_type",
    "ownership",
    "site_index",
    "density",
    "height_m",
    "slope_deg",
    "elevation_m",
    "source_file",
    "source_crs",
    "imported_at",
)

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
            properties=(
                ("name", "string"),
                ("tenant_id", "string"),
                ("device_type", "string"),
                ("status", "string"),
                ("last_seen", "date-time"),
                ("last_reading", "date-time"),
                ("online", "boolean"),
                ("silent", "boolean"),
                ("silent_since", "date-time"),
            ),
            geometry="Point",
            open_properties=True,  # one number per metric of its latest readings, and <metric>_time
            roles=(("last_reading", "primary-instant"),),
            sortables=("name", "tenant_id", "device_type", "status", "last_seen", "last_reading", "online"),
            # silent and silent_since are judged in Python (devices/silence.py), the metrics are rows: not columns
            filterables=("name", "tenant_id", "device_type", "status", "last_seen", "last_reading", "online"),
        ),
        Collection(
            "stands",
            "Forest stands (森林簿)",
            "Sub-compartments (林小班) of the forest register: species, age, area, volume, ownership, 保安林.",
            ("species_1", "forest_type", "ownership", "rinpan", "age_class", "density"),
            None,
            partners=False,
            # Every column of the stands table but geom (migration 0030), as to_jsonb writes them.
            properties=(
                ("stand_id", "string"),
                ("rinpan", "integer"),
                ("rinpan_branch", "integer"),
                ("shohan", "integer"),
                ("shohan_branch", "integer"),
                ("species_1", "string"),
                ("species_2", "string"),
                ("species_3", "string"),
                ("age_1", "integer"),
                ("age_2", "integer"),
                ("age_3", "integer"),
                ("age_reference_year", "integer"),
                ("age_class", "integer"),
                ("area_ha", "number"),
                ("volume_m3", "number"),
                ("forest_type", "string"),
                ("ownership", "string"),
                ("protection_forest", "strings"),
                ("site_index", "integer"),
                ("density", "string"),
                ("height_m", "number"),
                ("slope_deg", "number"),
                ("elevation_m", "number"),
                ("attributes", "object"),
                ("source_file", "string"),
                ("source_crs", "string"),
                ("imported_at", "date-time"),
            ),
            geometry="MultiPolygon",
            roles=(("stand_id", "id"),),
            sortables=_STAND_SORTABLES,
            # every column but the arrays and objects (protection_forest, attributes)
            filterables=(
                *("stand_id", "rinpan", "rinpan_branch", "shohan", "shohan_branch"),
                *("species_1", "species_2", "species_3", "age_1", "age_2", "age_3", "age_reference_year"),
                *("age_class", "area_ha", "volume_m3", "forest_type", "ownership", "site_index", "density"),
                *("height_m", "slope_deg", "elevation_m", "source_file", "source_crs", "imported_at"),
            ),
        ),
        Collection(
            "areas",
            "Areas",
            "Configured areas: river reaches, slopes, districts and evacuation zones.",
            ("kind",),
            "last update",
            partners=True,
            properties=(("kind", "string"), ("name", "string"), ("tenant_id", "string"), ("updated_at", "date-time")),
            open_properties=True,  # and the area's own properties
            roles=(("updated_at", "primary-instant"),),
            sortables=("kind", "name", "tenant_id", "updated_at"),
            filterables=("kind", "name", "tenant_id", "updated_at"),
        ),
        Collection(
            "alerts",
            "Alerts",
            "Active alerts by default; pass datetime for the history over an interval.",
            ("state", "hazard", "level", "rule_id", "device_id"),
            "time the alert was raised",
            partners=True,
            properties=(
                ("rule_id", "string"),
                ("subject", "string"),
                ("hazard", "string"),
                ("title_en", "string"),
                ("title_ja", "string"),
                ("device_id", "string"),
                ("tenant_id", "string"),
                ("state", "string"),
                ("level", "integer"),
                ("peak_level", "integer"),
                ("value", "number"),
                ("opened_at", "date-time"),
                ("updated_at", "date-time"),
                ("resolved_at", "date-time"),
                ("closed_at", "date-time"),
            ),
            roles=(("opened_at", "primary-interval-start"), ("resolved_at", "primary-interval-end")),
            filterables=(
                *("rule_id", "subject", "hazard", "title_en", "title_ja", "device_id", "tenant_id", "state"),
                *("level", "peak_level", "value", "opened_at", "updated_at", "resolved_at", "closed_at"),
            ),
            sortables=(
                "rule_id",
                "subject",
                "hazard",
                "title_en",
                "title_ja",
                "device_id",
                "tenant_id",
                "state",
                "level",
                "peak_level",
                "value",
                "opened_at",
                "updated_at",
                "resolved_at",
                "closed_at",
            ),
        ),
    )
}
