"""Bulk device import from CSV or GeoJSON, with a report line for every row that could not be imported.

Parsing is pure (text in, rows out); ``import_devices`` writes in chunks inside one transaction. Re-importing
a file updates what changed and leaves equal rows untouched.

CSV columns: ``id, tenant, type, name, lon, lat, status, interval_s, installed_on, metadata`` (a JSON object)
and any ``meta.<key>`` columns (site metadata, e.g. ``meta.caution_m``). GeoJSON: a FeatureCollection of Point
features whose properties use the same names (``metadata`` an object); coordinates give lon and lat.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

from devices import queries
from devices.catalogue import DeviceType
from devices.keys import audit
from devices.validation import DeviceSpec, DeviceStatus, device_problems
from mimamori import strict_json

CHUNK = 1000


@dataclass(frozen=True, slots=True)
class BadRow:
    row: int  # 1-based data row (CSV: line 2 is row 1) or feature number
    device_id: str
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: list[BadRow] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)  # devices this import retired

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.bad)


RawRow = tuple[int, dict[str, Any]]


def parse_csv(text: str) -> list[RawRow]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        return [
            (n, {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k})
            for n, row in enumerate(reader, 1)
        ]
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (131,072 characters): the file is bad
        raise ValueError(f"line {reader.line_num}: {exc}") from None


def parse_geojson(text: str) -> list[RawRow]:
    try:
        doc = strict_json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise ValueError("not a GeoJSON FeatureCollection")
    rows: list[RawRow] = []
    for n, feature in enumerate(features, 1):
        feature = feature or {}
        if not isinstance(feature, dict) or not isinstance(feature.get("properties") or {}, dict):
            raise ValueError(f"feature {n} is not a GeoJSON Feature with an object of properties")
        props = dict(feature.get("properties") or {})
        geometry = feature.get("geometry")
        if geometry is not None:
            props["_geometry"] = geometry
        rows.append((n, props))
    return rows


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    return str(value)


def spec_from_row(
    raw: dict[str, Any], catalogue: dict[str, DeviceType], default_tenant: str | None
) -> tuple[DeviceSpec, bool]:
    """A DeviceSpec from one row's fields and whether the row gave a status; raises ValueError with the reason
    for the report."""
    device_id = _text(raw, "id")
    if device_id is None:
        raise ValueError("no id")
    tenant = _text(raw, "tenant") or _text(raw, "tenant_id") or default_tenant
    if tenant is None:
        raise ValueError("no tenant")
    dtype = _text(raw, "type") or _text(raw, "device_type")
    if dtype is None:
        raise ValueError("no type")
    lon: Any = raw.get("lon")
    lat: Any = raw.get("lat")
    geometry = raw.get("_geometry")
    if geometry is not None:
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            raise ValueError("geometry must be a Point")
        coords = geometry.get("coordinates") or []
        if not isinstance(coords, list) or len(coords) < 2:
            raise ValueError("Point without coordinates")
        lon, lat = coords[0], coords[1]
    lon = None if lon in (None, "") else (_number(lon) if isinstance(lon, str) else lon)
    lat = None if lat in (None, "") else (_number(lat) if isinstance(lat, str) else lat)
    if (raw.get("lon") not in (None, "") and lon is None) or (raw.get("lat") not in (None, "") and lat is None):
        raise ValueError("lon and lat must be numbers")
    metadata: dict[str, Any] = {}
    meta_text = raw.get("metadata")
    if isinstance(meta_text, dict):
        metadata.update(meta_text)
    elif meta_text not in (None, ""):
        try:
            parsed = strict_json.loads(str(meta_text))
        except ValueError:
            raise ValueError("metadata is not JSON") from None
        if not isinstance(parsed, dict):
            raise ValueError("metadata must be a JSON object")
        metadata.update(parsed)
    schema = catalogue[dtype].site_schema if dtype in catalogue else {}
    for key, value in raw.items():
        if key.startswith("meta.") and value not in (None, ""):
            name = key[5:]
            if schema.get(name) == "number" and isinstance(value, str):
                number = _number(value)
                metadata[name] = number if number is not None else value  # validation names the bad value
            else:
                metadata[name] = value
    status_text = _text(raw, "status")
    try:
        status = DeviceStatus(status_text) if status_text else None
    except ValueError:
        raise ValueError(f"status must be one of {', '.join(DeviceStatus)}") from None
    interval_text = _text(raw, "interval_s") or _text(raw, "expected_interval_s")
    try:
        interval = int(float(interval_text)) if interval_text else 600
    except ValueError:
        raise ValueError("interval_s must be a number of seconds") from None
    installed_text = _text(raw, "installed_on")
    try:
        installed = date.fromisoformat(installed_text) if installed_text else None
    except ValueError:
        raise ValueError("installed_on must be a date (YYYY-MM-DD)") from None
    spec = DeviceSpec(
        id=device_id,
        tenant_id=tenant,
        device_type=dtype,
        name=_text(raw, "name") or "",
        lon=lon,
        lat=lat,
        status=status or DeviceStatus.active,
        expected_interval_s=interval,
        installed_on=installed,
        metadata=metadata,
    )
    problems = device_problems(spec, catalogue)
    if problems:
        raise ValueError("; ".join(problems))
    return spec, status is not None


def import_devices(
    conn: psycopg.Connection,
    rows: list[RawRow],
    *,
    actor: str,
    tenant_scope: str | None,
    default_tenant: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate and write ``rows`` in one transaction; bad rows are reported, the others imported."""
    catalogue = queries.catalogue_from_db(conn)
    report = ImportReport()
    seen: dict[str, int] = {}
    with conn.transaction():
        tenants = queries.tenant_ids(conn)
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            good: list[tuple[int, DeviceSpec, bool]] = []
            for n, raw in chunk:
                try:
                    spec, has_status = spec_from_row(raw, catalogue, default_tenant)
                except ValueError as exc:
                    report.bad.append(BadRow(n, str(raw.get("id") or ""), str(exc)))
                    continue
                reason = _row_refusal(spec, seen, tenants, tenant_scope)
                if reason:
                    report.bad.append(BadRow(n, spec.id, reason))
                    continue
                seen[spec.id] = n
                good.append((n, spec, has_status))
            owners = queries.device_owners(conn, [s.id for _, s, _ in good])
            to_write: list[DeviceSpec] = []
            for n, spec, has_status in good:
                owner = owners.get(spec.id)
                if owner and owner[0] != spec.tenant_id:
                    # Whether the id exists elsewhere is all a partner learns, never whose it is.
                    report.bad.append(BadRow(n, spec.id, "device id is already taken by another tenant"))
                    continue
                if not has_status and owner:
                    # A row without a status keeps the stored one (a re-import must not revive a retired device).
                    spec = spec.with_changes(status=DeviceStatus(owner[1]))
                if spec.status is DeviceStatus.retired and (owner is None or owner[1] != DeviceStatus.retired):
                    report.retired.append(spec.id)
                to_write.append(spec)
            changed = queries.write_devices(conn, to_write)
            report.created += sum(1 for v in changed.values() if v == "created")
            report.updated += sum(1 for v in changed.values() if v == "updated")
            report.unchanged += len(to_write) - len(changed)
            if progress:
                progress(len(chunk))
        report.bad.sort(key=lambda b: b.row)
        if report.created or report.updated:
            audit(
                conn,
                actor,
                "device.import",
                None,
                {"created": report.created, "updated": report.updated, "bad": len(report.bad)},
            )
    return report


def _row_refusal(spec: DeviceSpec, seen: dict[str, int], tenants: set[str], scope: str | None) -> str | None:
    if spec.id in seen:
        return f"duplicate id (first on row {seen[spec.id]})"
    if scope is not None and spec.tenant_id != scope:
        return "a partner may import devices only into its own tenant"
    if spec.tenant_id not in tenants:
        return f"unknown tenant {spec.tenant_id!r}"
    return None


def read_rows(text: str, fmt: str) -> list[RawRow]:
    """Rows of a CSV (``fmt`` 'csv') or GeoJSON ('geojson') document."""
    if fmt == "csv":
        return parse_csv(text)
    if fmt in ("geojson", "json"):
        return parse_geojson(text)
    raise ValueError(f"unknown format {fmt!r}: use csv or geojson")


def format_of(name: str) -> str:
    lower = name.lower()
    return "geojson" if lower.endswith((".geojson", ".json")) else "csv"


def bad_rows_csv(bad: Iterable[BadRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "id", "reason"])
    for b in bad:
        writer.writerow([b.row, b.device_id, b.reason])
    return out.getvalue()
