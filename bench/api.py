"""Geo-API benchmark: `python -m bench.api` (not a test).

Builds a scratch database with 10,000 devices, 100,000 synthetic stands (made and imported with the CLI:
`mimamori stands sample` + `mimamori stands import`) and a month of 10-minute readings for 100 devices, starts
`mimamori api` as its own process, and measures under concurrent clients:

* OGC items by bbox (devices, ~2 km box), * the stand at a point, * a time-series query (1 h buckets over a week),
* a stand tile at zoom 10 and at zoom 14, * and a baseline: `/ogc/conformance` (no database), measured in the same
  run, so figures from a busy machine can be read as ratios to it.

Prints a table of p50/p99, then one JSON line. Target: p99 ≤ 50 ms each.

`python -m bench.api --peer tipg [options]` instead compares Mimamori's OGC API with tipg's on the same stands
(bench/ogc_peer.py; its options: `python -m bench.api --peer tipg --help`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from devices import load_catalogue, sync_catalogue, upsert_tenant
from devices.keys import Role, create_key
from devkit.databases import create_scratch_database, drop_database
from devkit.ports import free_port, wait_for_port
from ingest.series_numbers import series_numbers
from mimamori.migrate import migrate
from mimamori.settings import Settings

out = Console(stderr=True)
CENTRE = (137.36, 35.20)  # the mountain districts the sample register covers


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def seed(dsn: str, devices: int, with_readings: int, days: int) -> None:
    rng = random.Random(1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        sync_catalogue(conn, load_catalogue())
        upsert_tenant(conn, "toyota-city", "Toyota City", "operator")
        with conn.cursor().copy("COPY devices (id, tenant_id, device_type, location) FROM STDIN") as copy:
            for i in range(devices):
                lon, lat = CENTRE[0] + rng.uniform(-0.25, 0.25), CENTRE[1] + rng.uniform(-0.15, 0.15)
                copy.write_row((f"dev-{i:05d}", "toyota-city", "soil_moisture", f"SRID=4326;POINT({lon} {lat})"))
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=days)
        steps = int((end - start) / timedelta(minutes=10))
        numbers = series_numbers(conn, [(f"dev-{i:05d}", "soil_moisture") for i in range(with_readings)])
        with conn.cursor().copy("COPY series_readings (time, value, series_id, delay_cs) FROM STDIN") as copy:
            for s in range(steps):  # in time order, as ingest writes them
                for i in range(with_readings):
                    copy.write_row(
                        (
                            start + s * timedelta(minutes=10),
                            0.3 + 0.1 * math.sin(s / 144),
                            numbers[f"dev-{i:05d}", "soil_moisture"],
                            0,
                        )
                    )
        conn.execute("ANALYZE")


def _client(urls: list[str], headers: dict[str, str], port: int, go: Any, results: Any) -> None:
    """One client: its own process and keep-alive connection, requests back to back; reports (latencies, statuses).

    The standard library's client, not httpx: the clients share the machine's two cores with the server, and
    httpx spends several times more CPU per request, which would be taken from the server being measured.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/healthz")  # connected before the start, so no client measures its own connect
        conn.getresponse().read()
        go.wait()
        for url in urls:
            t0 = time.perf_counter()
            conn.request("GET", url, headers=headers)
            r = conn.getresponse()
            r.read()
            latencies.append((time.perf_counter() - t0) * 1000)
            statuses[r.status] = statuses.get(r.status, 0) + 1
    finally:
        conn.close()
    results.put((latencies, statuses))


def measure(name: str, urls: list[str], headers: dict[str, str], port: int, clients: int) -> dict[str, float]:
    """p50/p99 of ``urls`` spread over ``clients`` concurrent clients.

    Each client is its own process, as separate users are: threads of one Python process would wait for each
    other's turn at the interpreter lock, and that wait (up to its 5 ms switch interval) would be counted as the
    server's latency.
    """
    ctx = multiprocessing.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_client, args=(urls[i::clients], headers, port, go, results)) for i in range(clients)]
    for proc in procs:
        proc.start()
    go.set()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    for _ in procs:
        part, codes = results.get(timeout=600)
        latencies += part
        for code, n in codes.items():
            statuses[code] = statuses.get(code, 0) + n
    for proc in procs:
        proc.join()
    latencies.sort()
    bad = {k: v for k, v in statuses.items() if k not in (200, 204)}
    if bad:
        out.print(f"[red]{name}: unexpected statuses {bad}[/]")
    return {
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "requests": len(latencies),
    }


def start_behind_caddy(
    cli: list[str], env: dict[str, str], processes: int, port: int, started: list[subprocess.Popen[bytes]]
) -> None:
    """The compose deployment's shape: single-process API servers behind Caddy, which balances each request to the
    least busy one (``mimamori api --workers N`` shares one socket instead, so a kept-alive connection stays with
    the process that accepted it). Needs the ``caddy`` binary (Debian: ``apt-get install caddy``). Each process is
    added to ``started`` as it starts, so the caller stops them even when a later one fails."""
    caddy = shutil.which("caddy")
    if caddy is None:
        raise SystemExit("--behind-caddy needs caddy on PATH (Debian: apt-get install caddy)")
    upstreams = [free_port() for _ in range(processes)]
    started += [subprocess.Popen([*cli, "api"], env=env | {"MIMAMORI_API_PORT": str(p)}) for p in upstreams]
    for p in upstreams:
        wait_for_port(p, timeout=60)
    config = Path(tempfile.mkdtemp(prefix="mimamori-bench-caddy-")) / "Caddyfile"
    config.write_text(
        "{\n\tadmin off\n\tauto_https off\n}\n"
        f"http://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n"
        f"\treverse_proxy {' '.join(f'127.0.0.1:{p}' for p in upstreams)} {{\n\t\tlb_policy least_conn\n\t}}\n}}\n"
    )
    proxy = [caddy, "run", "--config", str(config), "--adapter", "caddyfile"]
    started.append(subprocess.Popen(proxy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        wait_for_port(port, timeout=30)
    finally:
        shutil.rmtree(config.parent, ignore_errors=True)  # read once at start


def main() -> None:
    if sys.argv[1:3] == ["--peer", "tipg"]:  # the peer comparison, its own options after it
        from bench import ogc_peer

        ogc_peer.main(sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--stands", type=int, default=100_000)
    parser.add_argument("--reading-devices", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario (p99 of a few hundred: a few samples)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--api-workers", type=int, default=2, help="`mimamori api --workers` (one per core)")
    parser.add_argument(
        "--behind-caddy",
        action="store_true",
        help="as deployed: one `mimamori api` per process behind Caddy balancing each request (least_conn)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its URL is printed)")
    parser.add_argument("--database", help="reuse a database kept by --keep (no seeding; it is kept again)")
    parser.add_argument("--peer", choices=["tipg"], help="compare with tipg instead (must come first: see above)")
    args = parser.parse_args()
    if args.peer:
        raise SystemExit("--peer tipg must be the first option: python -m bench.api --peer tipg [its options]")

    dsn = args.database or create_scratch_database("mimamori_bench_api")
    args.keep = args.keep or bool(args.database)
    env = os.environ | {"MIMAMORI_DATABASE_URL": dsn, "MIMAMORI_TIMESCALEDB": "off", "MIMAMORI_LOG_LEVEL": "WARNING"}
    cli = [sys.executable, "-m", "hub.cli"]
    servers: list[subprocess.Popen[bytes]] = []
    try:
        migrate(Settings(database_url=dsn, timescaledb="off"))  # type: ignore[arg-type]
        if not args.database:
            out.print(f"seeding {args.devices} devices and {args.days} days of readings for {args.reading_devices}")
            seed(dsn, args.devices, args.reading_devices, args.days)
            with tempfile.TemporaryDirectory() as tmp:
                register = Path(tmp) / "stands.gpkg"
                sample = [*cli, "stands", "sample", str(register), "--count", str(args.stands)]
                subprocess.run(sample, env=env, check=True)
                subprocess.run([*cli, "stands", "import", str(register)], env=env, check=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE stands")
            _, secret = create_key(conn, "toyota-city", Role.forestry, "bench")
            device = "dev-00007"
            stand_point = conn.execute(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM stands ORDER BY stand_id"
                " LIMIT 200) s"
            ).fetchall()
        port = free_port()
        if args.behind_caddy:
            start_behind_caddy(cli, env, args.api_workers, port, servers)
        else:
            api_cmd = [*cli, "api", "--workers", str(args.api_workers)]
            servers.append(subprocess.Popen(api_cmd, env=env | {"MIMAMORI_API_PORT": str(port)}))
        wait_for_port(port, timeout=60)
        headers = {"X-API-Key": secret}
        rng = random.Random(2)

        def bbox_url() -> str:
            lon, lat = CENTRE[0] + rng.uniform(-0.2, 0.2), CENTRE[1] + rng.uniform(-0.1, 0.1)
            return f"/ogc/collections/devices/items?bbox={lon},{lat},{lon + 0.02},{lat + 0.02}&limit=100"

        def series_url() -> str:
            end = datetime.now(UTC) - timedelta(days=rng.randint(0, 20))
            start = end - timedelta(days=7)
            return (
                f"/v1/devices/{device}/readings?metric=soil_moisture&bucket=1h&agg=avg"
                f"&start={start.isoformat().replace('+', '%2B')}&end={end.isoformat().replace('+', '%2B')}"
            )

        def tile_url(z: int) -> str:
            lon, lat = rng.choice(stand_point)
            return "/v1/tiles/stands/{}/{}/{}.mvt".format(*tile_of(lon, lat, z))

        scenarios = {
            # The same server path without a database query: the machine's share of each figure, so runs on a
            # busy (shared) machine can be compared by their ratio to this.
            "baseline_conformance": ["/ogc/conformance" for _ in range(args.requests)],
            "items_by_bbox": [bbox_url() for _ in range(args.requests)],
            "stand_at_point": [
                f"/v1/stands/at?lon={lon}&lat={lat}"
                for lon, lat in (rng.choice(stand_point) for _ in range(args.requests))
            ],
            "timeseries_1h_week": [series_url() for _ in range(args.requests)],
            "tile_z10": [tile_url(10) for _ in range(args.requests)],
            "tile_z14": [tile_url(14) for _ in range(args.requests)],
        }
        for urls in scenarios.values():  # warm up caches and connections
            measure("warm-up", urls[:20], headers, port, 2)
        results = {name: measure(name, urls, headers, port, args.clients) for name, urls in scenarios.items()}
        base_p99 = results["baseline_conformance"]["p99_ms"] or 1.0
        for r in results.values():
            r["p99_vs_baseline"] = round(r["p99_ms"] / base_p99, 1)
        shape = "behind Caddy" if args.behind_caddy else "one socket"
        title = f"geo-API, {args.clients} concurrent clients, {args.api_workers} API process(es), {shape}"
        table = Table("scenario", "p50 ms", "p99 ms", "p99 ÷ baseline", "requests", title=title)
        for name, r in results.items():
            table.add_row(name, str(r["p50_ms"]), str(r["p99_ms"]), str(r["p99_vs_baseline"]), str(r["requests"]))
        out.print(table)
        summary = {
            "bench": "api",
            "devices": args.devices,
            "stands": args.stands,
            "reading_devices": args.reading_devices,
            "days": args.days,
            "clients": args.clients,
            "api_workers": args.api_workers,
            "behind_caddy": args.behind_caddy,
            "results": results,
            "target_p99_ms": 50,
        }
        print(json.dumps(summary), flush=True)
    finally:
        for server in reversed(servers):
            server.terminate()
            server.wait(timeout=30)
        if args.keep:
            out.print(f"database kept: {dsn}")
        else:
            drop_database(dsn)


if __name__ == "__main__":
    main()
