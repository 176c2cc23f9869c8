"""GDAL against the OGC API at city scale: `python -m bench.ogc_gdal` (not a test).

Builds a scratch database with 100,000 synthetic stands (`mimamori stands sample` + `stands import`), 1,000
devices, an area and alerts, starts `mimamori api` (one process) and measures what a GIS user's first minutes cost:

* `ogrinfo -so` of every collection (Debian's GDAL, the one QGIS on Debian carries): seconds, the feature count it
  reports against PostGIS's, and every field's type against the collection's schema (a double must be Real);
* the whole stands collection copied to a GeoPackage by GDAL's OAPIF driver in EPSG:4326 and in JGD2011 zone VII
  (EPSG:6675, `-oo CRS=`; GDAL ≥ 3.7, so pyogrio's bundled GDAL), and in CRS84 by Debian's own `ogr2ogr`: seconds,
  features, and every polygon checked against PostGIS's own `ST_Transform` of the stored stand;
* the physical limit beside it: `COPY (SELECT ST_AsGeoJSON …) TO STDOUT` of the same stands straight from
  PostgreSQL, what no HTTP API can beat.

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyogrio
import shapely
from rich.console import Console
from rich.table import Table

from bench.api import seed
from devices.keys import Role, create_key
from devkit.databases import create_scratch_database, drop_database
from devkit.ports import free_port, wait_for_port
from geo.features import COLLECTIONS
from mimamori.migrate import migrate
from mimamori.settings import Settings

out = Console(stderr=True)
# How GDAL's OAPIF driver types a schema's property (OGR field type names as ogrinfo prints them).
OGR_TYPES = {
    "string": "String",
    "integer": "Integer",
    "number": "Real",
    "boolean": "Integer(Boolean)",
    "date-time": "DateTime",
    "strings": "StringList",
    "object": "String(JSON)",
}
# GDAL 3.6 types a JSON object as a plain String (its text, whole); later versions say String(JSON).
ALSO_RIGHT = {"object": {"String"}}
_COUNTS = {
    "devices": "SELECT count(*) FROM devices",
    "stands": "SELECT count(*) FROM stands",
    "areas": "SELECT count(*) FROM areas",
    "alerts": "SELECT count(*) FROM alerts WHERE state IN ('open', 'acknowledged')",
}
_COPY = """
import sys, time, pyogrio
source, crs, target, page = sys.argv[1:]
started = time.perf_counter()
frame = pyogrio.read_dataframe(source, layer="stands", CRS=crs, PAGE_SIZE=page)
pyogrio.write_dataframe(frame, target, layer="stands", driver="GPKG")
print(time.perf_counter() - started)
"""


def seed_places(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO areas (id, kind, name, tenant_id, properties, geom) VALUES ('asuke', 'slope', '足助',"
            " 'toyota-city', '{}', ST_Multi(ST_MakeEnvelope(137.30, 35.13, 137.33, 35.15, 4326)))"
            " ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO alerts (rule_id, subject, rule_kind, hazard, title_en, device_id, tenant_id, state, level,"
            " peak_level, opened_at, location) SELECT 'river', id, 'threshold', 'flood', 'caution', id, tenant_id,"
            " 'open', 2, 2, now(), location FROM devices ORDER BY id LIMIT 50"
        )


def ogrinfo_summary(url: str, header_file: Path, layer: str) -> tuple[float, int, dict[str, str]]:
    command = ["ogrinfo", "--config", "GDAL_HTTP_HEADER_FILE", str(header_file), "-ro", "-so", f"OAPIF:{url}/ogc"]
    started = time.perf_counter()
    done = subprocess.run([*command, layer], capture_output=True, text=True, timeout=600, check=True)
    seconds = time.perf_counter() - started
    count, fields = -1, {}
    for line in done.stdout.splitlines():
        if line.startswith("Feature Count:"):
            count = int(line.split(":")[1])
        elif ": " in line and "(" in line and not line.startswith(("Layer", "Geometry", "Extent", "INFO")):
            name, _, kind = line.partition(": ")
            fields[name.strip()] = kind.split(" (")[0].strip()
    return seconds, count, fields


def field_mismatches(collection: str, fields: dict[str, str]) -> list[str]:
    wrong = []
    for name, kind in COLLECTIONS[collection].properties:
        if name in fields and fields[name] != OGR_TYPES[kind] and fields[name] not in ALSO_RIGHT.get(kind, set()):
            wrong.append(f"{name}: {fields[name]}, not {OGR_TYPES[kind]}")
    return wrong


def check_copy(dsn: str, gpkg: Path, srid: int) -> tuple[int, int]:
    """(features in the GeoPackage, polygons that differ from PostGIS's transform of the stored stand)."""
    copied = pyogrio.read_dataframe(gpkg)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT stand_id, ST_AsBinary(ST_Transform(geom, %s)) FROM stands", (srid,), binary=True
        ).fetchall()
    expected = {r[0]: bytes(r[1]) for r in rows}
    ids = list(copied["stand_id"])
    truth = shapely.from_wkb([expected.get(i) for i in ids])
    tolerance = 1e-6 if srid == 4326 else 1e-2  # the API's precision: 1e-7° and 1 mm
    same = shapely.equals_exact(np.asarray(copied.geometry.values), truth, tolerance=tolerance)
    missing = len(set(expected) - set(ids))
    return len(copied), int((~same).sum()) + missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stands", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--page-size", type=int, default=1000, help="GDAL's PAGE_SIZE for the copies")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its URL is printed)")
    parser.add_argument("--database", help="reuse a database kept by --keep (no seeding)")
    args = parser.parse_args()
    if shutil.which("ogrinfo") is None or shutil.which("ogr2ogr") is None:
        raise SystemExit("needs Debian's gdal-bin (ogrinfo, ogr2ogr): deploy/bootstrap.sh installs it")

    dsn = args.database or create_scratch_database("mimamori_bench_gdal")
    env = os.environ | {"MIMAMORI_DATABASE_URL": dsn, "MIMAMORI_TIMESCALEDB": "off", "MIMAMORI_LOG_LEVEL": "WARNING"}
    cli = [sys.executable, "-m", "hub.cli"]
    server: subprocess.Popen[bytes] | None = None
    work = Path(tempfile.mkdtemp(prefix="mimamori-bench-gdal-"))
    try:
        migrate(Settings(database_url=dsn, timescaledb="off"))  # type: ignore[arg-type]
        if not args.database:
            out.print(f"[1/4] seeding {args.devices} devices and {args.stands} stands")
            seed(dsn, args.devices, 0, 1)
            register = work / "stands.gpkg"
            subprocess.run([*cli, "stands", "sample", str(register), "--count", str(args.stands)], env=env, check=True)
            subprocess.run([*cli, "stands", "import", str(register)], env=env, check=True)
            seed_places(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
            _, secret = create_key(conn, "toyota-city", Role.admin, "bench gdal")
            truth = {name: int(conn.execute(q).fetchone()[0]) for name, q in _COUNTS.items()}  # type: ignore[index]
        header_file = work / "headers.txt"
        header_file.write_text(f"X-API-Key: {secret}\n")
        port = free_port()
        server = subprocess.Popen([*cli, "api", "--workers", "1"], env=env | {"MIMAMORI_API_PORT": str(port)})
        wait_for_port(port, timeout=60)
        url = f"http://127.0.0.1:{port}"
        gdal_env = os.environ | {"GDAL_HTTP_HEADER_FILE": str(header_file)}

        rows: list[dict[str, Any]] = []
        out.print("[2/4] ogrinfo -so of every collection")
        # As a user first lists the layers (and the server's first connections are made): not timed.
        listing = ["ogrinfo", "--config", "GDAL_HTTP_HEADER_FILE", str(header_file), "-ro", "-q", f"OAPIF:{url}/ogc"]
        subprocess.run(listing, capture_output=True, check=True, timeout=120)
        for name in COLLECTIONS:
            seconds, count, fields = ogrinfo_summary(url, header_file, name)
            wrong = field_mismatches(name, fields)
            rows.append(
                {
                    "step": f"ogrinfo -so {name}",
                    "seconds": round(seconds, 2),
                    "features": count,
                    "expected": truth[name],
                    "problems": len(wrong) + (count != truth[name]),
                    "detail": "; ".join(wrong),
                }
            )
        out.print("[3/4] the stands copied to GeoPackages in EPSG:4326 and EPSG:6675 (GDAL's OAPIF driver)")
        for crs, srid in (("EPSG:4326", 4326), ("EPSG:6675", 6675)):
            gpkg = work / f"stands-{srid}.gpkg"
            source = f"OAPIF:{url}/ogc"
            done = subprocess.run(
                [sys.executable, "-c", _COPY, source, crs, str(gpkg), str(args.page_size)],
                env=gdal_env,
                capture_output=True,
                text=True,
                check=True,
            )
            features, differing = check_copy(dsn, gpkg, srid)
            rows.append(
                {
                    "step": f"copy stands → GPKG {crs} (GDAL {pyogrio.__gdal_version_string__})",
                    "seconds": round(float(done.stdout.strip().splitlines()[-1]), 2),
                    "features": features,
                    "expected": truth["stands"],
                    "problems": differing + (features != truth["stands"]),
                    "detail": f"{differing} polygons differ from PostGIS",
                }
            )
        gpkg = work / "stands-ogr2ogr.gpkg"
        started = time.perf_counter()
        subprocess.run(
            ["ogr2ogr", "-f", "GPKG", str(gpkg), f"OAPIF:{url}/ogc", "stands", "-oo", f"PAGE_SIZE={args.page_size}"],
            env=gdal_env,
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - started
        features, differing = check_copy(dsn, gpkg, 4326)
        rows.append(
            {
                "step": "ogr2ogr stands → GPKG CRS84 (Debian GDAL 3.6)",
                "seconds": round(seconds, 2),
                "features": features,
                "expected": truth["stands"],
                "problems": differing + (features != truth["stands"]),
                "detail": f"{differing} polygons differ from PostGIS",
            }
        )
        out.print("[4/4] the physical limit: the same GeoJSON straight out of PostgreSQL")
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            started = time.perf_counter()
            size = 0
            query = "COPY (SELECT stand_id, ST_AsGeoJSON(geom, 7), to_jsonb(s) - 'geom' FROM stands s) TO STDOUT"
            with cur.copy(query) as copy:
                for block in copy:
                    size += len(block)
            seconds = time.perf_counter() - started
        rows.append(
            {
                "step": "limit: COPY the stands' GeoJSON out of PostgreSQL",
                "seconds": round(seconds, 2),
                "features": truth["stands"],
                "expected": truth["stands"],
                "problems": 0,
                "detail": f"{size / 1e6:.0f} MB",
            }
        )
        table = Table(
            "step", "seconds", "features", "expected", "problems", title=f"GDAL vs the OGC API, {args.stands}"
        )
        for r in rows:
            table.add_row(r["step"], str(r["seconds"]), str(r["features"]), str(r["expected"]), str(r["problems"]))
        out.print(table)
        for r in rows:
            if r["problems"]:
                out.print(f"[red]{r['step']}: {r['detail']}")
        summary = {
            "bench": "ogc_gdal",
            "date": datetime.now(UTC).date().isoformat(),
            "stands": args.stands,
            "page_size": args.page_size,
            "results": rows,
            "ogrinfo_target_s": 1.0,
        }
        print(json.dumps(summary, ensure_ascii=False), flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
        if args.keep or args.database:
            out.print(f"database kept: {dsn}")
        else:
            drop_database(dsn)


if __name__ == "__main__":
    main()
