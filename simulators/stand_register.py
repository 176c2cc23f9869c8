"""A SYNTHETIC stand register (森林簿) for Toyota City's mountain districts, for demos and benchmarks.

Nothing here describes real forest: compartments (林班, 64 ha before warping) are laid on a grid around the
districts' centres, split into sub-compartments (林小班) of 1–20 ha, and given plausible attributes. The output is
in JGD2011 plane-rectangular zone VII (EPSG:6675) with Japanese column names, as a prefectural register would be,
so importing it exercises the same path as a real file. Every row says it is synthetic in its 備考 column.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, box

SOURCE_CRS = "EPSG:6675"
SYNTHETIC_NOTE = "合成データ（実在しない） synthetic sample, not real forest data"
COMPARTMENT_M = 800.0

# District centres from shared/domain.md (lat, lon) with a typical forest elevation [est].
DISTRICTS: dict[str, tuple[float, float, float]] = {
    "旭 Asahi": (35.232, 137.362, 450.0),
    "稲武 Inabu": (35.216, 137.509, 750.0),
    "小原 Obara": (35.230, 137.285, 400.0),
    "足助 Asuke": (35.134, 137.312, 400.0),
    "下山 Shimoyama": (35.041, 137.319, 550.0),
    "藤岡 Fujioka": (35.198, 137.207, 300.0),
    "矢作ダム Yahagi Dam": (35.236, 137.420, 600.0),
}
SPECIES = (("スギ", 0.26), ("ヒノキ", 0.30), ("広葉樹", 0.30), ("アカマツ", 0.06), ("クヌギ", 0.05), ("竹", 0.03))
OWNERSHIP = (("私有林", 0.68), ("市有林", 0.12), ("財産区", 0.05), ("県有林", 0.05), ("国有林", 0.10))
PROTECTION = (
    ("", 0.66),
    ("水源かん養保安林", 0.22),
    ("土砂流出防備保安林", 0.07),
    ("水源かん養保安林・土砂流出防備保安林", 0.03),
    ("土砂崩壊防備保安林", 0.02),
)


def _choose(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([v for v, _ in table], weights=[w for _, w in table])[0]


def _split(rect: tuple[float, float, float, float], rng: random.Random) -> Iterator[tuple[float, float, float, float]]:
    """Guillotine-split a rectangle into pieces of 1–20 ha, most of them a few hectares."""
    x0, y0, x1, y1 = rect
    area_ha = (x1 - x0) * (y1 - y0) / 10_000
    # Pieces keep 1.2–17 ha before warping, so they stay within 1–20 ha after it.
    target = min(17.0, max(1.2, rng.lognormvariate(math.log(3.0), 0.8)))
    lo, hi = max(0.3, 1.2 / area_ha), min(0.7, 1.0 - 1.2 / area_ha)
    if (area_ha <= 17 and area_ha <= target * 1.5) or lo > hi:
        yield rect
        return
    cut = rng.uniform(lo, hi)
    if (x1 - x0) >= (y1 - y0):
        xm = x0 + (x1 - x0) * cut
        yield from _split((x0, y0, xm, y1), rng)
        yield from _split((xm, y0, x1, y1), rng)
    else:
        ym = y0 + (y1 - y0) * cut
        yield from _split((x0, y0, x1, ym), rng)
        yield from _split((x0, ym, x1, y1), rng)


def _warp(geom: Polygon) -> Polygon:
    """Bend the grid smoothly so stands are not rectangles; shared edges stay shared, so there are no gaps."""

    def move(coords: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = coords[:, 0], coords[:, 1]
        out = coords.copy()
        out[:, 0] = x + 35 * np.sin(y / 450) + 10 * np.sin((x + y) / 170)
        out[:, 1] = y + 35 * np.sin(x / 520) + 10 * np.sin((x - y) / 190)
        return out

    return shapely.transform(shapely.segmentize(geom, 50.0), move)


def _cells(centre: tuple[float, float]) -> Iterator[tuple[int, int]]:
    """Grid cells in rings around a centre cell: the district grows outwards."""
    cx, cy = int(centre[0] // COMPARTMENT_M), int(centre[1] // COMPARTMENT_M)
    yield cx, cy
    for radius in range(1, 10_000):
        for dx in range(-radius, radius + 1):
            for dy in (-radius, radius) if abs(dx) != radius else range(-radius, radius + 1):
                yield cx + dx, cy + dy


@dataclass(frozen=True)
class SampleOptions:
    count: int = 25_000
    seed: int = 232114  # Toyota City's municipality code
    age_reference_year: int = 2024


def generate(options: SampleOptions, on_progress: Callable[[int], None] | None = None) -> gpd.GeoDataFrame:
    """``options.count`` synthetic stands in EPSG:6675 with Japanese register columns."""
    rng = random.Random(options.seed)  # noqa: S311 - reproducible synthetic data, not secrets
    to_plane = Transformer.from_crs("EPSG:4326", SOURCE_CRS, always_xy=True)
    rings = {name: _cells(to_plane.transform(lon, lat)) for name, (lat, lon, _) in DISTRICTS.items()}
    used: set[tuple[int, int]] = set()
    rows: list[dict[str, object]] = []
    geoms: list[Polygon] = []
    rinpan = 0
    while len(rows) < options.count:
        for district, cells in rings.items():
            if len(rows) >= options.count:
                break
            cell = next(cells)
            while cell in used:
                cell = next(cells)
            used.add(cell)
            rinpan += 1
            x0, y0 = cell[0] * COMPARTMENT_M, cell[1] * COMPARTMENT_M
            pieces = list(_split((x0, y0, x0 + COMPARTMENT_M, y0 + COMPARTMENT_M), rng))
            for shohan, piece in enumerate(pieces, start=1):
                if len(rows) >= options.count:
                    break
                geom = _warp(box(*piece))
                rows.append(_attributes(rng, district, rinpan, shohan, geom.area / 10_000, options))
                geoms.append(geom)
            if on_progress is not None:
                on_progress(min(len(rows), options.count))
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=SOURCE_CRS)


def _attributes(
    rng: random.Random, district: str, rinpan: int, shohan: int, area_ha: float, options: SampleOptions
) -> dict[str, object]:
    species = _choose(rng, SPECIES)
    planted = species in ("スギ", "ヒノキ")
    if species == "竹":
        forest_type, age = "竹林", 0
    elif planted:
        forest_type = "人工林"
        age = int(min(110, max(1, rng.gauss(55, 14))))
    else:
        forest_type = "天然林"
        age = int(min(150, max(5, rng.gauss(60, 18))))
    if rng.random() < 0.02:
        forest_type, species, age = "伐採跡地", "", 0
    per_ha = (min(750.0, 9.0 * age) if planted else min(400.0, 4.0 * age)) * rng.uniform(0.7, 1.2)
    _, _, base_elevation = DISTRICTS[district]
    second = rng.choice(("広葉樹", "アカマツ", "")) if planted and rng.random() < 0.3 else ""
    return {
        "林班": rinpan,
        "小班": shohan,
        "小班枝番": 1 if rng.random() < 0.08 else 0,
        "樹種1": species,
        "樹種2": second,
        "林齢1": age,
        "林齢2": max(1, age - rng.randint(5, 30)) if second else None,
        "林齢基準年": options.age_reference_year,
        "面積": round(area_ha, 2),
        "材積": round(per_ha * area_ha) if age else 0,
        "林種": forest_type,
        "所有形態": _choose(rng, OWNERSHIP),
        "保安林": _choose(rng, PROTECTION),
        "地位": rng.randint(1, 5),
        "疎密度": rng.choice(("疎", "中", "密")),
        "樹高": round(min(32.0, 0.42 * age) * rng.uniform(0.8, 1.1), 1) if age else 0.0,
        "傾斜": round(min(60.0, max(3.0, rng.gauss(28, 9))), 1),
        "標高": round(max(80.0, rng.gauss(base_elevation, 150))),
        "地区": district,
        "備考": SYNTHETIC_NOTE,
    }


def write(frame: gpd.GeoDataFrame, path: Path) -> None:
    """Write as the file's suffix says: .gpkg, .shp, .geojson, or .csv (geometry as WKT)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = frame.drop(columns=frame.geometry.name)
        table.insert(len(table.columns), "wkt", shapely.to_wkt(frame.geometry.array, rounding_precision=3))
        table.to_csv(path, index=False)
    elif suffix == ".shp":
        frame.to_file(path, engine="pyogrio", encoding="UTF-8")
    else:
        frame.to_file(path, engine="pyogrio")
