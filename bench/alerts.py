"""Alert benchmark: `python -m bench.alerts` (not a test).

Starts its own Mosquitto and scratch database, then runs ingest, the alert services and the API in one process
(as `mimamori up` does). A background load of readings is published at ``--rate`` messages per second (pass half
the ingest peak that `python -m bench.ingest` measured on this machine: its readings_per_s / 2), while river
gauges cross their thresholds. Each crossing's latency is measured from the reading's device time to the moment
its alert event arrives on the live stream (SSE, /v1/alerts/stream). Prints a table, then one JSON line with
alert_latency_p50_ms and alert_latency_p99_ms.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg_pool import ConnectionPool
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from bench.ingest import bench_settings, percentile
from devices import load_catalogue, sync_catalogue, upsert_device, upsert_tenant
from devices.keys import Role, create_key
from devkit.api_server import ApiServer
from devkit.broker import Mosquitto
from devkit.databases import create_scratch_database, drop_database
from hub.compose import in_process_hub
from mimamori.migrate import migrate

PREFIX = "mimamori/v1"
TENANT = "bench"
SITE = {"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8}
RULES = """\
rules:
  - id: bench-river
    kind: threshold
    hazard: flood
    title: {en: River water level, ja: 河川水位}
    target: {device_type: river_gauge}
    metric: water_level
    levels_from_site: {2: caution_m}
    deadband: 0.05
"""
console = Console()


class StreamClock:
    """Reads the live stream and records, per event, receive time minus the reading's device time."""

    def __init__(self, url: str, key: str) -> None:
        self.latencies_ms: list[float] = []
        self.stored_ms: list[float] = []  # device time -> event stored (ingest + evaluation)
        self.events = 0
        self._url, self._key = url, key
        self.open = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        headers = {"X-API-Key": self._key}
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as client,
            client.stream("GET", self._url, headers=headers) as response,
        ):
            self.open.set()
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("data: "):
                    received = datetime.now(UTC)
                    event = json.loads(line[6:])
                    self.events += 1
                    if event["device_time"]:
                        device_time = datetime.fromisoformat(event["device_time"])
                        self.latencies_ms.append((received - device_time).total_seconds() * 1000)
                        stored = datetime.fromisoformat(event["at"])
                        self.stored_ms.append((stored - device_time).total_seconds() * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=2000, help="background messages per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--load-devices", type=int, default=50)
    parser.add_argument("--gauges", type=int, default=20, help="gauges that cross their caution level")
    parser.add_argument("--crossings-per-s", type=float, default=5.0)
    args = parser.parse_args()

    broker = Mosquitto()
    broker.start()
    dsn = create_scratch_database("mimamori_bench_alerts")
    rules_dir = Path(tempfile.mkdtemp(prefix="mimamori-bench-rules-"))
    (rules_dir / "bench.yaml").write_text(RULES, "utf-8")
    load = [f"load-{i:04d}" for i in range(args.load_devices)]
    gauges = [f"gauge-{i:03d}" for i in range(args.gauges)]
    try:
        settings = bench_settings(
            dsn,
            broker,
            mqtt_session_expiry_s=0,
            mqtt_client_id="bench-alerts-ingest",
            alerts_rules_dir=str(rules_dir),
            alerts_mqtt_username=broker.username,
            alerts_mqtt_password=SecretStr(broker.password or ""),
        )
        migrate(settings)
        with psycopg.connect(dsn) as conn:
            sync_catalogue(conn, load_catalogue())
            upsert_tenant(conn, TENANT, "Benchmark", "operator")
            for d in load:
                upsert_device(conn, device_id=d, tenant_id=TENANT, device_type="river_gauge")
            for g in gauges:
                upsert_device(
                    conn, device_id=g, tenant_id=TENANT, device_type="river_gauge", lon=137.18, lat=35.09, metadata=SITE
                )
            key = create_key(conn, TENANT, Role.viewer)[1]
        pool = ConnectionPool(dsn, min_size=2, max_size=8, open=True)
        with in_process_hub(settings, pool, alerts=True, ready_timeout_s=30) as hub, ApiServer(hub.app()) as api:
            clock = StreamClock(api.url + "/v1/alerts/stream", key)
            clock.thread.start()
            clock.open.wait(10)
            time.sleep(0.5)
            pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-alerts-pub", protocol=mqtt.MQTTv5)
            if broker.username:
                pub.username_pw_set(broker.username, broker.password)
            pub.max_inflight_messages_set(1000)
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            console.print(
                f"load {args.rate:,.0f} msg/s on {len(load)} devices for {args.seconds:g} s, "
                f"{args.crossings_per_s:g} threshold crossings/s on {len(gauges)} gauges"
            )
            total = int(args.rate * args.seconds)
            every = max(1, int(args.rate / args.crossings_per_s))
            high = dict.fromkeys(gauges, False)
            crossings = 0
            start = time.perf_counter()
            for i in range(total):
                delay = start + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                ts = datetime.now(UTC).isoformat()
                if i % every == 0:
                    g = gauges[crossings % len(gauges)]
                    high[g] = not high[g]
                    crossings += 1
                    body = f'{{"ts":"{ts}","values":{{"water_level":{5.0 if high[g] else 2.0}}}}}'
                    pub.publish(f"{PREFIX}/{TENANT}/{g}/telemetry", body, qos=1)
                else:
                    d = load[i % len(load)]
                    pub.publish(
                        f"{PREFIX}/{TENANT}/{d}/telemetry", f'{{"ts":"{ts}","values":{{"battery":3.6}}}}', qos=1
                    )
            elapsed = time.perf_counter() - start
            deadline = time.monotonic() + 30
            while clock.events < crossings and time.monotonic() < deadline:
                time.sleep(0.1)
            clock.stop.set()
            pub.loop_stop()
            pub.disconnect()
        pool.close()
    finally:
        broker.cleanup()
        drop_database(dsn)

    lat = clock.latencies_ms
    if not lat:
        raise SystemExit("no alert events arrived on the stream")
    result = {
        "load_msgs_per_s": round(total / elapsed),
        "threshold_crossings": crossings,
        "alert_events_seen": clock.events,
        "alert_latency_p50_ms": round(percentile(lat, 0.5), 1),
        "alert_latency_p99_ms": round(percentile(lat, 0.99), 1),
        "alert_latency_max_ms": round(max(lat), 1),
        "stored_latency_p50_ms": round(percentile(clock.stored_ms, 0.5), 1),
    }
    table = Table(title="Mimamori alert benchmark: device time → event on the live stream")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("background load", f"{result['load_msgs_per_s']:,} msg/s")
    table.add_row("threshold crossings / events seen", f"{crossings} / {clock.events}")
    table.add_row(
        "latency p50 / p99 / max",
        f"{result['alert_latency_p50_ms']} / {result['alert_latency_p99_ms']} / {result['alert_latency_max_ms']} ms",
    )
    table.add_row("target p99", "≤ 500 ms")
    console.print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
