"""A dataset's rows as one table, written as CSV, GeoJSON or Parquet. Pure: values in, bytes out.

Every row carries ``licence``, ``licence_url`` and ``attribution`` columns, so the credit survives whatever is done
with a download (a spreadsheet opened without its HTTP headers, a Parquet file copied around); GeoJSON has them as
top-level members too and Parquet in its schema metadata.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from opendata.rules import Dataset

CREDIT_COLUMNS = ("licence", "licence_url", "attribution")
BOM = "\ufeff"

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
    "parquet": "application/vnd.apache.parquet",
}


@dataclass(frozen=True, slots=True)
class Table:
    """Columns, rows and (for GeoJSON) each row's point as (lon, lat) or another GeoJSON geometry, or None."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    geometries: list[dict[str, Any] | None]


def _point(lon: float | None, lat: float | None) -> dict[str, Any] | None:
    return None if lon is None or lat is None else {"type": "Point", "coordinates": [lon, lat]}


def table_of(items: Sequence[Any], item_type: type, dataset: Dataset) -> Table:
    """The table of snapshot items of one dataclass type: its fields but ``source`` and ``area``, then the credit
    columns; each row's geometry from ``area`` or ``lon``/``lat``."""
    credit = (dataset.licence, dataset.licence_url, dataset.attribution)
    names = tuple(f.name for f in fields(item_type) if f.name not in ("source", "area"))
    rows, geometries = [], []
    for item in items:
        values = []
        for name in names:
            value = getattr(item, name)
            values.append(";".join(value) if isinstance(value, tuple) else value)
        rows.append((*values, *credit))
        area = getattr(item, "area", None)
        geometries.append(area or _point(getattr(item, "lon", None), getattr(item, "lat", None)))
    return Table((*names, *CREDIT_COLUMNS), rows, geometries)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(table: Table, *, bom: bool = False) -> bytes:
    """UTF-8 CSV with a header row; ``bom`` starts it with a byte-order mark, which Excel in Japan needs to read
    it as UTF-8 rather than Shift_JIS."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_text(v) for v in row])
    return ((BOM if bom else "") + out.getvalue()).encode("utf-8")


def to_geojson(table: Table, dataset: Dataset, links: list[dict[str, str]] | None = None) -> bytes:
    features = [
        {
            "type": "Feature",
            "id": i,
            "geometry": geometry,
            "properties": dict(zip(table.columns, row, strict=True)),
        }
        for i, (row, geometry) in enumerate(zip(table.rows, table.geometries, strict=True), start=1)
    ]
    doc = {
        "type": "FeatureCollection",
        "name": dataset.id,
        "license": dataset.licence,
        "license_url": dataset.licence_url,
        "attribution": dataset.attribution,
        "links": links or [],
        "features": features,
    }
    return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)


def _arrow_type(values: list[Any]) -> pa.DataType:
    present = [v for v in values if v is not None]
    if not present:
        return pa.string()
    if all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    if all(isinstance(v, datetime) for v in present):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def to_parquet(table: Table, dataset: Dataset) -> bytes:
    """Parquet (zstd), typed columns (numbers, UTC timestamps, text), the credit in the schema's metadata too."""
    arrays = []
    for i, _name in enumerate(table.columns):
        values = [row[i] for row in table.rows]
        kind = _arrow_type(values)
        if kind == pa.string():
            values = [None if v is None else _text(v) for v in values]
        arrays.append(pa.array(values, type=kind))
    metadata = {"license": dataset.licence, "license_url": dataset.licence_url, "attribution": dataset.attribution}
    schema = pa.schema([pa.field(n, a.type) for n, a in zip(table.columns, arrays, strict=True)], metadata=metadata)
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), sink, compression="zstd")
    return sink.getvalue()


def json_rows(table: Table) -> list[dict[str, Any]]:
    return [dict(zip(table.columns, row, strict=True)) for row in table.rows]
