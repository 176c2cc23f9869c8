"""OGC API peer benchmark: Mimamori against tipg on the same stands (`python -m bench.api --peer tipg`; not a test).

Seeds a scratch database with 100,000 synthetic stands (the CLI's `mimamori stands sample` + `stands import`, as
`bench.api` does), puts tipg (from PyPI, 1.x) in an environment of its own outside the repository
(~/.cache/mimamori/bench/tipg, made with uv on first use), and starts on the same database, one process each:

* tipg under uvicorn, serving the ``stands`` table only (``public.stands``),
* ``mimamori api --workers 1`` with the stand tile cache off (MIMAMORI_TILES_CACHE_MAX_ZOOM=-1),
* ``mimamori api --workers 1`` with it on (the default, up to zoom 14), for the tile scenarios only.

Then, with persistent client processes (the standard library's HTTP client, a kept-alive connection each), it
sends the same request sequence (same seed, same bbox, same limit) to both, interleaved in rounds
(A then B, then B then A, …; for tiles the two Mimamori servers and tipg in rotation, tipg having no tile
cache) so that the shared machine's noise falls on both:

* items by bbox, limit=100, at 1, 4 and 8 clients;
* stand tiles at zoom 10 and 14 (``/collections/…/tiles/WebMercatorQuad/…``), tile cache off and on.

It checks first that both answer the same number of features per request, and prints the body sizes. Prints a
table of p50/p99 with Mimamori ÷ tipg, then one JSON line. Target: items p99 ≤ 0.8× tipg's at 1, 4 and 8 clients,
with the p50 still ahead (ratio < 1).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from devices import load_catalogue, sync_catalogue, upsert_tenant
from devices.keys import Role, create_key
from devkit.databases import create_scratch_database, drop_database
from devkit.peer_env import CACHE, PeerEnvUnavailable, peer_python
from devkit.ports import free_port, wait_for_port
from mimamori.migrate import migrate
from mimamori.settings import Settings

out = Console(stderr=True, width=120)  # the table whole, not wrapped
TIPG_SPEC = "tipg==1.*"
TIPG_ENV = CACHE / "bench" / "tipg"
LIMIT = 100  # tipg's default page is 10, ours 100: both are asked for the same 100
# The attributes Mimamori's stand tiles carry (geo/queries.py _TILE_ROWS), asked of tipg too, which would
# otherwise put every column in its tiles; ``protected`` is computed by Mimamori and has no column to name.
TILE_PROPERTIES = "stand_id,species_1,age_1,age_class,area_ha,ownership,forest_type"
TARGET_P99_RATIO = 0.8


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def tipg_python(env_dir: Path = TIPG_ENV) -> Path:
    """tipg's interpreter, its environment made first when missing (uv venv + uv pip install; never the repo's)."""
    try:
        return peer_python(env_dir, [TIPG_SPEC, "uvicorn"], "import tipg, uvicorn")
    except PeerEnvUnavailable as e:
        raise SystemExit(f"--peer tipg: {e}") from e


def tipg_version(python: Path) -> str:
    found = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('tipg'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()


def seed_stands(dsn: str, stands: int) -> None:
    """The tenant an API key needs, and ``stands`` synthetic stands through the CLI, as bench.api makes them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        sync_catalogue(conn, load_catalogue())
        upsert_tenant(conn, "toyota-city", "Toyota City", "operator")
    env = os.environ | {"MIMAMORI_DATABASE_URL": dsn, "MIMAMORI_TIMESCALEDB": "off", "MIMAMORI_LOG_LEVEL": "WARNING"}
    cli = [sys.executable, "-m", "hub.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        register = Path(tmp) / "stands.gpkg"
        subprocess.run([*cli, "stands", "sample", str(register), "--count", str(stands)], env=env, check=True)
        subprocess.run([*cli, "stands", "import", str(register)], env=env, check=True)


def _connect(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/healthz")  # connected before the measured requests, so none counts a connect
    conn.getresponse().read()
    return conn


def _client(headers: dict[str, str], jobs: Any, results: Any) -> None:
    """One client process: runs jobs (port, urls) until None, each on a new kept-alive connection (uvicorn closes
    one idle for 5 s, as a client's connection to one server is while the other is measured)."""
    while (job := jobs.get()) is not None:
        port, urls = job
        conn = _connect(port)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        try:
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


class Clients:
    """``n`` client processes kept for the whole run (no process start inside a measurement)."""

    def __init__(self, n: int, headers: dict[str, str]) -> None:
        ctx = multiprocessing.get_context("fork")
        self.results = ctx.Queue()
        self.jobs = [ctx.Queue() for _ in range(n)]
        self.procs = [ctx.Process(target=_client, args=(headers, q, self.results)) for q in self.jobs]
        for proc in self.procs:
            proc.start()

    def run(self, port: int, urls: list[str]) -> tuple[list[float], dict[int, int]]:
        n = len(self.jobs)
        for i, q in enumerate(self.jobs):
            q.put((port, urls[i::n]))
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        for _ in self.jobs:
            part, codes = self.results.get(timeout=600)
            latencies += part
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count
        return latencies, statuses

    def close(self) -> None:
        for q in self.jobs:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=30)


@dataclass
class Side:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, part: tuple[list[float], dict[int, int]]) -> None:
        self.latencies += part[0]
        for code, n in part[1].items():
            self.statuses[code] = self.statuses.get(code, 0) + n

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
            "requests": len(ordered),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def interleaved(clients: Clients, sides: dict[str, tuple[int, list[str]]], rounds: int) -> dict[str, Any]:
    """The sequences (same length, request i of one the counterpart of request i of the others) in ``rounds``
    rounds, each round's slice sent to every server in turn, the order rotating from round to round."""
    names = list(sides)
    found = {name: Side() for name in names}
    step = math.ceil(len(next(iter(sides.values()))[1]) / rounds)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            port, urls = sides[name]
            if part := urls[r * step : (r + 1) * step]:
                found[name].add(clients.run(port, part))
    return {name: side.summary() for name, side in found.items()}


def ratios(mine: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    return {
        "mimamori": mine,
        "tipg": peer,
        "p50_ratio": round(mine["p50_ms"] / peer["p50_ms"], 2),
        "p99_ratio": round(mine["p99_ms"] / peer["p99_ms"], 2),
    }


def compare_bodies(port_a: int, urls_a: list[str], port_b: int, urls_b: list[str], headers: dict[str, str]) -> dict:
    """Features per answer of each server for the same requests (must be equal), and body sizes."""
    sizes_a, sizes_b, unequal = [], [], 0
    ca, cb = http.client.HTTPConnection("127.0.0.1", port_a), http.client.HTTPConnection("127.0.0.1", port_b)
    try:
        for ua, ub in zip(urls_a, urls_b, strict=True):
            bodies = []
            for conn, url in ((ca, ua), (cb, ub)):
                conn.request("GET", url, headers=headers)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise SystemExit(f"{url}: {r.status} {body[:300]!r}")
                bodies.append(body)
            features = [len(json.loads(body)["features"]) for body in bodies]
            unequal += features[0] != features[1]
            sizes_a.append(len(bodies[0]))
            sizes_b.append(len(bodies[1]))
    finally:
        ca.close()
        cb.close()
    return {
        "requests": len(urls_a),
        "unequal_feature_counts": unequal,
        "mimamori_body_kB": round(statistics.median(sizes_a) / 1000, 1),
        "tipg_body_kB": round(statistics.median(sizes_b) / 1000, 1),
    }


def start(cmd: list[str], env: dict[str, str], port: int, servers: list[subprocess.Popen[bytes]]) -> None:
    servers.append(subprocess.Popen(cmd, env=env))
    wait_for_port(port, timeout=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api --peer tipg",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stands", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="items by bbox: per client count and server")
    parser.add_argument("--rounds", type=int, default=8, help="interleaving rounds per scenario")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8], help="for items by bbox")
    parser.add_argument("--tile-clients", type=int, default=4)
    parser.add_argument(
        "--tile-requests", type=int, default=48, help="per zoom and server (tipg's zoom-10 tiles take seconds each)"
    )
    parser.add_argument("--box", type=float, default=0.02, help="bbox side in degrees (pages must be full)")
    parser.add_argument("--tipg-env", type=Path, default=TIPG_ENV, help="tipg's environment (made when missing)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its URL is printed)")
    parser.add_argument("--database", help="reuse a database kept by --keep (no seeding; it is kept again)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    python = tipg_python(args.tipg_env)
    peer_version = tipg_version(python)
    dsn = args.database or create_scratch_database("mimamori_bench_peer")
    args.keep = args.keep or bool(args.database)
    servers: list[subprocess.Popen[bytes]] = []
    clients: list[Clients] = []
    try:
        migrate(Settings(database_url=dsn, timescaledb="off"))  # type: ignore[arg-type]
        if not args.database:
            out.print(f"seeding {args.stands} stands")
            seed_stands(dsn, args.stands)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE stands")
            conn.execute("DELETE FROM tile_cache")  # cache on: rendered in this run's warm-up, as for tipg
            _, secret = create_key(conn, "toyota-city", Role.forestry, "bench-peer")
            points = conn.execute(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM stands ORDER BY stand_id"
                " LIMIT 400) s"
            ).fetchall()

        base = os.environ | {"MIMAMORI_DATABASE_URL": dsn, "MIMAMORI_TIMESCALEDB": "off"}
        base |= {"MIMAMORI_LOG_LEVEL": "WARNING"}
        api = [sys.executable, "-m", "hub.cli", "api", "--workers", "1"]
        ours, ours_cached, peer = free_port(), free_port(), free_port()
        out.print(f"starting mimamori api (1 worker, tile cache off) on {ours} and (cache on) on {ours_cached}")
        start(api, base | {"MIMAMORI_API_PORT": str(ours), "MIMAMORI_TILES_CACHE_MAX_ZOOM": "-1"}, ours, servers)
        start(api, base | {"MIMAMORI_API_PORT": str(ours_cached)}, ours_cached, servers)
        # tipg's own environment only: none of the repo's virtualenv, and only the stands table.
        peer_env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        peer_env |= {
            "DATABASE_URL": dsn,
            "TIPG_DB_SCHEMAS": '["public"]',
            "TIPG_DB_TABLES": '["public.stands"]',
            "TIPG_DB_DATETIME_EXTENT": "false",
        }
        out.print(f"starting tipg {peer_version} (uvicorn, 1 process) on {peer}")
        peer_cmd = [str(python), "-m", "uvicorn", "tipg.main:app", "--host", "127.0.0.1", "--port", str(peer)]
        start([*peer_cmd, "--no-access-log", "--log-level", "warning"], peer_env, peer, servers)

        rng = random.Random(2)
        boxes = []
        for _ in range(args.requests):
            lon, lat = rng.choice(points)
            lon, lat = lon - args.box / 2, lat - args.box / 2
            boxes.append(f"bbox={lon:.6f},{lat:.6f},{lon + args.box:.6f},{lat + args.box:.6f}&limit={LIMIT}")
        items_ours = [f"/ogc/collections/stands/items?{b}" for b in boxes]
        items_peer = [f"/collections/public.stands/items?{b}" for b in boxes]
        tiles = {z: [tile_of(*rng.choice(points), z) for _ in range(args.tile_requests)] for z in (10, 14)}

        def tile_urls(z: int) -> tuple[list[str], list[str]]:
            mine = [f"/ogc/collections/stands/tiles/WebMercatorQuad/{z}/{y}/{x}" for z, x, y in tiles[z]]
            theirs = [
                f"/collections/public.stands/tiles/WebMercatorQuad/{z}/{x}/{y}?properties={TILE_PROPERTIES}"
                for z, x, y in tiles[z]
            ]
            return mine, theirs

        headers = {"X-API-Key": secret}
        bodies = compare_bodies(ours, items_ours[:40], peer, items_peer[:40], headers)
        out.print(f"bodies (first 40 requests): {bodies}")
        if bodies["unequal_feature_counts"]:
            out.print("[red]the servers answered different numbers of features[/]")

        results: dict[str, Any] = {}
        for n in args.clients:
            pool = Clients(n, headers)
            clients.append(pool)
            pool.run(ours, items_ours[:20])  # warm-up: connections, plans, caches
            pool.run(peer, items_peer[:20])
            out.print(f"items by bbox, {n} client(s)")
            found = interleaved(pool, {"ours": (ours, items_ours), "tipg": (peer, items_peer)}, args.rounds)
            results[f"items_bbox_{n}c"] = ratios(found["ours"], found["tipg"])
            pool.close()
        pool = Clients(args.tile_clients, headers)
        clients.append(pool)
        for z in (10, 14):
            mine, theirs = tile_urls(z)
            out.print(f"tiles z{z}, tile cache off and on, {args.tile_clients} clients")
            pool.run(ours_cached, sorted(set(mine)))  # every tile once: cache on means warm
            pool.run(peer, theirs[:4])
            # tipg has no tile cache: its one sequence is the peer of both, in the same rounds.
            sides = {"off": (ours, mine), "on": (ours_cached, mine), "tipg": (peer, theirs)}
            found = interleaved(pool, sides, args.rounds)
            for cached in ("off", "on"):
                results[f"tiles_z{z}_cache_{cached}"] = ratios(found[cached], found["tipg"])
        pool.close()

        table = Table(
            "scenario",
            "Mimamori p50 / p99 ms",
            "tipg p50 / p99 ms",
            "p50 ratio",
            "p99 ratio",
            title=f"Mimamori ÷ tipg {peer_version}, one process each; items {args.requests}, tiles {args.tile_requests}"
            " requests per scenario and server",
        )
        for name, r in results.items():
            m, t = r["mimamori"], r["tipg"]
            table.add_row(
                name,
                f"{m['p50_ms']} / {m['p99_ms']}",
                f"{t['p50_ms']} / {t['p99_ms']}",
                str(r["p50_ratio"]),
                str(r["p99_ratio"]),
            )
        out.print(table)
        items = [r for name, r in results.items() if name.startswith("items_bbox_")]
        summary = {
            "bench": "api-peer",
            "peer": f"tipg {peer_version}",
            "stands": args.stands,
            "requests": args.requests,
            "tile_requests": args.tile_requests,
            "limit": LIMIT,
            "box_deg": args.box,
            "bodies": bodies,
            "results": results,
            "target_p99_ratio": TARGET_P99_RATIO,
            "target_met": all(r["p99_ratio"] <= TARGET_P99_RATIO and r["p50_ratio"] < 1 for r in items),
            "seconds": round(time.monotonic() - started),
        }
        print(json.dumps(summary), flush=True)
    finally:
        for pool in clients:
            for proc in pool.procs:
                if proc.is_alive():
                    proc.terminate()
        for server in reversed(servers):
            server.terminate()
            server.wait(timeout=30)
        if args.keep:
            out.print(f"database kept: {dsn}")
        else:
            drop_database(dsn)


if __name__ == "__main__":
    main()
