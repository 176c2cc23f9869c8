"""A stored position (EPSG:4326, longitude first) in a served CRS, in that CRS's axis order. Pure.

For features whose geometry the hub builds in Python (a device's point); the others are transformed by PostGIS
(geo.crs.geojson_sql). Both use PROJ with the same EPSG definitions, so the two agree to well below the precision
served (tests/geo/test_reproject.py).
"""

from __future__ import annotations

from functools import cache

from pyproj import Transformer

from geo.crs import STORAGE, Crs


@cache
def _transformer(srid: int) -> Transformer:
    # Without always_xy PROJ answers in the target's authority axis order: lat/lon, or X = northing first.
    return Transformer.from_crs("OGC:CRS84", f"EPSG:{srid}")


def point_in(lon: float, lat: float, crs: Crs) -> list[float]:
    """GeoJSON coordinates of a lon/lat point in ``crs``, rounded to its served precision."""
    if crs == STORAGE:
        return [round(lon, crs.decimals), round(lat, crs.decimals)]
    a, b = _transformer(crs.srid).transform(lon, lat)
    return [round(a, crs.decimals), round(b, crs.decimals)]
