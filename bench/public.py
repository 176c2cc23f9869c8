"""The citizens' stampede: `python -m bench.public` (not a test).

In a typhoon everyone opens the river levels at once. This seeds a scratch database with a city's river and rain
gauges (the city file's and ``--gauges`` more) with their latest readings, a few open alerts and the city's
``river_levels``, ``rainfall`` and ``alerts`` datasets published (by an admin, through ``opendata.service`` as the
API does), starts ``mimamori api`` and, unless ``--no-ingest``, ``mimamori ingest`` with the simulators' typhoon
scenario publishing to the local Mosquitto (``--mqtt``), then drives with wrk at 50, 200 and 1,000 connections:

* ``latest_json`` — ``/open/datasets/<river levels>/latest``,
* ``public_page`` — ``/public``, the citizens' page,
* ``baseline`` — ``/ogc/conformance`` on the same server, no database: each figure is also given as a ratio to it.

``mimamori api`` lowers its CPU priority by ``MIMAMORI_API_NICE`` (19) so that readings win the cores from readers;
wrk, which in a real stampede would be the phones elsewhere, runs at that same lowered priority here.

The open-data rate limit is per client address and all the load comes from 127.0.0.1, so the run raises
``MIMAMORI_OPEN_RATE_PER_S`` / ``MIMAMORI_OPEN_BURST`` far past what it sends (the limit is not what is measured).

Ingest lag: a probe device publishes a reading ``--probe-rate`` times a second stamped with the wall clock; the
benchmark polls the committed rows and takes lag = time seen committed − reading time (polling adds up to
``POLL_S``). p99 is reported with no HTTP load (before the wrk runs) and during them.

Without wrk (Debian: ``apt-get install wrk``) it stops and says so. Prints a table, then one JSON line with
``target_met``. Targets: latest JSON and page ≥ 50 % of the baseline's requests/s, p99 ≤ 100 ms at 200
connections, no errors, ingest lag p99 unchanged (≤ quiet p99 × 1.25 + 25 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

from alerts.store import NewAlert, insert_alert, insert_event
from devices import load_catalogue, sync_catalogue, upsert_device
from devices.seed import seed_city
from devkit.databases import create_scratch_database, drop_database
from devkit.ports import free_port, wait_for_port
from ingest.series_numbers import series_numbers
from mimamori.migrate import migrate
from mimamori.settings import Settings
from opendata import DatasetDraft, Kind, service

out = Console(stderr=True)
TENANT = "toyota-city"
RIVERS = "city-river-levels"
PROBE = "bench-probe"
POLL_S = 0.02
CENTRE = (137.16, 35.08)
THRESHOLDS = {"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8, "river": "矢作川"}
P99_TARGET_MS = 100.0
THROUGHPUT_TARGET = 0.5


# -- seeding ------------------------------------------------------------------------------------------------------


def seed(dsn: str, gauges: int, now: datetime) -> None:
    """The city's devices plus ``gauges`` river and rain gauges each, latest readings for all, three alerts, and the
    city's river levels, rainfall and alerts published by an admin."""
    rng = random.Random(1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        sync_catalogue(conn, load_catalogue())
        seed_city(conn)
        for i in range(gauges):
            lon, lat = CENTRE[0] + rng.uniform(-0.2, 0.2), CENTRE[1] + rng.uniform(-0.12, 0.12)
            upsert_device(conn, device_id=f"gauge-{i:03d}", tenant_id=TENANT, device_type="river_gauge",
                          name=f"水位計 {i}", lon=lon, lat=lat, metadata=THRESHOLDS)  # fmt: skip
            upsert_device(conn, device_id=f"rain-{i:03d}", tenant_id=TENANT, device_type="rain_gauge",
                          name=f"雨量計 {i}", lon=lon + 0.01, lat=lat, metadata={})  # fmt: skip
        upsert_device(conn, device_id=PROBE, tenant_id=TENANT, device_type="rain_gauge", name="lag probe",
                      lon=CENTRE[0], lat=CENTRE[1])  # fmt: skip
        conn.execute(
            "INSERT INTO latest_readings (device_id, metric, time, value)"
            " SELECT d.id, CASE WHEN d.device_type LIKE 'river%%' THEN 'water_level' ELSE 'rainfall' END, %s,"
            " round((random() * 7)::numeric, 2) FROM devices d"
            " WHERE d.tenant_id = %s AND d.device_type IN ('river_gauge', 'river_gauge_crisis', 'rain_gauge')"
            " ON CONFLICT DO NOTHING",
            (now, TENANT),
        )
        for n, level in enumerate([2, 3, 4]):
            _alert(conn, f"gauge-{n:03d}" if n < gauges else None, f"Yahagi level {level}", level, now)
        for dataset_id, kind, ja, en in [
            (RIVERS, Kind.river_levels, "河川水位", "River levels"),
            ("city-rainfall", Kind.rainfall, "雨量", "Rainfall"),
            ("city-alerts", Kind.alerts, "警報", "Alerts"),
        ]:
            draft = DatasetDraft(id=dataset_id, kind=kind, tenant_id=TENANT, title_ja=ja, title_en=en,
                                 attribution="豊田市 / Toyota City")  # fmt: skip
            service.save(conn, draft, "admin", TENANT, "bench")
            service.publish(conn, dataset_id, True, "admin", TENANT, "bench")
        series_numbers(conn, [(PROBE, "rainfall")])
        conn.execute("ANALYZE")


def _alert(conn: psycopg.Connection, device: str | None, title: str, level: int, now: datetime) -> None:
    alert_id = insert_alert(
        conn,
        NewAlert(rule_id="river-bench", subject=device or title, rule_kind="threshold", hazard="flood",
                 title_en=title, title_ja=f"{title} 注意", device_id=device, tenant_id=TENANT, level=level,
                 value=4.8, device_time=now, location=CENTRE if device else None, area_geojson=None,
                 buffer_m=0),
    )  # fmt: skip
    insert_event(conn, alert_id, "raised", level=level, previous=None, state="open", value=4.8, device_time=now,
                 actor="rule:river-bench")  # fmt: skip


# -- wrk ----------------------------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> dict[str, float]:
    """requests/s, p50/p99 (ms), requests and errors (non-2xx/3xx + socket errors) from `wrk --latency`'s output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    total = re.search(r"(\d+) requests in", text)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unreadable wrk output:\n{text}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    return {
        "rps": round(float(rps.group(1)), 1),
        "p50_ms": round(_ms(p50.group(1)), 2),
        "p99_ms": round(_ms(p99.group(1)), 2),
        "requests": int(total.group(1)),
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket_errors,
        # A run in which nothing was answered is a failure, not a clean zero: requests still waiting when wrk
        # stops are counted nowhere (its timeout errors are only those answered later than --timeout).
        "errors": (int(non2xx.group(1)) if non2xx else 0) + socket_errors + (int(total.group(1)) == 0),
    }


def run_wrk(wrk: str, url: str, connections: int, seconds: float, threads: int) -> dict[str, float]:
    # The load generator stands in for phones elsewhere: here it shares the cores, so it runs at the API's own
    # lowered priority (MIMAMORI_API_NICE), not above the ingestor the stampede must not slow.
    nice = ["nice", "-n", str(Settings().api_nice)]
    cmd = [*nice, wrk, "--latency", "-t", str(min(threads, connections)), "-c", str(connections), "-d", f"{seconds:g}s",
           "--timeout", "10s", url]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return parse_wrk(done.stdout)


# -- ingest lag ---------------------------------------------------------------------------------------------------


@dataclass
class LagProbe:
    """Publishes the probe's readings stamped now; polls committed rows; keeps (seen at, lag ms)."""

    dsn: str
    host: str
    port: int
    topic: str
    rate: float
    samples: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=f, daemon=True) for f in (self._publish, self._poll)]
        for t in threads:
            t.start()
        return threads

    def _publish(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-public-probe-{os.getpid()}",
                             protocol=mqtt.MQTTv5)  # fmt: skip
        client.connect(self.host, self.port)
        client.loop_start()
        try:
            while not self.stop.wait(1 / self.rate):
                body = {"ts": datetime.now(UTC).isoformat(), "values": {"rainfall": 0.5}}
                client.publish(self.topic, orjson.dumps(body), qos=1)
        finally:
            client.loop_stop()
            client.disconnect()

    def _poll(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            series = series_numbers(conn, [(PROBE, "rainfall")])[PROBE, "rainfall"]
            last = datetime.now(UTC)
            while not self.stop.wait(POLL_S):
                rows = conn.execute(
                    "SELECT time FROM series_readings WHERE series_id = %s AND time > %s ORDER BY time",
                    (series, last),
                ).fetchall()
                seen = datetime.now(UTC)
                for (t,) in rows:
                    self.samples.append((time.monotonic(), (seen - t).total_seconds() * 1000))
                if rows:
                    last = rows[-1][0]

    def wait_first(self, timeout: float) -> bool:
        """Until the ingestor commits a probe reading: it is subscribed and the quiet figure can start."""
        end = time.monotonic() + timeout
        while not self.samples and time.monotonic() < end:
            time.sleep(0.1)
        return bool(self.samples)

    def p99_between(self, start: float, end: float) -> float | None:
        lags = sorted(lag for at, lag in self.samples if start <= at <= end)
        return round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 1) if lags else None


# -- the run ------------------------------------------------------------------------------------------------------


def targets(results: dict[str, dict[int, dict[str, float]]], lag: dict[str, float | None] | None) -> dict[str, bool]:
    """The issue's targets, each pass/fail (pure: tested on figures, not on a run)."""
    met: dict[str, bool] = {}
    for name in ("latest_json", "public_page"):
        runs = results[name]
        met[f"{name} ≥ 50 % of baseline req/s"] = all(
            r["rps"] >= THROUGHPUT_TARGET * results["baseline"][c]["rps"] for c, r in runs.items()
        )
        if 200 in runs:
            met[f"{name} p99 ≤ 100 ms at 200"] = runs[200]["p99_ms"] <= P99_TARGET_MS
    met["no errors"] = all(r["errors"] == 0 for runs in results.values() for r in runs.values())
    if lag is not None:
        quiet, loaded = lag.get("quiet_p99_ms"), lag.get("under_load_p99_ms")
        met["ingest lag p99 unchanged"] = quiet is not None and loaded is not None and loaded <= quiet * 1.25 + 25
    return met


def raise_file_limit() -> None:
    """1,000 connections need 1,000 descriptors in wrk and the server (children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard) if hard != resource.RLIM_INFINITY else 8192, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", default="50,200,1000", help="comma-separated wrk connection counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--gauges", type=int, default=60, help="river and rain gauges each, beyond the city file's")
    parser.add_argument("--api-workers", type=int, default=2, help="`mimamori api --workers` (one per core)")
    parser.add_argument("--no-ingest", action="store_true", help="no ingestor, no simulator, no lag figures")
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883", help="broker the simulator and ingest use")
    parser.add_argument("--speed", type=float, default=60.0, help="typhoon acceleration (60: 24 h in 24 min)")
    parser.add_argument("--probe-rate", type=float, default=20.0, help="lag-probe readings per second")
    parser.add_argument("--quiet-seconds", type=float, default=15.0, help="lag measured with no HTTP load first")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its URL is printed)")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("bench.public needs wrk on PATH (Debian: apt-get install wrk)")
    raise_file_limit()

    dsn = create_scratch_database("mimamori_bench_public")
    # A topic prefix and share group of this run's own: the local broker is shared, and nobody else's publishes
    # should reach this ingestor (nor this simulator's reach anyone else's).
    prefix = f"bench-public-{os.getpid()}/v1"
    env = os.environ | {
        "MIMAMORI_DATABASE_URL": dsn,
        "MIMAMORI_TIMESCALEDB": "off",
        "MIMAMORI_LOG_LEVEL": "WARNING",
        # All load comes from one address: the per-address limit would answer 429 to nearly all of it.
        "MIMAMORI_OPEN_RATE_PER_S": "1000000000",
        "MIMAMORI_OPEN_BURST": "1000000000",
        "MIMAMORI_MQTT_URL": args.mqtt,
        "MIMAMORI_MQTT_TOPIC_PREFIX": prefix,
        "MIMAMORI_MQTT_CLIENT_ID": f"bench-public-ingest-{os.getpid()}",
        "MIMAMORI_MQTT_SHARE_GROUP": f"bench-public-{os.getpid()}",
    }
    cli = [sys.executable, "-m", "hub.cli"]
    procs: list[subprocess.Popen[bytes]] = []
    sim: Any = None
    probe: LagProbe | None = None
    try:
        settings = Settings(database_url=dsn, timescaledb="off", mqtt_url=args.mqtt, mqtt_topic_prefix=prefix)  # type: ignore[arg-type]
        migrate(settings)
        out.print(f"seeding the city's devices, {args.gauges} more river and rain gauges each, alerts, datasets")
        seed(dsn, args.gauges, datetime.now(UTC))
        port = free_port()
        procs.append(subprocess.Popen([*cli, "api", "--workers", str(args.api_workers)],
                                      env=env | {"MIMAMORI_API_PORT": str(port)}))  # fmt: skip
        wait_for_port(port, timeout=60)
        lag: dict[str, float | None] | None = None
        if not args.no_ingest:
            from simulators import city_devices, run_in_background

            procs.append(subprocess.Popen([*cli, "ingest"], env=env))
            sim = run_in_background(settings, "typhoon", args.speed, devices=city_devices())
            address = settings.mqtt
            probe = LagProbe(dsn, address.host, address.port, f"{prefix}/{TENANT}/{PROBE}/telemetry", args.probe_rate)
            probe.start()
            out.print(f"ingest: typhoon at {args.speed:g}× + lag probe; {args.quiet_seconds:g} s with no HTTP load")
            if not probe.wait_first(90):
                raise SystemExit("ingest: no probe reading committed within 90 s (is the broker at --mqtt up?)")
            q0 = time.monotonic()
            time.sleep(args.quiet_seconds)
            lag = {"quiet_p99_ms": probe.p99_between(q0, time.monotonic())}
        base = f"http://127.0.0.1:{port}"
        urls = {
            "baseline": f"{base}/ogc/conformance",
            "latest_json": f"{base}/open/datasets/{RIVERS}/latest",
            "public_page": f"{base}/public",
        }
        for name, url in urls.items():  # every answer right before any is timed
            done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            if done.stdout != "200":
                raise SystemExit(f"{name}: {url} answered {done.stdout}")
            run_wrk(wrk, url, 8, 2, args.threads)  # warm-up
        results: dict[str, dict[int, dict[str, float]]] = {name: {} for name in urls}
        loaded: list[tuple[float, float]] = []
        for c in connections:
            for name, url in urls.items():
                out.print(f"wrk {name} at {c} connections for {args.seconds:g} s")
                t0 = time.monotonic()
                results[name][c] = run_wrk(wrk, url, c, args.seconds, args.threads)
                loaded.append((t0, time.monotonic()))
        if probe is not None and lag is not None:
            lag["under_load_p99_ms"] = _p99_in(probe, loaded)
        for runs in results.values():
            for c, r in runs.items():
                b = results["baseline"][c]
                r["rps_vs_baseline"] = round(r["rps"] / b["rps"], 2) if b["rps"] else None
                r["p99_vs_baseline"] = round(r["p99_ms"] / b["p99_ms"], 2) if b["p99_ms"] else None
        met = targets(results, lag)
        title = f"citizens' stampede, wrk {args.seconds:g} s per run, {args.api_workers} API process(es)"
        table = Table("scenario", "conns", "req/s", "÷ base", "p50 ms", "p99 ms", "÷ base", "errors", title=title)
        for c in connections:
            for name in urls:
                r = results[name][c]
                table.add_row(name, str(c), f"{r['rps']:,.0f}", str(r["rps_vs_baseline"]), str(r["p50_ms"]),
                              str(r["p99_ms"]), str(r["p99_vs_baseline"]), str(int(r["errors"])))  # fmt: skip
        out.print(table)
        if lag is not None:
            out.print(f"ingest lag p99: {lag['quiet_p99_ms']} ms without HTTP load, {lag['under_load_p99_ms']} ms with")
        for what, ok in met.items():
            out.print(f"  {'[green]met[/]' if ok else '[red]NOT met[/]'}  {what}")
        summary = {
            "bench": "public",
            "tool": "wrk",
            "seconds": args.seconds,
            "connections": connections,
            "api_workers": args.api_workers,
            "gauges": args.gauges,
            "open_rate_limit_raised": True,
            "ingest": lag is not None,
            "results": {name: {str(c): r for c, r in runs.items()} for name, runs in results.items()},
            "ingest_lag": lag,
            "targets": met,
            "target_met": all(met.values()),
        }
        print(json.dumps(summary), flush=True)
    finally:
        if probe is not None:
            probe.stop.set()
        if sim is not None:
            sim.stop()
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
        if args.keep:
            out.print(f"database kept: {dsn}")
        else:
            drop_database(dsn)


def _p99_in(probe: LagProbe, windows: list[tuple[float, float]]) -> float | None:
    lags = sorted(lag for at, lag in probe.samples if any(a <= at <= b for a, b in windows))
    return round(lags[min(len(lags) - 1, int(len(lags) * 0.99))], 1) if lags else None


if __name__ == "__main__":
    main()
