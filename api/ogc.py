"""OGC API – Features, Part 1 (Core, GeoJSON, OpenAPI 3.0) and Part 3's queryables: parameters, links and
documents (the collections' JSON Schemas among them). No I/O here.

The router parses the request, calls the geo package for a page of features, and builds answers with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

from geo import BBox, Collection, FeaturePage, FeatureQuery, parse_bbox
from geo import cql2 as cql
from mimamori.errors import ValidationError

GEOJSON = "application/geo+json"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA_JSON = "application/schema+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    # Part 3: /queryables per collection, and each (simple) queryable an equality parameter of its items.
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    # Part 3's filter with CQL2 (geo/cql2.py says which classes of CQL2)
    *cql.CONFORMANCE,
]
COMMON_PARAMETERS = frozenset({"bbox", "limit", "offset", "datetime", "f"})
FILTER_PARAMETERS = frozenset({"filter", "filter-lang", "filter-crs"})
# Part 3's parameters as the API definition documents them (/req/filter/filter-param and the others).
FILTER_OPENAPI = [
    {
        "name": "filter",
        "in": "query",
        "required": False,
        "description": "A CQL2 filter over the collection's queryables, e.g. species_1 = 'スギ' AND volume_m3 > 500",
        "schema": {"type": "string"},
    },
    {
        "name": "filter-lang",
        "in": "query",
        "required": False,
        "description": "The encoding of filter",
        "schema": {"type": "string", "enum": list(cql.LANGUAGES), "default": "cql2-text"},
    },
    {
        "name": "filter-crs",
        "in": "query",
        "required": False,
        "description": "The CRS of the filter's geometries",
        "schema": {"type": "string", "format": "uri", "enum": [CRS84], "default": CRS84},
    },
]
# Beyond any collection, and small enough that offset + limit + 1 stays a PostgreSQL bigint.
MAX_OFFSET = 2**62


def parse_datetime(text: str) -> tuple[datetime | None, datetime | None]:
    """An instant or a closed interval (``a/b``, ``../b``, ``a/..``); times without a zone are taken as UTC."""

    def one(part: str) -> datetime | None:
        part = part.strip()
        if part in ("", ".."):
            return None
        try:
            value = datetime.fromisoformat(part)
        except ValueError:
            raise ValidationError(f"datetime {part!r} is not RFC 3339 (e.g. 2026-11-25T09:00:00Z)") from None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    if "/" not in text:
        instant = one(text)
        if instant is None:
            raise ValidationError("datetime needs an instant or an interval")
        return instant, instant
    left, _, right = text.partition("/")
    start, end = one(left), one(right)
    if start is not None and end is not None and start > end:
        raise ValidationError("datetime interval ends before it starts")
    return start, end


def parse_items_query(
    params: Mapping[str, str],
    collection: Collection,
    *,
    default_limit: int,
    max_limit: int,
    tenant_id: str | None,
) -> FeatureQuery:
    """Validate the items parameters (unknown ones are refused, as Part 1 asks)."""
    accepted = COMMON_PARAMETERS | FILTER_PARAMETERS | set(collection.filterable())
    unknown = set(params) - accepted
    if unknown:
        raise ValidationError(
            f"unknown parameter(s) {', '.join(sorted(unknown))}; this collection takes {', '.join(sorted(accepted))}"
        )
    if params.get("f", "json") not in ("json", "geojson"):
        raise ValidationError("f must be json or geojson")
    bbox: BBox | None = parse_bbox(params["bbox"]) if "bbox" in params else None
    try:
        limit = int(params.get("limit", default_limit))
        offset = int(params.get("offset", 0))
    except ValueError:
        raise ValidationError("limit and offset must be whole numbers") from None
    if limit < 1:
        raise ValidationError("limit must be at least 1")
    if offset < 0:
        raise ValidationError("offset must not be negative")
    if offset > MAX_OFFSET:
        raise ValidationError(f"offset must be at most {MAX_OFFSET}")
    start = end = None
    if "datetime" in params:
        start, end = parse_datetime(params["datetime"])
    filters = {name: params[name] for name in collection.queryables if name in params}
    for name in ("level", "rinpan", "age_class"):
        if name in filters and not filters[name].lstrip("-").isdigit():
            raise ValidationError(f"{name} must be a whole number")
    return FeatureQuery(
        bbox=bbox,
        start=start,
        end=end,
        filters=filters,
        limit=min(limit, max_limit),  # Part 1 lets a server cap the page size
        offset=offset,
        tenant_id=tenant_id,
        count=True,  # numberMatched
        filter=items_filter(params, collection),
    )


def items_filter(params: Mapping[str, str], collection: Collection) -> object | None:
    """The CQL2 ``filter`` (Part 3) and the equality parameters of filterables that are not queryables of old
    (those are ``FeatureQuery.filters``), as one cql2-json condition; checked against the collection's properties
    here, so that every owner's translation of it succeeds."""
    lang = params.get("filter-lang", "cql2-text")
    if lang not in cql.LANGUAGES:
        raise ValidationError(f"filter-lang must be one of {', '.join(cql.LANGUAGES)}")
    if params.get("filter-crs", CRS84) != CRS84:
        raise ValidationError(f"filter-crs must be {CRS84} (the only CRS of a filter's geometries yet)")
    parts: list[object] = []
    if "filter" in params:
        parts.append(cql.parse_filter(params["filter"], lang))
    types = collection.property_types()
    for name in collection.filterable():
        if name in params and name not in collection.queryables:
            parts.append(cql.equality(name, types[name], params[name]))
    found = cql.conjunction(parts)
    if found is not None:
        cql.check(found, collection)
    return found


def landing(base: str) -> dict[str, object]:
    return {
        "title": "Mimamori 見守り",
        "description": "Toyota City's IoT data hub: sensors, alerts, forest stands and areas as OGC API Features.",
        "links": [
            {"rel": "self", "type": JSON, "title": "This document", "href": f"{base}/ogc"},
            {"rel": "service-desc", "type": OPENAPI, "title": "The API definition", "href": f"{base}/openapi.json"},
            {"rel": "service-doc", "type": "text/html", "title": "The API documentation", "href": f"{base}/docs"},
            {"rel": "conformance", "type": JSON, "title": "Conformance classes", "href": f"{base}/ogc/conformance"},
            {"rel": "data", "type": JSON, "title": "Collections", "href": f"{base}/ogc/collections"},
        ],
    }


def collection_document(
    base: str, c: Collection, extent: tuple[float, float, float, float] | None
) -> dict[str, object]:
    href = f"{base}/ogc/collections/{c.id}"
    doc: dict[str, object] = {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "crs": [CRS84],
        "links": [
            {"rel": "self", "type": JSON, "title": c.title, "href": href},
            {"rel": "items", "type": GEOJSON, "title": f"{c.title} (GeoJSON)", "href": f"{href}/items"},
            {"rel": REL_QUERYABLES, "type": SCHEMA_JSON, "title": "Queryables", "href": f"{href}/queryables"},
            {"rel": REL_SCHEMA, "type": SCHEMA_JSON, "title": "Schema of the features", "href": f"{href}/schema"},
            # A GeoJSON Feature's JSON Schema, which GDAL's OAPIF driver types its fields from (it looks for
            # this spelling; relation types are compared without regard to case, RFC 8288 §2.1.1).
            {
                "rel": "describedBy",
                "type": SCHEMA_JSON,
                "title": "JSON Schema of a GeoJSON feature",
                "href": f"{href}/feature-schema",
            },
        ],
    }
    if extent is not None:
        doc["extent"] = {"spatial": {"bbox": [list(extent)], "crs": CRS84}}
    return doc


def collections_document(base: str, docs: list[dict[str, object]]) -> dict[str, object]:
    return {
        "links": [{"rel": "self", "type": JSON, "title": "Collections", "href": f"{base}/ogc/collections"}],
        "collections": docs,
    }


def items_document(
    base: str, c: Collection, q: FeatureQuery, page: FeaturePage, params: Mapping[str, str], now: datetime
) -> dict[str, object]:
    href = f"{base}/ogc/collections/{c.id}/items"
    kept = {k: v for k, v in params.items() if k not in ("offset", "limit")}

    def url(offset: int) -> str:
        return f"{href}?{urlencode({**kept, 'limit': q.limit, 'offset': offset})}"

    links = [
        {"rel": "self", "type": GEOJSON, "title": "This page", "href": url(q.offset)},
        {"rel": "collection", "type": JSON, "title": c.title, "href": f"{base}/ogc/collections/{c.id}"},
    ]
    if page.more:
        links.append({"rel": "next", "type": GEOJSON, "title": "Next page", "href": url(q.offset + q.limit)})
    if q.offset > 0:
        links.append(
            {"rel": "prev", "type": GEOJSON, "title": "Previous page", "href": url(max(0, q.offset - q.limit))}
        )
    doc: dict[str, object] = {
        "type": "FeatureCollection",
        "timeStamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if page.matched is not None:
        doc["numberMatched"] = page.matched
    doc["numberReturned"] = len(page.features)
    doc["features"] = [f.as_geojson() for f in page.features]
    doc["links"] = links
    return doc


def item_document(base: str, c: Collection, feature: dict[str, object], feature_id: str) -> dict[str, object]:
    href = f"{base}/ogc/collections/{c.id}/items"
    return feature | {
        "links": [
            {"rel": "self", "type": GEOJSON, "title": "This feature", "href": f"{href}/{feature_id}"},
            {"rel": "collection", "type": JSON, "title": c.title, "href": f"{base}/ogc/collections/{c.id}"},
        ]
    }


# --- the collections' JSON Schemas: queryables (Part 3), the features' schema (Part 5 style), a GeoJSON feature's --

_GEOMETRY_FORMATS = {"Point": "geometry-point", "MultiPolygon": "geometry-multipolygon", "Geometry": "geometry-any"}


def _property_schema(kind: str) -> dict[str, object]:
    if kind == "date-time":
        return {"type": "string", "format": "date-time"}
    if kind == "strings":
        return {"type": "array", "items": {"type": "string"}}
    return {"type": kind}  # string, integer, number (a double), boolean, object


def _geometry_schema(c: Collection) -> dict[str, object]:
    return {
        "title": "geometry",
        "$ref": f"https://geojson.org/schema/{c.geometry}.json",
        "format": _GEOMETRY_FORMATS[c.geometry],
        "x-ogc-role": "primary-geometry",
    }


def _schema_head(href: str, title: str, description: str) -> dict[str, object]:
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": href, "type": "object", "title": title, "description": description}


def queryables_document(base: str, c: Collection) -> dict[str, object]:
    """The collection's queryables: its geometry (bbox and a filter's spatial functions filter it) and each
    property a CQL2 filter may name, which its items also take as an equality parameter (``?species_1=スギ``),
    typed as the property is."""
    types = c.property_types()
    properties: dict[str, object] = {"geometry": _geometry_schema(c)}
    for name in c.filterable():
        properties[name] = {"title": name, **_property_schema(types[name])}
    doc = _schema_head(
        f"{base}/ogc/collections/{c.id}/queryables",
        f"{c.title}: queryables",
        "Properties the items may be filtered by: in a CQL2 filter (filter, filter-lang cql2-text or cql2-json),"
        " the geometry also with bbox, the others also as query parameters (equality).",
    )
    return doc | {"properties": properties, "additionalProperties": False}


def schema_document(base: str, c: Collection) -> dict[str, object]:
    """The features' properties and geometry with their types (OGC API – Features Part 5 style)."""
    roles = dict(c.roles)
    properties: dict[str, object] = {}
    for name, kind in c.properties:
        properties[name] = {"title": name, **_property_schema(kind)} | (
            {"x-ogc-role": roles[name]} if name in roles else {}
        )
    properties["geometry"] = _geometry_schema(c)
    doc = _schema_head(f"{base}/ogc/collections/{c.id}/schema", c.title, c.description)
    return doc | {"properties": properties, "additionalProperties": c.open_properties}


def feature_schema_document(base: str, c: Collection) -> dict[str, object]:
    """A GeoJSON feature of the collection as a JSON Schema: the `describedBy` document GDAL types fields from."""
    doc = _schema_head(f"{base}/ogc/collections/{c.id}/feature-schema", f"A feature of {c.title}", c.description)
    return doc | {
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "string"},
            "geometry": {"$ref": f"https://geojson.org/schema/{c.geometry}.json"},
            "properties": {
                "type": "object",
                "properties": {name: _property_schema(kind) for name, kind in c.properties},
                "additionalProperties": c.open_properties,
            },
        },
    }
