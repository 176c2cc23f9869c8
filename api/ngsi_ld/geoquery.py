"""NGSI-LD geo-queries (``georel``, ``geometry``, ``coordinates``, ``geoproperty``; clause 4.10) as a cql2-json
predicate over an entity type's ``location``, which the store's owners translate into PostGIS. Pure.

``near`` is answered against a geodesic circle (WGS 84) drawn with 256 vertices on the circle itself: a point
within ``maxDistance`` but in one of the thin slivers between circle and polygon (at most 0.008 % of the radius,
8 cm in a kilometre) is missed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import shapely.geometry
from pyproj import Geod
from shapely.errors import ShapelyError

from api.ngsi_ld.problems import bad_request

GEOMETRIES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
_RELATIONS = {
    "within": "s_within",
    "contains": "s_contains",
    "intersects": "s_intersects",
    "equals": "s_equals",
    "disjoint": "s_disjoint",
    "overlaps": "s_overlaps",
}
_NEAR = re.compile(r"^near;(maxDistance|minDistance)==(\d+(?:\.\d+)?)$")
_WGS84 = Geod(ellps="WGS84")
CIRCLE_VERTICES = 256
MAX_DISTANCE_M = 20_000_000  # half the equator: beyond it every place on earth is "near"
MAX_COORDINATES_LENGTH = 100_000
GEO_PARAMETERS = ("georel", "geometry", "coordinates", "geoproperty")


def circle(lon: float, lat: float, radius_m: float) -> dict[str, Any]:
    """A geodesic circle as a GeoJSON polygon (lon, lat), its vertices ``radius_m`` from the centre."""
    azimuths = [360.0 * i / CIRCLE_VERTICES for i in range(CIRCLE_VERTICES)]
    lons, lats, _ = _WGS84.fwd([lon] * CIRCLE_VERTICES, [lat] * CIRCLE_VERTICES, azimuths, [radius_m] * CIRCLE_VERTICES)
    ring = [[round(x, 9), round(y, 9)] for x, y in zip(lons, lats, strict=True)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def _geometry(kind: str, coordinates_text: str) -> dict[str, Any]:
    if kind not in GEOMETRIES:
        raise bad_request(f"geometry must be one of {', '.join(GEOMETRIES)}, not {kind!r}")
    if len(coordinates_text) > MAX_COORDINATES_LENGTH:
        raise bad_request(f"coordinates are longer than {MAX_COORDINATES_LENGTH} characters")
    try:
        coordinates = json.loads(coordinates_text)
    except ValueError:
        raise bad_request(f"coordinates are not a JSON array: {coordinates_text[:80]!r}") from None
    geojson = {"type": kind, "coordinates": coordinates}
    _check_positions(coordinates, kind)
    try:
        shape = shapely.geometry.shape(geojson)
    except (ShapelyError, ValueError, TypeError, IndexError, KeyError, AttributeError):
        raise bad_request(f"coordinates do not make a {kind}") from None
    if shape.is_empty:
        raise bad_request(f"coordinates make an empty {kind}")
    if not shape.is_valid:
        raise bad_request(f"the {kind} is not valid: {shapely.is_valid_reason(shape)}")
    return geojson


def _check_positions(node: Any, kind: str) -> None:
    if isinstance(node, list) and node and all(isinstance(v, int | float) and not isinstance(v, bool) for v in node):
        if len(node) not in (2, 3) or not all(math.isfinite(v) for v in node):
            raise bad_request(f"a position of the {kind} is not [longitude, latitude]")
        if not (-180 <= node[0] <= 180 and -90 <= node[1] <= 90):
            raise bad_request(f"position {node} is off the earth: longitude −180…180, latitude −90…90")
        return
    if not isinstance(node, list) or not node:
        raise bad_request(f"coordinates do not make a {kind}")
    for child in node:
        _check_positions(child, kind)


def parse_geoq(params: Mapping[str, str]) -> dict[str, Any] | None:
    """The geo-query of a request as cql2-json over ``geometry`` (the entity's location); None when it has none."""
    given = [name for name in GEO_PARAMETERS if name in params]
    if not given:
        return None
    missing = [name for name in ("georel", "geometry", "coordinates") if name not in params]
    if missing:
        raise bad_request(f"a geo-query needs georel, geometry and coordinates; missing: {', '.join(missing)}")
    if params.get("geoproperty", "location") != "location":
        raise bad_request("geoproperty: only location is a GeoProperty of this hub's entities")
    georel = params["georel"].strip()
    geometry = _geometry(params["geometry"].strip(), params["coordinates"])
    target = {"property": "geometry"}
    if georel.startswith("near"):
        near = _NEAR.match(georel)
        if near is None:
            raise bad_request(f"georel {georel!r} is not like near;maxDistance==1000 or near;minDistance==10")
        if geometry["type"] != "Point":
            raise bad_request("near needs geometry=Point")
        distance = float(near[2])
        if distance > MAX_DISTANCE_M:
            raise bad_request(f"the distance must be at most {MAX_DISTANCE_M} m")
        lon, lat = geometry["coordinates"][:2]
        inside = {"op": "s_intersects", "args": [target, circle(lon, lat, distance)]}
        if near[1] == "minDistance":
            return {"op": "not", "args": [inside]} if distance > 0 else True  # type: ignore[return-value]
        if distance == 0:
            return {"op": "s_intersects", "args": [target, geometry]}
        return inside
    op = _RELATIONS.get(georel)
    if op is None:
        raise bad_request(f"georel must be near;maxDistance==…, near;minDistance==…, {', '.join(_RELATIONS)}")
    return {"op": op, "args": [target, geometry]}
