"""Evacuation sites in PostGIS: import (COPY into a scratch table, one upsert), nearest sites by true distance, sites
for a hazard, and export. Answers are GeoJSON features; the file format is geo/evacuation_format.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from geo.evacuation_format import (
    DEFAULT_MUNICIPALITY,
    HAZARDS,
    KINDS,
    EvacuationColumns,
    EvacuationSite,
    SiteRejection,
    parse_csv,
    write_csv,
)
from geo.geometry import BBox, check_point
from mimamori.errors import ValidationError

MAX_NEAREST = 100
# KNN on geography orders by sphere distance; the answer is re-ordered by the spheroid's (ST_Distance), which differs
# by under 0.5 %, so a few more candidates than asked are taken from the index.
_KNN_SLACK = 32

_COLUMNS = (
    "id, kind, name, name_kana, name_en, address, phone, hazards, capacity, elevation_m, attributes,"
    " source_file, municipality_code, site_no, source_headers"
)
_SELECT = (
    "SELECT id, kind, name, name_kana, name_en, address, phone, hazards, capacity, elevation_m, attributes,"
    " municipality_code, site_no, source_headers, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM evacuation_sites"
)


def check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"unknown kind {kind!r}; use {' or '.join(KINDS)}")


def check_hazard(hazard: str | None) -> None:
    if hazard is not None and hazard not in HAZARDS:
        raise ValidationError(f"unknown hazard {hazard!r}; use one of {', '.join(HAZARDS)}")


def upsert_sites(conn: psycopg.Connection, sites: Iterable[EvacuationSite], *, source_file: str | None) -> int:
    """Insert or replace sites by id. Returns rows written."""
    with conn.transaction():
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS evacuation_sites_incoming (LIKE evacuation_sites INCLUDING DEFAULTS)"
            " ON COMMIT DELETE ROWS"
        )
        with conn.cursor().copy(f"COPY evacuation_sites_incoming ({_COLUMNS}, geom) FROM STDIN") as copy:
            for s in sites:
                copy.write_row(
                    (
                        s.id,
                        s.kind,
                        s.name,
                        s.name_kana,
                        s.name_en,
                        s.address,
                        s.phone,
                        list(s.hazards),
                        s.capacity,
                        s.elevation_m,
                        Jsonb(s.attributes),
                        source_file,
                        s.municipality_code,
                        s.site_no,
                        list(s.headers),
                        f"SRID=4326;POINT({s.lon!r} {s.lat!r})",
                    )
                )
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _COLUMNS.split(",")[1:])
        cur = conn.execute(
            f"INSERT INTO evacuation_sites ({_COLUMNS}, geom) SELECT {_COLUMNS}, geom FROM evacuation_sites_incoming"
            f" ON CONFLICT (id) DO UPDATE SET {updates}, geom = excluded.geom, imported_at = now()"
        )
        conn.execute("TRUNCATE evacuation_sites_incoming")
        return cur.rowcount


@dataclass(frozen=True)
class EvacuationImportReport:
    kind: str
    encoding: str
    rows: int
    imported: int
    rejections: list[SiteRejection]


def _chunks(sites: list[EvacuationSite], size: int) -> Iterator[list[EvacuationSite]]:
    for start in range(0, len(sites), size):
        yield sites[start : start + size]


def import_sites(
    conn: psycopg.Connection,
    path: Path,
    *,
    kind: str | None = None,
    encoding: str | None = None,
    columns: EvacuationColumns | None = None,
    default_municipality: str = DEFAULT_MUNICIPALITY,
    chunk_size: int = 1000,
    on_read: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> EvacuationImportReport:
    """Read, validate and upsert one list; a transaction per chunk. Rejected rows are reported, the rest kept."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        parsed = parse_csv(
            data, kind=kind, encoding=encoding, columns=columns, default_municipality=default_municipality
        )
    except ValidationError as exc:
        raise ValidationError(f"{path.name}: {exc}") from None
    if on_read is not None:
        on_read(len(parsed.sites))
    written = 0
    for chunk in _chunks(parsed.sites, chunk_size):
        upsert_sites(conn, chunk, source_file=path.name)
        written += len(chunk)
        if on_progress is not None:
            on_progress(written)
    return EvacuationImportReport(parsed.kind, parsed.encoding, parsed.rows, written, parsed.rejections)


def _feature(row: dict[str, Any]) -> dict[str, Any]:
    properties = {
        "kind": row["kind"],
        "name": row["name"],
        "name_kana": row["name_kana"],
        "name_en": row["name_en"],
        "address": row["address"],
        "phone": row["phone"],
        "hazards": list(row["hazards"]),
        "capacity": row["capacity"],
        "elevation_m": row["elevation_m"],
        "attributes": row["attributes"],
    }
    if "distance_m" in row:
        properties["distance_m"] = round(row["distance_m"], 1)
    return {
        "type": "Feature",
        "id": row["id"],
        "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
        "properties": properties,
    }


def nearest_sites(
    conn: psycopg.Connection,
    lon: float,
    lat: float,
    *,
    limit: int = 5,
    kind: str | None = None,
    hazard: str | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` sites nearest to (lon, lat) by geodesic distance on WGS 84, nearest first, each a GeoJSON
    feature with ``properties.distance_m``. ``kind`` and ``hazard`` narrow the sites (hazard: designated for it)."""
    check_point(lon, lat)
    check_kind(kind)
    check_hazard(hazard)
    if not 1 <= limit <= MAX_NEAREST:
        raise ValidationError(f"limit must be 1–{MAX_NEAREST}")
    here = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"
    query = (
        "WITH candidates AS (SELECT *, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM evacuation_sites"
        " WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(hazard)s::text IS NULL OR hazards @> ARRAY[%(hazard)s::text])"
        f" ORDER BY geom::geography <-> {here} LIMIT %(window)s)"
        " SELECT id, kind, name, name_kana, name_en, address, phone, hazards, capacity, elevation_m, attributes,"
        f" lon, lat, ST_Distance(geom::geography, {here}) AS distance_m"
        " FROM candidates ORDER BY distance_m, id LIMIT %(limit)s"
    )
    params = {"lon": lon, "lat": lat, "kind": kind, "hazard": hazard, "limit": limit, "window": limit + _KNN_SLACK}
    with conn.cursor(row_factory=dict_row) as cur:
        return [_feature(r) for r in cur.execute(query, params).fetchall()]  # type: ignore[arg-type]


def sites_for_hazard(
    conn: psycopg.Connection,
    hazard: str,
    *,
    kind: str | None = None,
    bbox: BBox | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """The sites designated for ``hazard`` (optionally of one kind, in a CRS84 bbox), by id, as GeoJSON features."""
    check_hazard(hazard)
    check_kind(kind)
    if offset < 0 or (limit is not None and limit < 0):
        raise ValidationError("limit and offset must not be negative")
    box = bbox.as_tuple() if bbox is not None else (None, None, None, None)
    query = (
        f"{_SELECT} WHERE hazards @> ARRAY[%(hazard)s::text] AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(minx)s::float8 IS NULL OR geom && ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326))"
        " ORDER BY id LIMIT %(limit)s OFFSET %(offset)s"
    )
    params = {"hazard": hazard, "kind": kind, "limit": limit, "offset": offset}
    params |= dict(zip(("minx", "miny", "maxx", "maxy"), box, strict=True))
    with conn.cursor(row_factory=dict_row) as cur:
        return [_feature(r) for r in cur.execute(query, params).fetchall()]  # type: ignore[arg-type]


def site_feature(conn: psycopg.Connection, site_id: str) -> dict[str, Any] | None:
    """One site as a GeoJSON feature, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"{_SELECT} WHERE id = %s", (site_id,)).fetchone()
    return None if row is None else _feature(row)


def count_sites(conn: psycopg.Connection, kind: str | None = None) -> int:
    check_kind(kind)
    row = conn.execute(
        "SELECT count(*) FROM evacuation_sites WHERE %(kind)s::text IS NULL OR kind = %(kind)s", {"kind": kind}
    ).fetchone()
    return int(row[0]) if row else 0


def load_sites(conn: psycopg.Connection, *, kind: str | None = None) -> list[EvacuationSite]:
    """Every site (of ``kind``) as the format's records, ordered by municipality and then ID as a number where it
    is one: the order a city's list is written in."""
    check_kind(kind)
    query = (
        f"{_SELECT} WHERE %(kind)s::text IS NULL OR kind = %(kind)s"
        " ORDER BY kind, municipality_code, (CASE WHEN site_no ~ '^[0-9]{1,18}$' THEN site_no::bigint END), site_no, id"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, {"kind": kind}).fetchall()
    return [
        EvacuationSite(
            id=r["id"],
            kind=r["kind"],
            name=r["name"],
            lon=r["lon"],
            lat=r["lat"],
            municipality_code=r["municipality_code"] or "",
            site_no=r["site_no"] or "",
            name_kana=r["name_kana"],
            name_en=r["name_en"],
            address=r["address"],
            phone=r["phone"],
            hazards=tuple(h for h in HAZARDS if h in r["hazards"]),
            capacity=r["capacity"],
            elevation_m=r["elevation_m"],
            attributes=dict(r["attributes"]),
            headers=tuple(r["source_headers"]),
        )
        for r in rows
    ]


def export_sites(
    conn: psycopg.Connection,
    path: Path,
    *,
    kind: str,
    bom: bool = False,
    columns: EvacuationColumns | None = None,
) -> int:
    """Write every site of ``kind`` to ``path`` in the standard format; returns how many."""
    check_kind(kind)
    sites = load_sites(conn, kind=kind)
    path.write_bytes(write_csv(sites, kind=kind, columns=columns, bom=bom))
    return len(sites)
