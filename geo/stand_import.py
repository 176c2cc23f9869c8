"""Reading stand registers (GeoPackage, Shapefile, zipped Shapefile, GeoJSON, CSV with WKT) into Stands.

Geometry is repaired in the file's own CRS (planar metres, where repair is exact), then reprojected to EPSG:4326.
Every row either becomes a Stand or a Rejection with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from geo.geometry import as_multipolygon
from geo.stand_model import ColumnMap, Rejection, Stand, parse_row
from mimamori.errors import ValidationError

if TYPE_CHECKING:
    import geopandas as gpd

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb")
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom", "shape")


@dataclass
class Register:
    """A register as read from its file: attribute rows and geometries, still in the source CRS."""

    rows: list[dict[str, object]]
    geometries: list[shapely.Geometry | None]
    source_crs: CRS
    unreadable: list[Rejection] = field(default_factory=list)  # rows whose geometry could not even be parsed


@dataclass
class Prepared:
    stands: list[Stand]
    rejections: list[Rejection]
    source_crs: str


def _parse_crs(text: str) -> CRS:
    try:
        return CRS.from_user_input(text)
    except CRSError:
        raise ValidationError(f"unknown CRS {text!r} (use e.g. EPSG:6675)") from None


def _vector_path(path: Path) -> str:
    """What pyogrio should open: zipped Shapefiles are read through GDAL's /vsizip/."""
    if path.suffix.lower() != ".zip":
        return str(path)
    with zipfile.ZipFile(path) as archive:
        shapefiles = [n for n in archive.namelist() if n.lower().endswith(".shp") and not n.startswith("__MACOSX")]
    if len(shapefiles) != 1:
        raise ValidationError(f"{path.name}: expected one .shp inside the zip, found {len(shapefiles)}")
    return f"/vsizip/{path.resolve()}/{shapefiles[0]}"


def read_register(
    path: Path,
    *,
    default_crs: str,
    crs: str | None = None,
    layer: str | None = None,
    encoding: str | None = None,
) -> Register:
    """Read ``path``. ``crs`` overrides the file's own; ``default_crs`` is used only when the file has none."""
    if not path.exists():
        raise ValidationError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, _parse_crs(crs or default_crs), encoding)
    if suffix not in (*VECTOR_SUFFIXES, ".zip"):
        raise ValidationError(f"{path.name}: unsupported format; use .gpkg, .shp, .zip (Shapefile), .geojson or .csv")
    source = _vector_path(path)
    import pyogrio  # here, not at import: it imports geopandas and pandas, seconds at every hub process's start

    try:
        frame = pyogrio.read_dataframe(source, layer=layer, encoding=encoding)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise ValidationError(f"cannot read {path.name}: {exc}") from None
    if crs:
        source_crs = _parse_crs(crs)
    elif frame.crs is not None:
        source_crs = CRS.from_user_input(frame.crs)
    else:
        source_crs = _parse_crs(default_crs)
    import pandas as pd  # as pyogrio above

    rows = pd.DataFrame(frame.drop(columns=frame.geometry.name)).to_dict("records")
    return Register(rows, list(frame.geometry.array), source_crs)


def _read_csv(path: Path, source_crs: CRS, encoding: str | None) -> Register:
    # Japanese registers are often Shift_JIS (cp932); UTF-8 (with or without BOM) is tried first.
    encodings = [encoding] if encoding else ["utf-8-sig", "cp932"]
    frame = None
    for enc in encodings:
        try:
            import pandas as pd  # as above

            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc)
            break
        except UnicodeDecodeError:
            continue
    if frame is None:
        raise ValidationError(f"{path.name}: cannot decode as {' or '.join(encodings)}; pass --encoding")
    wkt_column = next((c for c in frame.columns if c.strip().lower() in WKT_COLUMNS), None)
    if wkt_column is None:
        raise ValidationError(f"{path.name}: no WKT column (name it one of {', '.join(WKT_COLUMNS)})")
    texts = frame[wkt_column].tolist()
    geometries = list(shapely.from_wkt([t or None for t in texts], on_invalid="ignore"))
    unreadable = [
        Rejection(i + 1, None, "WKT could not be parsed")
        for i, (t, g) in enumerate(zip(texts, geometries, strict=True))
        if g is None and t
    ]
    rows = frame.drop(columns=[wkt_column]).to_dict("records")
    return Register(rows, geometries, source_crs, unreadable)


def _in_area_of_use(crs: CRS, geoms: gpd.GeoSeries) -> list[bool]:
    """Whether each reprojected geometry lies in the CRS's area of use (with a margin): catches a wrong --crs."""
    area = crs.area_of_use
    if area is None:
        return [True] * len(geoms)
    margin = 1.0
    bounds = geoms.bounds  # box centres in degrees: good enough for a plausibility check
    cx, cy = (bounds.minx + bounds.maxx) / 2, (bounds.miny + bounds.maxy) / 2
    return [
        (area.west - margin <= x <= area.east + margin) and (area.south - margin <= y <= area.north + margin)
        for x, y in zip(cx, cy, strict=True)
    ]


def prepare(register: Register, columns: ColumnMap) -> Prepared:
    """Repair, reproject to EPSG:4326 and map every row; each one ends as a Stand or a Rejection."""
    rejections: list[Rejection] = list(register.unreadable)
    skip = {r.row for r in register.unreadable}
    repaired: list[tuple[int, shapely.Geometry]] = []
    for i, geom in enumerate(register.geometries, start=1):
        if i in skip:
            continue
        fixed = as_multipolygon(geom)
        if isinstance(fixed, str):
            rejections.append(Rejection(i, None, fixed))
        else:
            repaired.append((i, fixed))
    import geopandas as gpd  # as pandas above

    series = gpd.GeoSeries([g for _, g in repaired], crs=register.source_crs)
    reprojected = series.to_crs(4326) if len(series) else series
    plausible = _in_area_of_use(register.source_crs, reprojected) if len(series) else []

    stands: list[Stand] = []
    first_row: dict[str, int] = {}
    for (row_number, _), geom, ok in zip(repaired, reprojected, plausible, strict=True):
        if not ok:
            rejections.append(
                Rejection(row_number, None, f"outside the area of {register.source_crs.name}; is the CRS right?")
            )
            continue
        fixed = as_multipolygon(geom)  # reprojection can, rarely, fold a ring
        if isinstance(fixed, str):
            rejections.append(Rejection(row_number, None, f"{fixed} after reprojection"))
            continue
        parsed = parse_row(row_number, register.rows[row_number - 1], fixed, columns)
        if isinstance(parsed, Rejection):
            rejections.append(parsed)
            continue
        if parsed.stand_id in first_row:
            rejections.append(
                Rejection(
                    row_number,
                    parsed.stand_id,
                    f"duplicate stand id {parsed.stand_id} (first at row {first_row[parsed.stand_id]})",
                )
            )
            continue
        first_row[parsed.stand_id] = row_number
        stands.append(parsed)
    rejections.sort(key=lambda r: r.row)
    return Prepared(stands, rejections, register.source_crs.to_string())


def _chunks(stands: list[Stand], size: int) -> Iterator[list[Stand]]:
    for start in range(0, len(stands), size):
        yield stands[start : start + size]


@dataclass(frozen=True)
class ImportReport:
    rows: int
    imported: int
    rejections: list[Rejection]
    source_crs: str


def import_register(
    conn: psycopg.Connection,
    path: Path,
    *,
    columns: ColumnMap,
    default_crs: str,
    crs: str | None = None,
    layer: str | None = None,
    encoding: str | None = None,
    chunk_size: int = 2000,
    on_read: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Read, repair, reproject, map and upsert a register; one transaction per chunk, so progress is real.

    ``on_read`` is told how many stands will be written; ``on_progress`` how many have been, after each chunk.
    """
    from geo.queries import upsert_stands

    register = read_register(path, default_crs=default_crs, crs=crs, layer=layer, encoding=encoding)
    prepared = prepare(register, columns)
    if on_read is not None:
        on_read(len(prepared.stands))
    written = 0
    for chunk in _chunks(prepared.stands, chunk_size):
        with conn.transaction():
            upsert_stands(conn, chunk, source_file=path.name, source_crs=prepared.source_crs)
        written += len(chunk)
        if on_progress is not None:
            on_progress(written)
    return ImportReport(len(register.rows), written, prepared.rejections, prepared.source_crs)
