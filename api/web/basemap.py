"""The map's base layers: Toyota City's outline, its districts, rivers, main roads and places.

SYNTHETIC. No open data of these can be shipped with the hub, and the map must work with no tile server, so the
shapes are drawn from the approximate places of shared/domain.md §5: the outline is a hand-placed ring round
them, districts are Voronoi cells of the former towns merged into the city in 2005, rivers and roads are smoothed
lines through the places they pass. Every feature says `synthetic: true`, and the map's attribution says so too.
A city with real data sets ``MIMAMORI_WEB_BASEMAP`` to a GeoJSON file with the same ``layer`` property.
Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any

import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon, mapping
from shapely.ops import voronoi_diagram

Coord = tuple[float, float]  # lon, lat

ATTRIBUTION = "Base layers: SYNTHETIC (Mimamori), drawn from approximate places; not survey data"

# (lon, lat), going round the city clockwise from the west. Approximate and synthetic.
_OUTLINE: list[Coord] = [
    (137.06, 35.08), (137.09, 35.15), (137.15, 35.19), (137.19, 35.25), (137.26, 35.27), (137.34, 35.28),
    (137.42, 35.27), (137.50, 35.26), (137.57, 35.24), (137.56, 35.18), (137.49, 35.15), (137.40, 35.11),
    (137.37, 35.05), (137.33, 35.00), (137.26, 35.01), (137.20, 35.00), (137.15, 34.99), (137.10, 35.01),
    (137.07, 35.04),
]  # fmt: skip

# The districts (旧町村, merged into Toyota City in 2005): a seed point each, from domain.md §5.
_DISTRICTS: list[tuple[str, str, Coord]] = [
    ("Toyota", "豊田", (137.150, 35.075)),
    ("Fujioka", "藤岡", (137.207, 35.198)),
    ("Obara", "小原", (137.285, 35.230)),
    ("Asuke", "足助", (137.312, 35.134)),
    ("Shimoyama", "下山", (137.319, 35.041)),
    ("Asahi", "旭", (137.362, 35.232)),
    ("Inabu", "稲武", (137.509, 35.216)),
]

_RIVERS: list[tuple[str, str, int, list[Coord]]] = [
    # name, Japanese name, rank (1 main river, 2 tributary), course from upstream
    (
        "Yahagi River",
        "矢作川",
        1,
        [
            (137.455, 35.262), (137.420, 35.236), (137.390, 35.226), (137.362, 35.224), (137.320, 35.210),
            (137.280, 35.190), (137.230, 35.160), (137.190, 35.140), (137.180, 35.115), (137.179, 35.094),
            (137.171, 35.085), (137.165, 35.060), (137.160, 35.036), (137.155, 34.985),
        ],
    ),
    (
        "Tomoe River",
        "巴川",
        2,
        [(137.375, 35.180), (137.340, 35.150), (137.312, 35.134), (137.270, 35.105), (137.220, 35.075),
         (137.185, 35.060), (137.166, 35.052)],
    ),
    ("Kago River", "籠川", 2, [(137.235, 35.245), (137.207, 35.198), (137.195, 35.165), (137.191, 35.142)]),
]  # fmt: skip

_ROADS: list[tuple[str, str, list[Coord]]] = [
    (
        "R153 (approx.)",
        "国道153号 (概略)",
        [(137.080, 35.110), (137.156, 35.082), (137.220, 35.100), (137.312, 35.134), (137.400, 35.170),
         (137.509, 35.216), (137.565, 35.235)],
    ),
    ("R301 (approx.)", "国道301号 (概略)",
     [(137.156, 35.082), (137.230, 35.060), (137.319, 35.041), (137.365, 35.030)]),
    (
        "R419 (approx.)",
        "国道419号 (概略)",
        [(137.156, 35.082), (137.175, 35.140), (137.207, 35.198), (137.285, 35.230), (137.362, 35.232),
         (137.420, 35.236)],
    ),
    ("R248 (approx.)", "国道248号 (概略)",
     [(137.110, 34.995), (137.140, 35.040), (137.156, 35.082), (137.120, 35.150)]),
]  # fmt: skip

# name, Japanese name, place, kind, zoom from which the map labels it (close places would overlap further out)
_PLACES: list[tuple[str, str, Coord, str, float]] = [
    ("Toyota City Hall", "豊田市役所", (137.156, 35.082), "city_hall", 0),
    ("Takahashi", "高橋町", (137.179, 35.094), "town", 11.5),
    ("Toyota Stadium", "豊田スタジアム", (137.171, 35.085), "landmark", 12),
    ("Togari", "渡刈町", (137.160, 35.036), "town", 10.5),
    ("Yahagi Dam", "矢作ダム", (137.420, 35.236), "landmark", 0),
    ("Asahi", "旭", (137.362, 35.232), "town", 10.5),
    ("Inabu", "稲武", (137.509, 35.216), "town", 10.5),
    ("Shimoyama", "下山", (137.319, 35.041), "town", 10.5),
    ("Asuke", "足助", (137.312, 35.134), "town", 10.5),
    ("Obara", "小原", (137.285, 35.230), "town", 10.5),
    ("Fujioka", "藤岡", (137.207, 35.198), "town", 10.5),
]


def chaikin(points: Sequence[Coord], rounds: int = 3, closed: bool = False) -> list[Coord]:
    """Corner-cutting smoothing (Chaikin): keeps the ends of an open line, rounds every corner."""
    pts = list(points)
    for _ in range(rounds):
        out: list[Coord] = [] if closed else [pts[0]]
        pairs = list(zip(pts, pts[1:] + pts[:1], strict=True)) if closed else list(pairwise(pts))
        for (x0, y0), (x1, y1) in pairs:
            out.append((0.75 * x0 + 0.25 * x1, 0.75 * y0 + 0.25 * y1))
            out.append((0.25 * x0 + 0.75 * x1, 0.25 * y0 + 0.75 * y1))
        if not closed:
            out.append(pts[-1])
        pts = out
    return pts


def _rounded(geometry: dict[str, Any], digits: int = 5) -> dict[str, Any]:
    def walk(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, digits)
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}


def _feature(geometry: shapely.Geometry, layer: str, **props: object) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": _rounded(mapping(geometry)),
        "properties": {"layer": layer, "synthetic": True, **props},
    }


def outline() -> Polygon:
    return Polygon(chaikin(_OUTLINE, rounds=3, closed=True))


def districts(city: Polygon) -> list[tuple[str, str, Polygon]]:
    """Each district's Voronoi cell among the district seeds, cut to the city outline."""
    seeds = MultiPoint([Point(c) for _, _, c in _DISTRICTS])
    cells = voronoi_diagram(seeds, envelope=city.buffer(0.5))
    out = []
    for name, name_ja, seed in _DISTRICTS:
        cell = next(c for c in cells.geoms if c.contains(Point(seed)))
        out.append((name, name_ja, cell.intersection(city)))
    return out


@lru_cache(maxsize=1)
def synthetic_basemap() -> dict[str, Any]:
    """The shipped base layers as one GeoJSON FeatureCollection; features carry `layer` and `name`/`name_ja`."""
    city = outline()
    features = [_feature(city, "outline", name="Toyota City (synthetic outline)", name_ja="豊田市 (合成の市域)")]
    features += [_feature(shape, "district", name=n, name_ja=j) for n, j, shape in districts(city)]
    features += [
        _feature(LineString(chaikin(course)), "river", name=n, name_ja=j, rank=rank) for n, j, rank, course in _RIVERS
    ]
    features += [_feature(LineString(chaikin(course)), "road", name=n, name_ja=j) for n, j, course in _ROADS]
    features += [_feature(Point(c), "place", name=n, name_ja=j, kind=k, minzoom=z) for n, j, c, k, z in _PLACES]
    return {"type": "FeatureCollection", "attribution": ATTRIBUTION, "features": features}
