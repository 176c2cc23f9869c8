"""The hub's entities as NGSI-LD sees them: their types, URN ids, attributes, and rendering from the features the
store already answers (geo/features.py's collections). Pure.

- ``Device`` (Smart Data Models dataModel.Device): a sensor, its registry facts and its latest value of every
  metric as a Property with ``observedAt`` and ``unitCode`` (UN/CEFACT). One entity carries both what SDM splits
  into ``Device`` and ``DeviceMeasurement``: the hub has one latest value per device and metric, and a client reads
  a sensor in one request. The temporal API gives the history of the same attributes.
- ``Alert`` (Smart Data Models dataModel.Alert): a hazard alert, ``alertSource`` a Relationship to its device.
- ``ForestStand`` (the hub's own: no Smart Data Model describes a forest register's sub-compartment, 林小班): a
  stand with its register columns and its outline as ``location``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from api.ngsi_ld.problems import bad_request
from api.ngsi_ld.qlang import Attribute

CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CONTEXT_PATH = "/ngsi-ld/v1/jsonldContexts/mimamori.jsonld"
JSONLD = "application/ld+json"
GEOJSON = "application/geo+json"
JSON = "application/json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
SDM = "https://smartdatamodels.org/"
VOCAB = "https://mimamori.city/ngsi-ld/vocab#"  # a name, never fetched: the hub serves every term's meaning itself

# UN/CEFACT Recommendation 20 codes of the catalogue's units (devices/catalogue.yaml); others go as unitText.
UNIT_CODES = {
    "m": "MTR",
    "cm": "CMT",
    "mm": "MMT",
    "um": "4H",
    "V": "VLT",
    "Cel": "CEL",
    "deg": "DD",
    "m/s": "MTS",
    "%": "P1",
    "%RH": "P1",
}


@dataclass(frozen=True)
class EntityType:
    name: str
    iri: str
    collection: str  # the feature collection that stores it (geo/features.py)
    attributes: Mapping[str, Attribute]  # what q may name, and what is rendered, in this order
    rendered_only: tuple[str, ...] = ()  # more attributes shown and selectable with attrs, not queryable

    @property
    def id_prefix(self) -> str:
        return f"urn:ngsi-ld:{self.name}:"

    def urn(self, local_id: str) -> str:
        return self.id_prefix + local_id


def _attrs(*rows: tuple[str, str, str] | tuple[str, str, str, str]) -> dict[str, Attribute]:
    return {row[0]: Attribute(row[1], row[2], row[3] if len(row) > 3 else None) for row in rows}  # type: ignore[misc]


DEVICE = EntityType(
    "Device",
    SDM + "dataModel.Device/Device",
    "devices",
    _attrs(
        ("name", "name", "string"),
        ("deviceCategory", "device_type", "string"),
        ("deviceState", "status", "string"),
        ("owner", "tenant_id", "string"),
        ("dateLastValueReported", "last_reading", "date-time"),
        ("dateLastSeen", "last_seen", "date-time"),
        ("online", "online", "boolean"),
    ),
    rendered_only=("silent",),
)
ALERT = EntityType(
    "Alert",
    SDM + "dataModel.Alert/Alert",
    "alerts",
    _attrs(
        ("name", "title_en", "string"),
        ("alternateName", "title_ja", "string"),
        ("category", "hazard", "string"),
        ("subCategory", "rule_id", "string"),
        ("warningLevel", "level", "integer"),
        ("peakWarningLevel", "peak_level", "integer"),
        ("alertState", "state", "string"),
        ("observedValue", "value", "number"),
        ("owner", "tenant_id", "string"),
        ("alertSource", "device_id", "string", DEVICE.id_prefix),
        ("dateIssued", "opened_at", "date-time"),
        ("dateModified", "updated_at", "date-time"),
        ("validTo", "resolved_at", "date-time"),
        ("dateClosed", "closed_at", "date-time"),
    ),
    rendered_only=("severity",),
)
_STAND_KINDS = {
    "stand_id": "string",
    "rinpan": "integer",
    "rinpan_branch": "integer",
    "shohan": "integer",
    "shohan_branch": "integer",
    "species_1": "string",
    "species_2": "string",
    "species_3": "string",
    "age_1": "integer",
    "age_2": "integer",
    "age_3": "integer",
    "age_reference_year": "integer",
    "age_class": "integer",
    "area_ha": "number",
    "volume_m3": "number",
    "forest_type": "string",
    "ownership": "string",
    "site_index": "integer",
    "density": "string",
    "height_m": "number",
    "slope_deg": "number",
    "elevation_m": "number",
}
STAND = EntityType(
    "ForestStand",
    VOCAB + "ForestStand",
    "stands",
    {name: Attribute(name, kind) for name, kind in _STAND_KINDS.items()},
    rendered_only=("protection_forest",),
)
TYPES: dict[str, EntityType] = {t.name: t for t in (DEVICE, ALERT, STAND)}
_BY_IRI = {t.iri: t for t in TYPES.values()}

# Severity of SDM's Alert from the national five-level warning scale (警戒レベル 1–5).
SEVERITY = {1: "informational", 2: "low", 3: "medium", 4: "high", 5: "critical"}


def entity_type(name: str) -> EntityType:
    """A type by its short name or its full IRI; a 400 for one the hub does not hold."""
    found = TYPES.get(name) or _BY_IRI.get(name)
    if found is None:
        raise bad_request(f"unknown entity type {name!r}; this hub holds {', '.join(TYPES)}")
    return found


def parse_types(text: str) -> list[EntityType]:
    """``type=A,B``: each type the hub holds once, in the order given. A type it does not hold matches no entity
    (as in any broker: a query names what it looks for, and there is none of it), so it is left out."""
    out: list[EntityType] = []
    for part in text.split(","):
        t = TYPES.get(part.strip()) or _BY_IRI.get(part.strip())
        if t is not None and t not in out:
            out.append(t)
    return out


def split_urn(urn: str) -> tuple[EntityType, str]:
    """The type and local id of an entity id (urn:ngsi-ld:<Type>:<id>); a 400 when it is not one of the hub's."""
    if not urn.startswith("urn:ngsi-ld:"):
        raise bad_request(f"{urn!r} is not an entity id; they are like urn:ngsi-ld:Device:<device id>")
    type_name, _, local = urn[len("urn:ngsi-ld:") :].partition(":")
    t = TYPES.get(type_name)
    if t is None or not local:
        raise bad_request(f"{urn!r} names no entity type of this hub ({', '.join(TYPES)})")
    return t, local


def context_document(base: str) -> dict[str, Any]:
    """The hub's @context: the NGSI-LD core terms it uses and every term of its entity types, with no remote
    context to fetch (a client offline, or behind the city's firewall, expands everything from this alone)."""
    ngsi = "https://uri.etsi.org/ngsi-ld/"
    terms: dict[str, Any] = {
        "id": "@id",
        "type": "@type",
        "value": ngsi + "hasValue",
        "object": {"@id": ngsi + "hasObject", "@type": "@id"},
        "Property": ngsi + "Property",
        "Relationship": ngsi + "Relationship",
        "GeoProperty": ngsi + "GeoProperty",
        "DateTime": ngsi + "DateTime",
        "observedAt": {"@id": ngsi + "observedAt", "@type": "DateTime"},
        "createdAt": {"@id": ngsi + "createdAt", "@type": "DateTime"},
        "modifiedAt": {"@id": ngsi + "modifiedAt", "@type": "DateTime"},
        "unitCode": ngsi + "unitCode",
        "location": ngsi + "location",
        "values": {"@id": ngsi + "hasValues", "@container": "@list"},
        "avg": {"@id": ngsi + "avg", "@container": "@list"},
        "min": {"@id": ngsi + "min", "@container": "@list"},
        "max": {"@id": ngsi + "max", "@container": "@list"},
        "sum": {"@id": ngsi + "sum", "@container": "@list"},
        "totalCount": {"@id": ngsi + "totalCount", "@container": "@list"},
        "Point": "https://purl.org/geojson/vocab#Point",
        "Polygon": "https://purl.org/geojson/vocab#Polygon",
        "MultiPolygon": "https://purl.org/geojson/vocab#MultiPolygon",
        "coordinates": {"@id": "https://purl.org/geojson/vocab#coordinates", "@container": "@list"},
        "unitText": VOCAB + "unitText",
        "metric": VOCAB + "metric",
    }
    for t in TYPES.values():
        terms[t.name] = t.iri
        model = t.iri.rsplit("/", 1)[0] + "/" if t.iri.startswith(SDM) else VOCAB
        for name in (*t.attributes, *t.rendered_only):
            terms.setdefault(name, model + name)
    return {"@context": terms, "@id": base + CONTEXT_PATH}


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"@type": "DateTime", "@value": value.isoformat().replace("+00:00", "Z")}
    if isinstance(value, date):
        return {"@type": "Date", "@value": value.isoformat()}
    return value


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": _scalar(value)}


@dataclass(frozen=True)
class Selection:
    """Which attributes to render (attrs; None: every one) and how (options=keyValues: values only)."""

    attrs: frozenset[str] | None = None
    key_values: bool = False

    def wants(self, name: str) -> bool:
        return self.attrs is None or name in self.attrs


def check_attrs(names: Iterable[str], types: Iterable[EntityType], metrics: Iterable[str]) -> frozenset[str]:
    """``attrs``: each name an attribute of one of the types (a device's metrics among them); a 400 otherwise."""
    known: set[str] = {"location"}
    for t in types:
        known |= set(t.attributes) | set(t.rendered_only)
        if t is DEVICE:
            known |= set(metrics)
    chosen = frozenset(n.strip() for n in names if n.strip())
    unknown = sorted(chosen - known)
    if unknown:
        raise bad_request(f"unknown attribute(s) {', '.join(unknown)} in attrs")
    return chosen


def render(
    t: EntityType,
    feature: Mapping[str, Any],
    selection: Selection,
    units: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """One entity (normalized, or keyValues) from a feature ``{"id", "geometry", "properties"}``."""
    props: Mapping[str, Any] = feature["properties"]
    entity: dict[str, Any] = {"id": t.urn(str(feature["id"])), "type": t.name}
    attributes: dict[str, Any] = {}
    for name, attr in t.attributes.items():
        value = props.get(attr.source)
        if value is None or not selection.wants(name):
            continue
        if attr.relationship is not None:
            attributes[name] = {"type": "Relationship", "object": attr.relationship + str(value)}
        else:
            attributes[name] = _property(value)
    if t is DEVICE:
        if selection.wants("silent") and props.get("silent") is not None:
            attributes["silent"] = _property(props["silent"])
            if props.get("silent_since") is not None:
                attributes["silent"]["observedAt"] = _scalar(props["silent_since"])["@value"]
        unit_of = (units or {}).get(str(props.get("device_type")), {})
        for metric, at, value in device_metrics(props):
            if selection.wants(metric):
                attributes[metric] = measurement(value, at, unit_of.get(metric))
    elif t is ALERT:
        level = props.get("level")
        if selection.wants("severity") and isinstance(level, int) and level in SEVERITY:
            attributes["severity"] = _property(SEVERITY[level])
    elif t is STAND and selection.wants("protection_forest") and props.get("protection_forest"):
        attributes["protection_forest"] = _property(list(props["protection_forest"]))
    if feature.get("geometry") is not None and selection.wants("location"):
        attributes["location"] = {"type": "GeoProperty", "value": feature["geometry"]}
    if selection.key_values:
        attributes = {name: _key_value(a) for name, a in attributes.items()}
    entity.update(attributes)
    return entity


def _key_value(attribute: dict[str, Any]) -> Any:
    if attribute["type"] == "Relationship":
        return attribute["object"]
    return attribute["value"]


def measurement(value: float, at: datetime | str | None, unit: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "Property", "value": value}
    if at is not None:
        out["observedAt"] = at.isoformat().replace("+00:00", "Z") if isinstance(at, datetime) else at
    if unit is not None:
        code = UNIT_CODES.get(unit)
        if code:
            out["unitCode"] = code
        else:
            out["unitText"] = {"type": "Property", "value": unit}
    return out


_DEVICE_OWN = frozenset(("name", "tenant_id", "device_type", "status", "last_seen", "last_reading", "online"))
_DEVICE_OWN |= {"silent", "silent_since"}


def device_metrics(props: Mapping[str, Any]) -> list[tuple[str, Any, float]]:
    """A device feature's latest readings: (metric, time, value) from its ``<metric>`` and ``<metric>_time``."""
    out = []
    for name, value in props.items():
        if name in _DEVICE_OWN or name.endswith("_time") or isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out.append((name, props.get(f"{name}_time"), float(value)))
    return out


def geojson_feature(entity: Mapping[str, Any], context: str | None) -> dict[str, Any]:
    """An entity in application/geo+json (clause 4.5.16): its location the geometry, its attributes properties."""
    properties = {k: v for k, v in entity.items() if k not in ("id", "location")}
    location = entity.get("location")
    geometry = location.get("value") if isinstance(location, dict) and "type" in location else location
    out: dict[str, Any] = {"id": entity["id"], "type": "Feature", "geometry": geometry, "properties": properties}
    if context is not None:
        out["@context"] = context
    return out
