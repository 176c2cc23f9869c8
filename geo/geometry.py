"""Geometry helpers: repairing register polygons, and bounding boxes as the API receives them. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

import shapely
from shapely.geometry import GeometryCollection, MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from geo.crs import STORAGE, Crs, bbox_to_storage_order
from mimamori.errors import ValidationError


@dataclass(frozen=True)
class BBox:
    """A WGS84 box, lon/lat degrees, west < east and south < north (the antimeridian is not crossed); or, when
    ``crs`` is a projected one (``bbox-crs``), a box in its metres, west/south the smallest easting/northing."""

    west: float
    south: float
    east: float
    north: float
    crs: Crs = STORAGE

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.west, self.south, self.east, self.north)


def parse_bbox(text: str, crs: Crs = STORAGE) -> BBox:
    """``minlon,minlat,maxlon,maxlat`` (or the six-number form with heights, which are ignored), in ``crs``'s own
    axis order (a ``bbox-crs``: EPSG:4326 latitude first, a JGD2011 zone X = northing first).

    Empty boxes (zero width or height) and inverted ones are refused: they are almost always a client's bug.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 6):
        raise ValidationError("bbox needs 4 numbers: minlon,minlat,maxlon,maxlat")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValidationError(f"bbox has a value that is not a number: {text!r}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise ValidationError("bbox values must be finite numbers")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    west, south, east, north = bbox_to_storage_order(crs, (numbers[0], numbers[1], numbers[2], numbers[3]))
    if crs.geographic:
        if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
            raise ValidationError("bbox is outside -180..180 / -90..90 degrees")
        # JGD2011 and WGS 84 degrees differ by centimetres (PostGIS transforms 6668 to 4326 unchanged).
        crs = STORAGE
    if west >= east or south >= north:
        raise ValidationError(
            "bbox is empty or inverted: minlon must be below maxlon and minlat below maxlat"
            " (boxes across the antimeridian are not supported)"
        )
    return BBox(west, south, east, north, crs)


def check_point(lon: float, lat: float) -> None:
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValidationError(f"not a WGS84 position: lon={lon}, lat={lat}")


def _polygons(geom: BaseGeometry) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [geom]
    if isinstance(geom, MultiPolygon | GeometryCollection):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []  # points and lines left over by make_valid carry no area


def as_multipolygon(geom: BaseGeometry | None) -> MultiPolygon | str:
    """The geometry as a valid MultiPolygon (repaired when needed), or the reason it cannot be one."""
    if geom is None or geom.is_empty:
        return "empty geometry"
    if geom.geom_type not in ("Polygon", "MultiPolygon", "GeometryCollection"):
        return f"geometry is a {geom.geom_type}, not a polygon"
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = [p for p in _polygons(geom) if not p.is_empty and p.area > 0]
    if not parts:
        return "geometry has no area after repair"
    return MultiPolygon(parts)
