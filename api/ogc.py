"""OGC API – Features, Part 1 (Core, GeoJSON, OpenAPI 3.0) and Part 3's queryables: parameters, links and
documents (the collections' JSON Schemas among them). No I/O here.

The router parses the request, calls the geo package for a page of features, and builds answers with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from api import ogc_tiles
from geo import BBox, Collection, FeaturePage, FeatureQuery, parse_bbox
from geo.crs import STORAGE, Crs, UnsupportedCrs, crs_list, parse_crs
from mimamori.errors import ValidationError

GEOJSON = "application/geo+json"
HTML = "text/html"
JSON = "application/json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA_JSON = "application/schema+json"
CRS84 = STORAGE.uri
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REL_QUERYABLES = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REL_SCHEMA = "http://www.opengis.net/def/rel/ogc/1.0/schema"
REL_SORTABLES = "http://www.opengis.net/def/rel/ogc/1.0/sortables"

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    # The pages as HTML for a browser (f=html, or an Accept header preferring it): api/ogc_html.py.
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    # Part 3: /queryables per collection, and each (simple) queryable an equality parameter of its items.
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    # Part 2: crs and bbox-crs on items and one item, Content-Crs, the collections' crs and storageCrs.
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    # Part 8 (draft): sortby over each collection's /sortables.
    "http://www.opengis.net/spec/ogcapi-features-8/1.0/conf/sorting",
    # Part 6 (draft): properties, the features' properties to return.
    "http://www.opengis.net/spec/ogcapi-features-6/1.0/conf/properties",
]
COMMON_PARAMETERS = frozenset({"bbox", "bbox-crs", "crs", "limit", "offset", "datetime", "f"})
# Sorting (Part 8) and property selection (Part 6), which every collection takes.
COMMON_PARAMETERS |= {"sortby", "properties"}
CONFORMANCE += ogc_tiles.CONFORMANCE  # OGC API – Tiles (api/ogc_tiles.py)
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
    unknown = set(params) - COMMON_PARAMETERS - set(collection.queryables)
    if unknown:
        raise ValidationError(
            f"unknown parameter(s) {', '.join(sorted(unknown))}; this collection takes"
            f" {', '.join(sorted(COMMON_PARAMETERS | set(collection.queryables)))}"
        )
    if params.get("f", "json") not in ("json", "geojson", "html"):
        raise ValidationError("f must be json, geojson or html")
    if "bbox-crs" in params and "bbox" not in params:
        raise ValidationError("bbox-crs names the CRS of bbox, and no bbox is given")
    bbox: BBox | None = parse_bbox(params["bbox"], requested_crs(params, "bbox-crs")) if "bbox" in params else None
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
        crs=requested_crs(params, "crs"),
        count=True,  # numberMatched
        sortby=parse_sortby(params["sortby"], collection) if "sortby" in params else (),
        properties=parse_properties(params["properties"], collection) if "properties" in params else None,
    )


def requested_crs(params: Mapping[str, str], name: str) -> Crs:
    """The CRS a ``crs`` or ``bbox-crs`` parameter names (CRS84 when absent), a 400 when it is not served."""
    try:
        return parse_crs(params.get(name), name)
    except UnsupportedCrs as exc:
        raise ValidationError(str(exc)) from None


ITEM_PARAMETERS = frozenset({"crs", "properties", "f"})


def parse_item_query(params: Mapping[str, str], c: Collection) -> tuple[Crs, tuple[str, ...] | None]:
    """One feature's parameters: its CRS and the properties to keep (unknown parameters are refused, as for
    items)."""
    unknown = set(params) - ITEM_PARAMETERS
    if unknown:
        raise ValidationError(
            f"unknown parameter(s) {', '.join(sorted(unknown))}; a feature takes {', '.join(sorted(ITEM_PARAMETERS))}"
        )
    if params.get("f", "json") not in ("json", "geojson", "html"):
        raise ValidationError("f must be json, geojson or html")
    properties = parse_properties(params["properties"], c) if "properties" in params else None
    return requested_crs(params, "crs"), properties


def content_crs(crs: Crs) -> dict[str, str]:
    """Part 2's Content-Crs header: the CRS the body's coordinates are in, as a URI in angle brackets."""
    return {"Content-Crs": f"<{crs.uri}>"}


def parse_sortby(text: str, c: Collection) -> tuple[tuple[str, bool], ...]:
    """``sortby=name,-name2,+name3`` (Part 8): (property, descending) per key, each one of the collection's
    sortables and named once. A ``+`` written unescaped in a URL arrives as a space: ascending too."""
    keys: list[tuple[str, bool]] = []
    for item in text.split(","):
        item = item.strip()
        descending = item.startswith("-")
        name = item[1:].strip() if item[:1] in ("+", "-") else item
        if not name:
            raise ValidationError("sortby needs property names, e.g. sortby=-updated_at,name")
        if name not in c.sortables:
            raise ValidationError(
                f"{c.id} cannot be sorted by {name!r}; its sortables (see /sortables) are {', '.join(c.sortables)}"
            )
        if any(name == seen for seen, _ in keys):
            raise ValidationError(f"sortby names {name!r} more than once")
        keys.append((name, descending))
    return tuple(keys)


def parse_properties(text: str, c: Collection) -> tuple[str, ...]:
    """``properties=a,b`` (Part 6): only those properties in each feature; empty, none (the id and geometry
    stay). Each must be one of the collection's, but any name may be asked of a collection whose features carry
    more (open properties: a device's metrics, an area's own), which a feature without it simply lacks."""
    names = tuple(name.strip() for name in text.split(",")) if text.strip() else ()
    if any(not name for name in names):
        raise ValidationError("properties has an empty name")
    if not c.open_properties:
        known = c.property_types()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValidationError(
                f"{c.id} has no property {', '.join(unknown)}; it has {', '.join(name for name, _ in c.properties)}"
            )
    return tuple(dict.fromkeys(names))  # each once


def with_format(href: str, f: str) -> str:
    """``href`` with its ``f`` parameter set to ``f`` (the other parameters kept, in their order)."""
    parts = urlsplit(href)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "f"] + [("f", f)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def html_alternate(href: str, title: str = "This document as HTML") -> dict[str, str]:
    """The link from a JSON document to its HTML page (Part 1, /req/html)."""
    return {"rel": "alternate", "type": HTML, "title": title, "href": with_format(href, "html")}


def landing(base: str) -> dict[str, object]:
    return {
        "title": "Mimamori 見守り",
        "description": "Toyota City's IoT data hub: sensors, alerts, forest stands and areas as OGC API Features.",
        "links": [
            {"rel": "self", "type": JSON, "title": "This document", "href": f"{base}/ogc"},
            html_alternate(f"{base}/ogc"),
            {"rel": "service-desc", "type": OPENAPI, "title": "The API definition", "href": f"{base}/openapi.json"},
            {"rel": "service-doc", "type": "text/html", "title": "The API documentation", "href": f"{base}/docs"},
            {"rel": "conformance", "type": JSON, "title": "Conformance classes", "href": f"{base}/ogc/conformance"},
            {"rel": "data", "type": JSON, "title": "Collections", "href": f"{base}/ogc/collections"},
            *ogc_tiles.landing_links(base),
        ],
    }


def conformance_document(base: str) -> dict[str, object]:
    href = f"{base}/ogc/conformance"
    return {
        "links": [{"rel": "self", "type": JSON, "title": "Conformance classes", "href": href}, html_alternate(href)],
        "conformsTo": CONFORMANCE,
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
        "crs": crs_list(),  # Part 2: every CRS items may be asked in (crs=) and a bbox given in (bbox-crs=)
        "storageCrs": CRS84,
        "links": [
            {"rel": "self", "type": JSON, "title": c.title, "href": href},
            html_alternate(href),
            {"rel": "items", "type": GEOJSON, "title": f"{c.title} (GeoJSON)", "href": f"{href}/items"},
            {"rel": REL_QUERYABLES, "type": SCHEMA_JSON, "title": "Queryables", "href": f"{href}/queryables"},
            {"rel": REL_SCHEMA, "type": SCHEMA_JSON, "title": "Schema of the features", "href": f"{href}/schema"},
            {"rel": REL_SORTABLES, "type": SCHEMA_JSON, "title": "Sortables", "href": f"{href}/sortables"},
            # A GeoJSON Feature's JSON Schema, which GDAL's OAPIF driver types its fields from (it looks for
            # this spelling; relation types are compared without regard to case, RFC 8288 §2.1.1).
            {
                "rel": "describedBy",
                "type": SCHEMA_JSON,
                "title": "JSON Schema of a GeoJSON feature",
                "href": f"{href}/feature-schema",
            },
            *ogc_tiles.collection_links(base, c.id),
        ],
    }
    if extent is not None:
        doc["extent"] = {"spatial": {"bbox": [list(extent)], "crs": CRS84}}
    return doc


def collections_document(base: str, docs: list[dict[str, object]]) -> dict[str, object]:
    return {
        "links": [
            {"rel": "self", "type": JSON, "title": "Collections", "href": f"{base}/ogc/collections"},
            html_alternate(f"{base}/ogc/collections"),
        ],
        "crs": crs_list(),  # Part 2's global list (each collection repeats it)
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
        html_alternate(url(q.offset), "This page as HTML"),
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
            html_alternate(f"{href}/{feature_id}", "This feature as HTML"),
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
    """The collection's queryables: its geometry (bbox filters it) and each property its items take as an
    equality parameter (``?species_1=スギ``), typed as the property is."""
    types = c.property_types()
    properties: dict[str, object] = {"geometry": _geometry_schema(c)}
    for name in c.queryables:
        properties[name] = {"title": name, **_property_schema(types[name])}
    doc = _schema_head(
        f"{base}/ogc/collections/{c.id}/queryables",
        f"{c.title}: queryables",
        "Properties the items may be filtered by: the geometry with bbox, the others as query parameters (equality).",
    )
    return doc | {"properties": properties, "additionalProperties": False}


def sortables_document(base: str, c: Collection) -> dict[str, object]:
    """The properties the collection's items may be sorted by (Part 8's ``sortby``), typed as the properties are."""
    types = c.property_types()
    properties = {name: {"title": name, **_property_schema(types[name])} for name in c.sortables}
    doc = _schema_head(
        f"{base}/ogc/collections/{c.id}/sortables",
        f"{c.title}: sortables",
        "Properties the items may be sorted by: sortby=name,-name (descending); nulls sort last ascending and"
        " first descending; the collection's own order, ending in the id, breaks ties.",
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
