"""aiomqtt against the simulator's own driver for a fleet of connections: `python -m bench.mqtt_clients`.

Starts a private Mosquitto (anonymous, no connection limit) and, for N connections (2,000, and 5,000 when the
file-descriptor limit allows; ``--connections``), measures each client side in a fresh process of its own, three
runs interleaved:

- ``paho-loop``: the simulator's own connection code, ``simulators.publisher._Link`` (plain paho clients on one
  asyncio loop via add_reader/add_writer, a last will, MQTT 5) and one keepalive task, as ``play`` runs them;
- ``aiomqtt``: one ``aiomqtt.Client`` per device on one loop, MQTT 5, the same last will.

Measured: time to connect all (every CONNACK in), the process's RSS after that minus its RSS before the clients
were made (VmRSS), CPU seconds of the process (all threads: aiomqtt connects in an executor), and the time and CPU
for every connection to publish 5 QoS-1 messages one after another, each waiting for its PUBACK, as a device
sends. Nobody subscribes, so the broker answers PUBACK 0x10 ("no matching subscribers"), a success to MQTT; the
simulator resends those, the benchmark does not. Before each run it waits (up to 90 s) for the last run's ports
to leave TIME_WAIT. Prints a table and, last, a line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devkit.ports import free_port, wait_for_port

DRIVERS = ("paho-loop", "aiomqtt")
MESSAGES = 5  # per connection, each waiting for its PUBACK
PAYLOAD = b'{"ts": "2026-12-02T10:00:00+00:00", "readings": {"water_level_m": 2.41, "battery_v": 3.62}}'
FDS_PER_CONNECTION = 1  # the client process's; the broker has its own limit (inherited, raised with ours)
FD_HEADROOM = 200  # the interpreter's own files, the broker's listener and log, the executor's pipes
# Each run leaves its connections' ports in TIME_WAIT for a minute; with tens of thousands of them the kernel's
# search for a free ephemeral port costs the next run seconds of CPU (measured: 1 s → 3–4 s for 5,000 connects), so
# each run waits until few are left. The figure is the whole machine's (other engineers' tests included).
TIME_WAIT_QUIET = 2000
TIME_WAIT_PATIENCE_S = 90.0

console = Console(stderr=True)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (inherited by the broker and workers); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb() -> int:
    """This process's resident set, from /proc/self/status (VmRSS, in kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def sys_s() -> float:
    """System CPU seconds of the process (kernel work: sockets, the ephemeral port search)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def cpu_s() -> float:
    """CPU seconds of the whole process, every thread (user + system)."""
    return time.process_time()


def time_wait() -> int:
    """TCP sockets in TIME_WAIT on this host (network namespace), from /proc/net/sockstat."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("tw") + 1])
    raise RuntimeError("no TCP line in /proc/net/sockstat")


def wait_for_quiet() -> tuple[int, float]:
    """Wait until few sockets are in TIME_WAIT (or patience runs out); returns their count and the wait."""
    start = time.monotonic()
    while (tw := time_wait()) > TIME_WAIT_QUIET and time.monotonic() - start < TIME_WAIT_PATIENCE_S:
        time.sleep(1)
    return tw, time.monotonic() - start


def _topic(client_id: str) -> str:
    return f"mimamori/v1/bench/{client_id}/telemetry"


def _will_topic(client_id: str) -> str:
    return f"mimamori/v1/bench/{client_id}/status"


async def _run_paho(port: int, n: int) -> dict[str, Any]:
    """The simulator's own driver: its _Link per device, and one task calling loop_misc each second (as play)."""
    from simulators.credentials import Login
    from simulators.publisher import BrokerTarget, PublisherStats, _Link, _pause

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stats = PublisherStats()
    target = BrokerTarget("127.0.0.1", port)

    async def keepalive(links: list[_Link]) -> None:
        while not stop.is_set():
            for link in links:
                link.misc()
            await _pause(stop, 1.0)

    links: list[_Link] = []
    ticker: asyncio.Future[None] | None = None

    async def connect() -> int:
        nonlocal ticker
        for i in range(n):
            cid = f"bench-paho-{i}"
            links.append(_Link(loop, target, cid, Login(), (_will_topic(cid), b'{"state": "offline"}'), stats))
        ticker = asyncio.ensure_future(keepalive(links))
        done = await asyncio.gather(*(link.connect(stop) for link in links))
        return sum(1 for ok in done if ok)

    async def publish() -> int:
        async def device(link: _Link) -> int:
            acked = 0
            for _ in range(MESSAGES):
                reason = await link.publish(_topic(link.client_id), PAYLOAD, None)
                acked += not getattr(reason, "is_failure", True)
            return acked

        return sum(await asyncio.gather(*(device(link) for link in links)))

    async def close() -> None:
        stop.set()
        for link in links:
            link.close()
        deadline = loop.time() + 30
        while stats.connected and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if ticker is not None:
            await ticker

    result = await _measure(connect, publish, close)
    result["errors"] = stats.errors
    result["last_error"] = stats.last_error
    return result


async def _run_aiomqtt(port: int, n: int) -> dict[str, Any]:
    """One aiomqtt.Client per device on this loop, MQTT 5, QoS 1."""
    import aiomqtt

    clients: list[aiomqtt.Client] = []
    errors: list[str] = []

    async def connect() -> int:
        for i in range(n):
            cid = f"bench-aiomqtt-{i}"
            will = aiomqtt.Will(_will_topic(cid), b'{"state": "offline"}', qos=1)
            clients.append(
                aiomqtt.Client(
                    "127.0.0.1", port, identifier=cid, protocol=aiomqtt.ProtocolVersion.V5, will=will, keepalive=60
                )
            )
        done = await asyncio.gather(*(c.__aenter__() for c in clients), return_exceptions=True)
        errors.extend(str(r) for r in done if isinstance(r, BaseException))
        return sum(1 for r in done if not isinstance(r, BaseException))

    async def publish() -> int:
        async def device(client: aiomqtt.Client, cid: str) -> int:
            for _ in range(MESSAGES):
                # Returns once the PUBACK is in; aiomqtt does not hand on its reason code.
                await client.publish(_topic(cid), PAYLOAD, qos=1)
            return MESSAGES

        done = await asyncio.gather(
            *(device(c, f"bench-aiomqtt-{i}") for i, c in enumerate(clients)), return_exceptions=True
        )
        errors.extend(str(r) for r in done if isinstance(r, BaseException))
        return sum(r for r in done if isinstance(r, int))

    async def close() -> None:
        done = await asyncio.gather(*(c.__aexit__(None, None, None) for c in clients), return_exceptions=True)
        errors.extend(f"disconnect: {r}" for r in done if isinstance(r, BaseException))

    result = await _measure(connect, publish, close)
    result["errors"] = len(errors)
    result["last_error"] = errors[-1][:200] if errors else None
    return result


async def _measure(
    connect: Callable[[], Awaitable[int]], publish: Callable[[], Awaitable[int]], close: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    gc.collect()
    rss0, cpu0, sys0, t0 = rss_kb(), cpu_s(), sys_s(), time.perf_counter()
    connected = await connect()
    t1, cpu1, sys1 = time.perf_counter(), cpu_s(), sys_s()
    gc.collect()
    rss1 = rss_kb()
    cpu2, sys2, t2 = cpu_s(), sys_s(), time.perf_counter()
    acked = await publish()
    t3, cpu3, sys3 = time.perf_counter(), cpu_s(), sys_s()
    await close()
    return {
        "connected": connected,
        "acked": acked,
        "connect_s": t1 - t0,
        "connect_cpu_s": cpu1 - cpu0,
        "connect_sys_s": sys1 - sys0,
        "rss_mb": (rss1 - rss0) / 1024,
        "publish_s": t3 - t2,
        "publish_cpu_s": cpu3 - cpu2,
        "publish_sys_s": sys3 - sys2,
    }


def worker(driver: str, port: int, n: int) -> None:
    """One measurement in this (fresh) process; prints its JSON."""
    raise_fd_limit()
    run = _run_paho if driver == "paho-loop" else _run_aiomqtt
    print(json.dumps(asyncio.run(run(port, n))), flush=True)


def measure(driver: str, port: int, n: int) -> dict[str, Any]:
    tw, waited = wait_for_quiet()
    console.print(f"  ({tw} sockets in TIME_WAIT after waiting {waited:.0f} s)")
    out = subprocess.run(
        [sys.executable, "-m", "bench.mqtt_clients", "--worker", driver, "--port", str(port), "--connections", str(n)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{driver} at {n} connections failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["connected"] != n or result["acked"] != n * MESSAGES or result["errors"]:
        raise RuntimeError(f"{driver} at {n} connections did not complete: {result}")
    return result | {"time_wait_before": tw}


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = folder / f"m-{port}.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_connections -1\nlog_dest none\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return broker, port


MEASURES = (
    ("connect_s", "connect all, s", "{:.2f}"),
    ("connect_cpu_s", "connect CPU, s", "{:.2f}"),
    ("rss_mb", "RSS after connect, MB", "{:.1f}"),
    ("publish_s", f"{MESSAGES}× QoS 1 each, s", "{:.2f}"),
    ("publish_cpu_s", f"{MESSAGES}× QoS 1 CPU, s", "{:.2f}"),
)


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        key: {
            "median": round(statistics.median(r[key] for r in runs), 3),
            "min": round(min(r[key] for r in runs), 3),
            "max": round(max(r[key] for r in runs), 3),
        }
        for key, _, _ in MEASURES
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, nargs="+", default=None, help="counts to measure (2000 5000)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--worker", choices=DRIVERS, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.port, args.connections[0])
        return
    limit = raise_fd_limit()
    wanted = args.connections or [2000, 5000]
    counts = [n for n in wanted if n * FDS_PER_CONNECTION + FD_HEADROOM <= limit]
    for n in sorted(set(wanted) - set(counts)):
        console.print(f"[yellow]{n} connections skipped: the file-descriptor limit is {limit}[/]")
    started = datetime.now(UTC)
    folder = Path(tempfile.mkdtemp(prefix="mimamori-bench-mqtt-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for n in counts:
            broker, port = start_broker(folder)
            try:
                runs: dict[str, list[dict[str, Any]]] = {d: [] for d in DRIVERS}
                for i in range(args.runs):
                    # Interleaved, the order alternating, so drift in the shared machine's load hits both alike.
                    for driver in DRIVERS if i % 2 == 0 else DRIVERS[::-1]:
                        console.print(f"{n} connections, run {i + 1}/{args.runs}: {driver}")
                        runs[driver].append(measure(driver, port, n))
            finally:
                broker.terminate()
                broker.wait(10)
            for driver in DRIVERS:
                results[f"{driver}/{n}"] = {
                    "driver": driver,
                    "connections": n,
                    **summarise(runs[driver]),
                    "runs": runs[driver],
                }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    table = Table(
        title=escape(
            f"MQTT clients for the simulator fleet, {started:%Y-%m-%d %H:%M} UTC: median [range] of {args.runs} runs"
        )
    )
    table.add_column("client")
    table.add_column("connections", justify="right")
    for _, label, _ in MEASURES:
        table.add_column(label, justify="right")
    for r in results.values():
        cells = [
            f"{fmt.format(r[k]['median'])} [{fmt.format(r[k]['min'])}–{fmt.format(r[k]['max'])}]"
            for k, _, fmt in MEASURES
        ]
        table.add_row(r["driver"], f"{r['connections']:,}", *map(escape, cells))
    out = Console(width=160)  # the whole table on one line per row, also when piped
    out.print(f"date: {started.isoformat(timespec='seconds')}")
    out.print(table)
    print(
        json.dumps(
            {"date": started.isoformat(timespec="seconds"), "messages_per_connection": MESSAGES, "results": results}
        )
    )


if __name__ == "__main__":
    main()
