"""Geo-API benchmark: `python -m bench.api` (not a test).

Builds a scratch database with 10,000 devices, 100,000 synthetic stands (made and imported with the CLI:
`mimamori stands sample` + `mimamori stands import`) and a month of 10-minute readings for 100 devices (1-minute
readings for the first of them, dev-00000: 43,200 in the month), starts `mimamori api` as its own process, and
measures under concurrent clients:

* OGC items by bbox (devices, ~2 km box), * the stand at a point, * a time-series query (1 h buckets over a week),
* a stand tile at zoom 10 and at zoom 14, * and a baseline: `/ogc/conformance` (no database), measured in the same
  run, so figures from a busy machine can be read as ratios to it.

And the faces' scenarios (issue 18): each question asked through the native API (``<question>.native``), through
SensorThings at /sta/v1.1 (``….sta``) and through NGSI-LD at /ngsi-ld/v1 (``….ngsi_ld``), on the same data:

* ``raw_day``: a day of one device's raw readings (native ``/v1/devices/{id}/readings``; STA
  ``Datastreams(id)/Observations`` with a phenomenonTime window, ``$top=1000``, one page; NGSI-LD
  ``/temporal/entities/{id}`` with ``timerel=between``),
* ``hourly_week``: a week of its hourly means (native ``bucket=1h&agg=avg``; NGSI-LD ``options=aggregatedValues``
  ``aggrMethods=avg``, ``aggrPeriodDuration=PT1H``; STA has no aggregation, so it is not asked there),
* ``devices``: the tenant's device list, 100 (native ``/v1/devices``; STA ``Things``; NGSI-LD ``entities?type=Device``),
* ``month_paging``: deep pages of a month of 1-minute readings (``dev-00000`` reports every minute, the others
  every 10 minutes): STA's ``@iot.nextLink`` keyset links are followed from the first page, 1,000 Observations a
  page, and the last quarter of the pages timed; native asks the same 1,000 readings by their time window (it has no
  paging). ``month_first_page`` asks the first page both ways, so deep and first STA pages can be compared.

Prints a table of p50/p99 (and each face's p99 ÷ its question's native p99), then one JSON line. Targets: p99 ≤ 50
ms each; each face's p99 ≤ 1.5× native's (``faces_target_met``). ``--faces`` runs only the baseline and the faces'
scenarios, and seeds no stands.

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
from urllib.parse import quote, urlencode, urlsplit

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
DEVICE = "dev-00007"  # the time-series scenarios' device (10-minute readings)
MINUTE_DEVICE = "dev-00000"  # a month of 1-minute readings: the deep-paging scenario's device
FACES_TARGET = 1.5  # issue 18: STA and NGSI-LD cost no more than 1.5× the native API's p99


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
                    # MINUTE_DEVICE reports every minute (a month of 1-minute readings for the deep paging of
                    # the faces' scenarios), the others every 10 minutes
                    for m in range(10) if f"dev-{i:05d}" == MINUTE_DEVICE else (0,):
                        copy.write_row(
                            (
                                start + s * timedelta(minutes=10) + timedelta(minutes=m),
                                0.3 + 0.1 * math.sin((s * 10 + m) / 1440),
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


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _window(rng: random.Random, first: datetime, last: datetime, span: timedelta) -> tuple[datetime, datetime]:
    """A random ``span`` (whole minutes) inside the readings' range, or the whole range when it is shorter."""
    room = max(0, int((last - first - span) / timedelta(minutes=1)))
    start = first + timedelta(minutes=rng.randint(0, room))
    return start, min(start + span, last + timedelta(seconds=1))


def _native_readings(device: str, start: datetime, end: datetime, extra: str = "") -> str:
    return (
        f"/v1/devices/{device}/readings?"
        + urlencode({"metric": "soil_moisture", "start": _iso(start), "end": _iso(end)})
        + extra
    )


def _sta_observations(series_id: int, start: datetime, end: datetime, top: int) -> str:
    window = f"phenomenonTime ge {_iso(start)} and phenomenonTime lt {_iso(end)}"
    query = {"$filter": window, "$orderby": "phenomenonTime asc", "$top": str(top)}
    return f"/sta/v1.1/Datastreams({series_id})/Observations?" + urlencode(query, quote_via=quote)


def _ngsi_temporal(device: str, start: datetime, end: datetime, extra: str = "") -> str:
    query = {"attrs": "soil_moisture", "timerel": "between", "timeAt": _iso(start), "endTimeAt": _iso(end)}
    return f"/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Device:{device}?" + urlencode(query) + extra


def sta_pages(port: int, headers: dict[str, str], first: str) -> list[tuple[str, datetime, datetime]]:
    """Follow ``@iot.nextLink`` from ``first`` as a client does: each page's path and its first and last
    phenomenonTime."""
    pages: list[tuple[str, datetime, datetime]] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    url: str | None = first
    try:
        while url:
            conn.request("GET", url, headers=headers)
            r = conn.getresponse()
            body = json.loads(r.read())
            if r.status != 200 or not body["value"]:
                raise SystemExit(f"STA paging: {r.status} on {url}: {str(body)[:300]}")
            times = [datetime.fromisoformat(o["phenomenonTime"].replace("Z", "+00:00")) for o in body["value"]]
            pages.append((url, times[0], times[-1]))
            link = body.get("@iot.nextLink")
            url = None if link is None else urlsplit(link)._replace(scheme="", netloc="").geturl()
    finally:
        conn.close()
    return pages


# The faces' scenarios, each question asked through the native API (``….native``) and the same question through
# SensorThings (``….sta``) and NGSI-LD (``….ngsi_ld``); a face's p99 is compared with its question's native one.
FACES_NOT_ASKED = {
    "hourly_week.sta": "SensorThings 1.1 has no aggregation: a client would fetch the week's raw Observations",
    "month_paging.ngsi_ld": "NGSI-LD's temporal API pages by time window (timeAt/lastN), not by link: asked as native",
}


def faces_scenarios(
    rng: random.Random,
    requests: int,
    bounds: dict[str, tuple[datetime, datetime]],
    series: dict[str, int],
    deep: list[tuple[str, datetime, datetime]],
    first_page: tuple[str, datetime, datetime],
) -> dict[str, list[str]]:
    """URLs of the faces' scenarios: (a) a day of one device's raw readings, (b) a week of its hourly means, (c) the
    tenant's device list, (d) the deep pages of a month of 1-minute readings (``deep``: their STA nextLinks, from
    :func:`sta_pages`) and the same readings asked natively by their time window, beside the month's first page asked
    both ways (a keyset page deep in the month costs what the first does)."""
    first, last = bounds[DEVICE]
    days = [_window(rng, first, last, timedelta(days=1)) for _ in range(requests)]
    weeks = [_window(rng, first, last, timedelta(days=7)) for _ in range(requests)]
    hourly_native, hourly_ngsi = (
        "&bucket=1h&agg=avg",
        "&options=aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H",
    )
    pages = [deep[i % len(deep)] for i in range(requests)]
    return {
        "raw_day.native": [_native_readings(DEVICE, a, b) for a, b in days],
        "raw_day.sta": [_sta_observations(series[DEVICE], a, b, 1000) for a, b in days],
        "raw_day.ngsi_ld": [_ngsi_temporal(DEVICE, a, b) for a, b in days],
        "hourly_week.native": [_native_readings(DEVICE, a, b, hourly_native) for a, b in weeks],
        "hourly_week.ngsi_ld": [_ngsi_temporal(DEVICE, a, b, hourly_ngsi) for a, b in weeks],
        "devices.native": ["/v1/devices?limit=100" for _ in range(requests)],
        "devices.sta": ["/sta/v1.1/Things?%24top=100" for _ in range(requests)],
        "devices.ngsi_ld": ["/ngsi-ld/v1/entities?type=Device&limit=100" for _ in range(requests)],
        "month_paging.native": [_native_readings(MINUTE_DEVICE, a, b + timedelta(seconds=1)) for _, a, b in pages],
        "month_paging.sta": [url for url, _, _ in pages],
        "month_first_page.native": [
            _native_readings(MINUTE_DEVICE, first_page[1], first_page[2] + timedelta(seconds=1))
            for _ in range(requests)
        ],
        "month_first_page.sta": [first_page[0] for _ in range(requests)],
    }


def faces_ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each face's p99 ÷ its question's native p99 (``raw_day.sta`` ÷ ``raw_day.native``); also set in ``results``
    as ``p99_vs_native``. Pure."""
    ratios: dict[str, float] = {}
    for name, r in results.items():
        question, _, face = name.partition(".")
        native = results.get(f"{question}.native")
        if face in ("sta", "ngsi_ld") and native is not None:
            ratios[name] = r["p99_vs_native"] = round(r["p99_ms"] / (native["p99_ms"] or 0.1), 2)
    return ratios


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
    parser.add_argument(
        "--faces",
        action="store_true",
        help="only the baseline and the faces' scenarios (native vs SensorThings vs NGSI-LD); no stands are seeded",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its URL is printed)")
    parser.add_argument("--database", help="reuse a database kept by --keep (no seeding; it is kept again)")
    parser.add_argument("--peer", choices=["tipg"], help="compare with tipg instead (must come first: see above)")
    args = parser.parse_args()
    if args.peer:
        raise SystemExit("--peer tipg must be the first option: python -m bench.api --peer tipg [its options]")
    if not 8 <= args.reading_devices <= args.devices:
        raise SystemExit(f"--reading-devices must be at least 8 (the scenarios read {DEVICE}) and ≤ --devices")

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
                if args.faces:  # the faces' scenarios read no stands
                    args.stands = 0
                register = Path(tmp) / "stands.gpkg"
                sample = [*cli, "stands", "sample", str(register), "--count", str(args.stands)]
                if args.stands:
                    subprocess.run(sample, env=env, check=True)
                    subprocess.run([*cli, "stands", "import", str(register)], env=env, check=True)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ANALYZE stands")
            _, secret = create_key(conn, "toyota-city", Role.forestry, "bench")
            device = DEVICE
            found = conn.execute(
                "SELECT s.device_id, s.series_id, min(r.time), max(r.time) FROM series s"
                " JOIN series_readings r USING (series_id) WHERE s.device_id = ANY(%s) AND s.metric = 'soil_moisture'"
                " GROUP BY 1, 2",
                ([DEVICE, MINUTE_DEVICE],),
            ).fetchall()
            series = {d: sid for d, sid, _, _ in found}
            bounds = {d: (first, last) for d, _, first, last in found}
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

        scenarios: dict[str, list[str]] = {
            # The same server path without a database query: the machine's share of each figure, so runs on a
            # busy (shared) machine can be compared by their ratio to this.
            "baseline_conformance": ["/ogc/conformance" for _ in range(args.requests)],
        }
        if not args.faces:  # --faces: the baseline and the faces' scenarios only
            scenarios |= {
                "items_by_bbox": [bbox_url() for _ in range(args.requests)],
                "stand_at_point": [
                    f"/v1/stands/at?lon={lon}&lat={lat}"
                    for lon, lat in (rng.choice(stand_point) for _ in range(args.requests))
                ],
                "timeseries_1h_week": [series_url() for _ in range(args.requests)],
                "tile_z10": [tile_url(10) for _ in range(args.requests)],
                "tile_z14": [tile_url(14) for _ in range(args.requests)],
            }
        # (d): a month of MINUTE_DEVICE's 1-minute readings through STA's nextLinks, 1,000 a page; the last quarter
        # of the pages (at least the last) are the deep ones timed, the same readings asked natively by their window
        first, last = bounds[MINUTE_DEVICE]
        pages = sta_pages(
            port, headers, _sta_observations(series[MINUTE_DEVICE], first, last + timedelta(seconds=1), 1000)
        )
        deep = pages[-max(1, len(pages) // 4) :]
        out.print(
            f"{MINUTE_DEVICE}: {len(pages)} STA pages of a month's 1-minute readings; timing the last {len(deep)}"
        )
        scenarios |= faces_scenarios(rng, args.requests, bounds, series, deep, pages[0])
        for urls in scenarios.values():  # warm up caches and connections
            measure("warm-up", urls[:20], headers, port, 2)
        results = {name: measure(name, urls, headers, port, args.clients) for name, urls in scenarios.items()}
        base_p99 = results["baseline_conformance"]["p99_ms"] or 1.0
        for r in results.values():
            r["p99_vs_baseline"] = round(r["p99_ms"] / base_p99, 1)
        ratios = faces_ratios(results)
        shape = "behind Caddy" if args.behind_caddy else "one socket"
        title = f"geo-API, {args.clients} concurrent clients, {args.api_workers} API process(es), {shape}"
        table = Table("scenario", "p50 ms", "p99 ms", "p99 ÷ baseline", "p99 ÷ native", "requests", title=title)
        for name, r in results.items():
            vs_native = "" if name not in ratios else f"{ratios[name]} {'✓' if ratios[name] <= FACES_TARGET else '✗'}"
            cells = (str(r["p50_ms"]), str(r["p99_ms"]), str(r["p99_vs_baseline"]), vs_native, str(r["requests"]))
            table.add_row(name, *cells)
        Console(stderr=True, width=max(out.width, 110)).print(table)  # its columns whole on a narrow terminal
        for name, why in FACES_NOT_ASKED.items():
            out.print(f"{name}: not asked — {why}")
        out.print(f"faces' target: each face's p99 ≤ {FACES_TARGET}× its question's native p99")
        deep_vs_first = round(
            results["month_paging.sta"]["p99_ms"] / (results["month_first_page.sta"]["p99_ms"] or 0.1), 2
        )
        out.print(f"STA keyset paging: the month's deep pages' p99 ÷ its first page's: {deep_vs_first}")
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
            "faces": args.faces,
            "faces_minute_device_pages": len(pages),
            "faces_deep_pages_timed": len(deep),
            "faces_deep_vs_first_page_p99": deep_vs_first,
            "faces_ratios": ratios,
            "faces_not_asked": FACES_NOT_ASKED,
            "faces_target_ratio": FACES_TARGET,
            "faces_target_met": all(ratio <= FACES_TARGET for ratio in ratios.values()),
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
