"""Ingest benchmark: `python -m bench.ingest` (not a test).

Starts its own Mosquitto (the project's configuration) and a scratch database, then measures in one run:

* client limit — a bare paho loop that only counts QoS-1 messages (the issue's ceiling of one Python process);
* ingest's own client (ingest/mqtt_client.py) that only counts, taking plain publishes by its fast path past
  paho's general message handling: the ceiling of the client ingest actually runs;
* mimamori ingest at 1 and at 10 readings per message, first publish → last commit, as one process and as
  ``--processes`` processes on the shared subscription (`mimamori ingest --workers N`);
* naive baseline — one INSERT and commit per message, as a tutorial would write it;
* database limit — binary COPY of the same rows from memory into a keyed table;
* publish → commit lag at half of the measured peak;
* the Node-RED peer (bench/nodered_peer.py) at 1 and 10 readings per message, next to ingest, when node and npm
  are there (skipped with the reason printed otherwise);
* a drain phase at 1 and at 10 readings per message: a backlog queued at the broker for each consumer's persistent
  session while it is away (publishers then stopped), then each consumer alone timed from its connection to its
  last commit, with its CPU time over the span: one ingest process, Node-RED, and ``mosquitto_sub -C N`` (the
  broker's own delivery limit to a C subscriber); stored rows counted by SQL. ``--drain-only``: this phase alone,
  with smaller backlogs (a smoke run).

The first three are measured side by side in each of several rounds (``--rounds``); the figures are medians over
rounds and each ratio the median of the rounds' own ratios. mosquitto_pub is the publisher. Prints tables, then
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import sql
from psycopg_pool import ConnectionPool
from rich.console import Console
from rich.table import Table

from bench.nodered_peer import (
    NODERED_HOME,
    NODERED_SPEC,
    PEER_TABLE,
    PG_SPEC,
    BrokerLogin,
    NodeRedPeer,
    cpu_seconds,
    create_peer_table,
    missing_tool,
    nodered_home,
)
from devices import load_catalogue, sync_catalogue, upsert_device, upsert_tenant
from devkit.broker import Mosquitto
from devkit.databases import create_scratch_database, drop_database
from ingest import CommittedReadings, MqttIngestor
from ingest.contract import subscription_filters
from ingest.gc_tuning import tune_for_streaming
from ingest.mqtt_client import make_client, missing_paho_names
from ingest.series_numbers import series_numbers
from mimamori.migrate import migrate
from mimamori.settings import Settings

PREFIX = "mimamori/v1"
TENANT = "bench"
console = Console(stderr=True)


def bench_settings(dsn: str, broker: Mosquitto, **overrides: object) -> Settings:
    """Settings for the benchmark's scratch database and private broker, with the ingestor's broker account."""
    return Settings(
        database_url=dsn,  # type: ignore[arg-type]
        mqtt_url=broker.url,
        timescaledb=os.environ.get("MIMAMORI_TIMESCALEDB", "off"),  # type: ignore[arg-type]
        mqtt_username=broker.ingest_username,
        mqtt_password=broker.ingest_password,  # type: ignore[arg-type]
        **overrides,  # type: ignore[arg-type]
    )


def prepare_database(settings: Settings, devices: list[str]) -> None:
    """Migrate the scratch database and register the benchmark tenant's river gauges."""
    migrate(settings)
    with psycopg.connect(settings.dsn) as conn:
        sync_catalogue(conn, load_catalogue())
        upsert_tenant(conn, TENANT, "Benchmark")
        for d in devices:
            upsert_device(conn, device_id=d, tenant_id=TENANT, device_type="river_gauge")
        series_numbers(conn, [(d, "water_level") for d in devices])  # the naive baseline looks them up


def device_ids(n: int) -> list[str]:
    return [f"bench-{i:03d}" for i in range(n)]


def write_payload_files(folder: Path, devices: list[str], messages: int, per_message: int, t0: datetime) -> None:
    """One file per device, one payload per line (mosquitto_pub -l publishes a message per line)."""
    per_device = messages // len(devices)
    for d_index, device in enumerate(devices):
        lines = []
        for m in range(per_device):
            sets = []
            for r in range(per_message):
                ts = t0 + timedelta(milliseconds=(m * per_message + r) * 10 + d_index)
                sets.append(f'{{"ts":"{ts.isoformat()}","values":{{"water_level":{(m % 500) / 100}}}}}')
            lines.append(sets[0] if per_message == 1 else "[" + ",".join(sets) + "]")
        (folder / f"{device}.txt").write_text("\n".join(lines) + "\n")


def publisher_command(broker: Mosquitto, device: str) -> list[str]:
    """mosquitto_pub publishing one QoS-1 message per line of its standard input, as ``device``'s topic."""
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
           "-t", f"{PREFIX}/{TENANT}/{device}/telemetry", "-l", "-M", "1000"]  # fmt: skip
    if broker.username:
        cmd += ["-u", broker.username, "-P", broker.password or ""]
    return cmd


def start_publishers(broker: Mosquitto, folder: Path, devices: list[str]) -> list[subprocess.Popen[bytes]]:
    procs = []
    for device in devices:
        with open(folder / f"{device}.txt", "rb") as stdin:
            procs.append(
                subprocess.Popen(
                    publisher_command(broker, device), stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            )
    return procs


def wait_publishers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        _, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"mosquitto_pub failed: {err.decode().strip()}")


def timed_subscriber(
    broker: Mosquitto,
    folder: Path,
    devices: list[str],
    expected: int,
    client_id: str,
    handle: Callable[[mqtt.MQTTMessage], None],
) -> float:
    """Messages per second a paho loop takes with ``handle`` in its callback (paho acknowledges after it)."""
    counter = _Counter(expected)

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        handle(msg)
        counter.add()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if broker.ingest_username:
        client.username_pw_set(broker.ingest_username, broker.ingest_password)
    client.on_message = on_message
    return _timed(client, broker, folder, devices, counter)


def bare_paho_loop(broker: Mosquitto, folder: Path, devices: list[str], expected: int) -> float:
    """The client limit: a paho loop that only counts."""
    return timed_subscriber(broker, folder, devices, expected, "bench-bare", lambda _msg: None)


def fast_path_loop(broker: Mosquitto, folder: Path, devices: list[str], expected: int) -> float:
    """The ingestor's own client (ingest/mqtt_client.py) that only counts: plain publishes by its fast path,
    acknowledged a hundred at a time as a batch commit would. The ceiling of ingest's own client."""
    counter = _Counter(expected)
    settings = Settings(
        mqtt_url=broker.url,
        mqtt_username=broker.ingest_username,
        mqtt_password=broker.ingest_password,  # type: ignore[arg-type]
    )
    client = make_client(settings, "bench-fast-path", manual_ack=True)
    unacked: list[int] = []

    def plain(_topic: str, _payload: bytes, mid: int) -> None:
        unacked.append(mid)
        if len(unacked) >= 100 or counter.received + 1 == expected:
            client.ack_batch(unacked[:])
            unacked.clear()
        counter.add()

    client.on_plain_publish = plain
    client.on_message = lambda _c, _u, msg: plain(msg.topic, msg.payload, msg.mid)  # what paho's path takes
    return _timed(client, broker, folder, devices, counter)


class _Counter:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.last = 0.0
        self.done = threading.Event()

    def add(self) -> None:
        self.received += 1
        if self.received == self.expected:
            self.last = time.perf_counter()
            self.done.set()


def _timed(client: mqtt.Client, broker: Mosquitto, folder: Path, devices: list[str], counter: _Counter) -> float:
    """Connect and subscribe ``client``, publish every file, and time first publish → last message counted."""
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = Settings().mqtt_receive_maximum  # the same window the ingestor announces
    client.connect("127.0.0.1", broker.port, properties=props)
    client.subscribe(f"{PREFIX}/+/+/telemetry", qos=1)
    client.loop_start()
    time.sleep(0.5)
    start = time.perf_counter()
    wait_publishers(start_publishers(broker, folder, devices))
    if not counter.done.wait(600):
        raise RuntimeError(f"{client._client_id!r} got {counter.received} of {counter.expected}")
    client.loop_stop()
    client.disconnect()
    return counter.expected / (counter.last - start)


def naive_baseline(broker: Mosquitto, dsn: str, folder: Path, devices: list[str], expected: int) -> float:
    """What a tutorial writes: one INSERT and one commit per message, inside paho's callback."""
    with psycopg.connect(dsn) as conn:

        def insert(msg: mqtt.MQTTMessage) -> None:
            doc = json.loads(msg.payload)
            device = msg.topic.split("/")[3]
            for metric, value in doc["values"].items():
                conn.execute(
                    "INSERT INTO series_readings (time, value, series_id, delay_cs)"
                    " SELECT %(t)s, %(v)s, series_id, reading_delay_cs(%(t)s) FROM series"
                    " WHERE device_id = %(d)s AND metric = %(m)s ON CONFLICT DO NOTHING",
                    {"t": doc["ts"], "v": value, "d": device, "m": metric},
                )
            conn.commit()

        return timed_subscriber(broker, folder, devices, expected, "bench-naive", insert)


def copy_limit(dsn: str, rows: int, t0: datetime) -> float:
    """Rows per second PostgreSQL takes by binary COPY into a table keyed like series_readings."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE copy_target (LIKE series_readings INCLUDING ALL)")
        data = [(t0 + timedelta(milliseconds=i), float(i % 500), i % 10, 0) for i in range(rows)]
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY copy_target (time, value, series_id, delay_cs) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["timestamptz", "float8", "int4", "int4"])
            for row in data:
                copy.write_row(row)
        conn.commit()
        return rows / (time.perf_counter() - start)


class CommitClock:
    """Listens to committed readings: counts them, remembers the last commit, measures lag."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0
        self.lags_ms: list[float] = []
        self.measure_lag = False
        self.done = threading.Event()
        self.expected = 0

    def __call__(self, readings: list) -> None:
        now = time.perf_counter()
        self.count += len(readings)
        self.last = now
        if self.measure_lag:
            wall = datetime.now(UTC)
            self.lags_ms.extend((wall - r.time).total_seconds() * 1000 for r in readings)
        if self.count >= self.expected:
            self.done.set()


def run_ingest(
    settings: Settings,
    pool: ConnectionPool,
    broker: Mosquitto,
    folder: Path,
    devices: list[str],
    expected_readings: int,
    client_id: str,
) -> float:
    clock = CommitClock()
    clock.expected = expected_readings
    stream = CommittedReadings()
    stream.subscribe(clock)
    ingestor = MqttIngestor(
        settings.model_copy(update={"mqtt_client_id": client_id, "mqtt_share_group": client_id}), pool, committed=stream
    )
    ingestor.connect()
    stop = threading.Event()
    worker = threading.Thread(target=ingestor.run, args=(stop,))
    worker.start()
    time.sleep(0.5)
    start = time.perf_counter()
    wait_publishers(start_publishers(broker, folder, devices))
    if not clock.done.wait(600):
        raise RuntimeError(f"ingest stored {clock.count} of {expected_readings}")
    stop.set()
    worker.join()
    return expected_readings / (clock.last - start)


def _ingest_process(
    settings: Settings,
    client_id: str,
    ready: Any,
    stop: Any,
    stored: Any,
    last: Any,
    drain: tuple[Any, Any, Any, Any] | None = None,
    gate: tuple[Any, Any] | None = None,
) -> None:
    """One `mimamori ingest` process of several on the shared subscription (its own interpreter and pool). With
    ``drain`` (four shared values), the time and this process's CPU seconds when it connects, its CPU seconds at
    its last commit, and the readings it committed itself: the drain phase times a consumer from its connection
    on, its start-up left out, and sees how the broker shared the backlog between processes. With ``gate`` (a
    semaphore and an event), it says it is set up and connects only when the event is set: processes started
    together then connect together, however long each took to import."""
    tune_for_streaming(settings.ingest_gc_gen0)
    pool = ConnectionPool(settings.dsn, min_size=1, max_size=2, open=True)
    stream = CommittedReadings()

    def count(readings: list) -> None:
        now = time.perf_counter()  # CLOCK_MONOTONIC: comparable between processes
        with stored.get_lock():
            stored.value += len(readings)
            last.value = max(last.value, now)
            if drain:
                drain[2].value = time.process_time()
                drain[3].value += len(readings)

    stream.subscribe(count)
    ingestor = MqttIngestor(settings.model_copy(update={"mqtt_client_id": client_id}), pool, committed=stream)
    if gate:
        gate[0].release()
        gate[1].wait()
    if drain:
        drain[0].value, drain[1].value = time.perf_counter(), time.process_time()
    ingestor.connect()
    ready.release()
    halt = threading.Event()
    worker = threading.Thread(target=ingestor.run, args=(halt,))
    worker.start()
    stop.wait()
    halt.set()
    worker.join()
    pool.close()


def run_ingest_processes(
    settings: Settings,
    processes: int,
    broker: Mosquitto,
    folder: Path,
    devices: list[str],
    expected_readings: int,
    group: str,
) -> float:
    """Readings per second stored by ``processes`` ingest processes sharing one subscription, as
    `mimamori ingest --workers N` runs them."""
    ctx = multiprocessing.get_context("spawn")  # this process has threads (its pool): no fork
    ready, stop = ctx.Semaphore(0), ctx.Event()
    stored, last = ctx.Value("q", 0), ctx.Value("d", 0.0)
    shared = settings.model_copy(update={"mqtt_share_group": group})
    procs = [
        ctx.Process(target=_ingest_process, args=(shared, f"{group}-{n}", ready, stop, stored, last))
        for n in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            if not ready.acquire(timeout=60):
                raise RuntimeError("an ingest process did not connect")
        time.sleep(0.5)
        start = time.perf_counter()
        wait_publishers(start_publishers(broker, folder, devices))
        deadline = time.monotonic() + 600
        while stored.value < expected_readings:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{processes} ingest processes stored {stored.value} of {expected_readings}")
            time.sleep(0.01)
        return expected_readings / (last.value - start)
    finally:
        stop.set()
        for proc in procs:
            proc.join(timeout=30)


def run_nodered(
    peer: NodeRedPeer, broker: Mosquitto, folder: Path, devices: list[str], expected_readings: int, client_id: str
) -> float:
    """The Node-RED peer as run_ingest measures ingest: connected first, then first publish → last commit."""
    red = peer.start(client_id, telemetry_filter(client_id))
    try:
        time.sleep(0.5)
        start = time.perf_counter()
        wait_publishers(start_publishers(broker, folder, devices))
        red.wait_committed(expected_readings)
        rate = expected_readings / (red.last - start)
    finally:
        red.stop()
    if (stored := count_rows(peer.dsn, PEER_TABLE)) != expected_readings:
        raise RuntimeError(f"Node-RED stored {stored} of {expected_readings} readings")
    return rate


DRAIN_SESSION_S = 3600  # the drained sessions outlive the consumer's absence while the backlog is queued


def telemetry_filter(group: str) -> str:
    return f"$share/{group}/{PREFIX}/+/+/telemetry"


def prime_session(broker: Mosquitto, client_id: str, filters: list[str]) -> None:
    """Make ``client_id``'s persistent session with its subscriptions, then leave: what it is sent meanwhile is
    queued at the broker until a consumer of that id comes back (the project's broker queues up to 5 million
    messages and 1 GiB per client, deploy/mosquitto/mosquitto.conf, so a bench backlog is never dropped)."""
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(broker.ingest_username, broker.ingest_password)
    client.on_subscribe = lambda *_args: subscribed.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = DRAIN_SESSION_S
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=props)
    client.loop_start()
    client.subscribe([(f, 1) for f in filters])
    if not subscribed.wait(10):
        raise RuntimeError(f"{client_id} was not subscribed")
    client.disconnect()
    client.loop_stop()


class Drained:
    """One consumer's drain: readings per second from its connection (its session resumed, the backlog flowing)
    to its last commit, CPU per 1,000 readings over the same span, and the rows found by SQL afterwards."""

    def __init__(
        self, readings: int, seconds: float, cpu_s: float, stored: int, shares: list[int] | None = None
    ) -> None:
        self.readings_per_s = readings / seconds
        self.cpu_ms_per_1000 = cpu_s / readings * 1_000_000
        self.stored = stored
        self.shares = shares or [readings]  # readings committed by each process
        self.broker_cpu_s = self.database_cpu_s = 0.0  # beside the consumer, over its drain (ingest's drains)


def count_rows(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        return int(found[0]) if found else 0


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` (every thread, idle samples too, raw collapsed stacks) until it is interrupted:
    ``py-spy`` from PATH, else by ``uvx``."""
    exe = [found] if (found := shutil.which("py-spy")) else ["uvx", "py-spy"]
    cmd = [*exe, "record", "--pid", str(pid), "--rate", "250", "--idle", "--threads", "--format", "raw", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_py_spy(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def drain_members(group: str, processes: int) -> list[str]:
    """Client ids of the ingest processes draining ``group``'s backlog: the group's own name for one process."""
    return [group] if processes == 1 else [f"{group}-{n}" for n in range(processes)]


def drain_mimamori(
    settings: Settings,
    dsn: str,
    group: str,
    expected: int,
    processes: int = 1,
    profile: Path | None = None,
    watch: Callable[[], CpuWatch] | None = None,
) -> Drained:
    """``processes`` ingest processes (as `mimamori ingest --workers N` runs them) resuming the sessions of
    ``group``'s members and their backlog, timed from the first connection to the last commit, CPU summed; with
    ``profile`` (one process), py-spy records it there (its start-up included: leave out stacks through
    importlib)."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Semaphore(0), ctx.Event()
    stored, last = ctx.Value("q", 0), ctx.Value("d", 0.0)
    own = settings.model_copy(update={"mqtt_share_group": group, "mqtt_session_expiry_s": DRAIN_SESSION_S})
    drains = [tuple(ctx.Value(t, 0) for t in "dddq") for _ in range(processes)]
    gate = (ctx.Semaphore(0), ctx.Event())
    procs = [
        ctx.Process(target=_ingest_process, args=(own, member, ready, stop, stored, last, drain, gate))
        for member, drain in zip(drain_members(group, processes), drains, strict=True)
    ]
    for proc in procs:
        proc.start()
    spy = py_spy(procs[0].pid or 0, profile) if profile else None
    try:
        for _ in procs:
            if not gate[0].acquire(timeout=120):
                raise RuntimeError("an ingest process did not start")
        watching = watch() if watch else None
        gate[1].set()
        deadline = time.monotonic() + 600
        while stored.value < expected:
            if time.monotonic() > deadline or not all(p.is_alive() for p in procs):
                raise RuntimeError(f"{processes} ingest process(es) drained {stored.value} of {expected}")
            time.sleep(0.002)
        seconds = last.value - min(d[0].value for d in drains)
        span = (expected, seconds, sum(d[2].value - d[1].value for d in drains if d[3].value))
        beside = watching.stop() if watching else (0.0, 0.0)
    finally:
        stop_py_spy(spy)
        stop.set()
        for proc in procs:
            proc.join(timeout=30)
    done = Drained(*span, count_rows(dsn, "series_readings"), [int(d[3].value) for d in drains])
    done.broker_cpu_s, done.database_cpu_s = beside
    return done


def drain_nodered(peer: NodeRedPeer, dsn: str, client_id: str, expected: int) -> Drained:
    """Node-RED started on ``client_id``'s session, timed from its connection (its log line, when Node-RED's CPU
    is read too) to its last committed batch."""
    red = peer.start(client_id, telemetry_filter(client_id))
    try:
        red.wait_committed(expected)
        span = (expected, red.last - red.connected_at, cpu_seconds(red.proc.pid) - red.cpu_at_connect)
    finally:
        red.stop()
    return Drained(*span, count_rows(dsn, PEER_TABLE))


def drain_broker(broker: Mosquitto, client_id: str, messages: int) -> tuple[float, float]:
    """The broker's own delivery limit: ``mosquitto_sub`` (C) resuming the session and counting the backlog
    (``-C``) to /dev/null. Messages per second, spawn to exit; and its CPU ms per 1,000 messages."""
    cmd = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5", "-q", "1", "-c",
           "-i", client_id, "-x", str(DRAIN_SESSION_S), "-t", telemetry_filter(client_id), "-C", str(messages),
           "-W", "600", "-u", broker.ingest_username or "", "-P", broker.ingest_password or ""]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"mosquitto_sub drained less than {messages} messages ({proc.returncode})")
    return messages / seconds, (usage.ru_utime + usage.ru_stime) / messages * 1_000_000


def backend_pids(dsn: str) -> list[int]:
    """The server processes of the other connections to ``dsn``'s database (the consumer's, during a drain)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


class CpuWatch:
    """CPU seconds the broker, and the database's server processes for the bench's database, use over a span:
    what a consumer's drain costs beside its own process (the machine's other users' backends are not counted)."""

    def __init__(self, broker: Mosquitto, dsn: str) -> None:
        self._broker = broker.proc.pid if broker.proc else 0
        self._dsn = dsn
        self._broker0 = cpu_seconds(self._broker)
        self._db0 = {pid: _cpu_or_zero(pid) for pid in backend_pids(dsn)}

    def stop(self) -> tuple[float, float]:
        """(broker CPU s, database CPU s) since the watch began; backends opened meanwhile counted whole."""
        db = sum(_cpu_or_zero(pid) - self._db0.get(pid, 0.0) for pid in backend_pids(self._dsn))
        return cpu_seconds(self._broker) - self._broker0, db


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def refuse_dropped_messages(broker: Mosquitto) -> None:
    """Stop when the broker says it has dropped queued messages (a queue limit reached): the drain would wait for
    readings that will never come."""
    log = (broker.data_dir / "mosquitto.log").read_text(errors="replace")
    if "being dropped" in log:
        raise RuntimeError(
            "the broker dropped queued messages (max_queued_messages / max_queued_bytes): a smaller backlog"
        )


def drain_round(
    settings: Settings,
    dsn: str,
    broker: Mosquitto,
    folder: Path,
    devices: list[str],
    messages: int,
    per_message: int,
    tag: str,
    peer: NodeRedPeer | None,
    turn: int,
    reset: Callable[[], None],
    processes: int = 1,
    profile: Path | None = None,
) -> dict[str, float]:
    """A backlog queued at the broker for each consumer's session (consumers away, publishers then stopped),
    then each consumer alone draining its own copy, the order rotating from round to round. With ``processes``
    above 1, also that many ingest processes on one shared subscription: a session is made for each member of
    the group first, so the broker queues the group's backlog among them (Mosquitto hands a shared
    subscription's messages to its members in turn, connected or not: the shares counted are in the result)."""
    published = messages // len(devices) * len(devices)
    readings = published * per_message
    write_payload_files(folder, devices, published, per_message, datetime.now(UTC) - timedelta(days=2))
    ids = {"mimamori": f"drain-m{per_message}-{tag}", "broker": f"drain-sub{per_message}-{tag}"}
    prime_session(broker, ids["mimamori"], subscription_filters(PREFIX, ids["mimamori"]))
    prime_session(broker, ids["broker"], [telemetry_filter(ids["broker"])])
    if processes > 1:
        ids["workers"] = f"drain-w{per_message}-{tag}"
        for member in drain_members(ids["workers"], processes):
            prime_session(broker, member, subscription_filters(PREFIX, ids["workers"]))
    if peer:
        ids["nodered"] = f"drain-nr{per_message}-{tag}"
        prime_session(broker, ids["nodered"], [telemetry_filter(ids["nodered"])])
    wait_publishers(start_publishers(broker, folder, devices))
    refuse_dropped_messages(broker)
    k = f"_{per_message}"
    r: dict[str, float] = {f"published{k}": readings}
    names = list(ids)
    for name in names[turn % len(names) :] + names[: turn % len(names)]:
        if name == "broker":
            watching = CpuWatch(broker, dsn)
            msgs_per_s, cpu = drain_broker(broker, ids[name], published)
            r[f"broker_broker_cpu{k}"] = watching.stop()[0] / readings * 1_000_000
            r |= {f"broker_msgs{k}": msgs_per_s, f"broker_readings{k}": msgs_per_s * per_message}
            r[f"broker_cpu{k}"] = cpu / per_message
        elif name == "nodered":
            done = drain_nodered(peer, dsn, ids[name], readings)  # type: ignore[arg-type]
        else:
            # Each ingest drain meets an empty table, as the first one did: duplicates take a slower path.
            with psycopg.connect(dsn) as conn:
                conn.execute("TRUNCATE series_readings, latest_readings")
            n = processes if name == "workers" else 1
            spy_at = profile / f"drain-{per_message}-{tag}.txt" if profile and name == "mimamori" else None
            done = drain_mimamori(settings, dsn, ids[name], readings, n, spy_at, lambda: CpuWatch(broker, dsn))
            r[f"{name}_least_share{k}"] = min(done.shares) / readings
            r[f"{name}_broker_cpu{k}"] = done.broker_cpu_s / readings * 1_000_000
            r[f"{name}_database_cpu{k}"] = done.database_cpu_s / readings * 1_000_000
        if name != "broker":
            r |= {f"{name}{k}": done.readings_per_s, f"{name}_cpu{k}": done.cpu_ms_per_1000}
            r[f"{name}_rows{k}"] = done.stored
    reset()
    return r


def lag_at_rate(
    settings: Settings, pool: ConnectionPool, broker: Mosquitto, devices: list[str], rate: float, seconds: float
) -> list[float]:
    """Publish at a steady rate with device time = publish time; lag = commit seen − device time."""
    clock = CommitClock()
    clock.measure_lag = True
    total = int(rate * seconds)
    clock.expected = total
    stream = CommittedReadings()
    stream.subscribe(clock)
    ingestor = MqttIngestor(
        settings.model_copy(update={"mqtt_client_id": "bench-lag", "mqtt_share_group": "bench-lag"}),
        pool,
        committed=stream,
    )
    ingestor.connect()
    stop = threading.Event()
    worker = threading.Thread(target=ingestor.run, args=(stop,))
    worker.start()
    # mosquitto_pub processes publish, so no publisher competes with the ingestor for this process's interpreter.
    publisher = PacedPublisher(broker, devices, rate)
    time.sleep(0.5)
    publisher.run(threading.Event(), total)
    publisher.close()
    if not clock.done.wait(120):
        raise RuntimeError(f"lag run stored {clock.count} of {total}")
    stop.set()
    worker.join()
    return clock.lags_ms


def line_publisher(broker: Mosquitto, device: str) -> subprocess.Popen[bytes]:
    """mosquitto_pub for ``device``, publishing each line written to its standard input as it arrives."""
    return subprocess.Popen(
        publisher_command(broker, device), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


class PacedPublisher:
    """Publishes one reading per message at ``rate`` per second, device time = publish time, QoS 1.

    mosquitto_pub processes publish (one per device, fed a line per message): a Python client publishing tens of
    thousands of messages a second would need a core of its own, fall behind, and pile the rest up in its own
    memory, so the benchmark would measure the publisher rather than the ingestor (bench.ingest's lag phase shares
    this process with the ingestor, bench.soak with its commit listener).
    """

    def __init__(self, broker: Mosquitto, devices: list[str], rate: float) -> None:
        self.rate = rate
        self.sent = 0
        self._publishers = [line_publisher(broker, device) for device in devices]

    def run(self, stop: threading.Event, total: int | None = None) -> None:
        """Publish until ``stop`` is set, or ``total`` messages have been fed."""
        start = time.perf_counter()
        i = 0
        while not stop.is_set() and (total is None or i < total):
            # Paced against the start, not the previous message, so a slow moment is caught up, not lost.
            delay = start + i / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ts = datetime.now(UTC).isoformat()
            level = 2.0 + (i % 300) / 100  # stays below every flood threshold: a quiet day's traffic
            stdin = self._publishers[i % len(self._publishers)].stdin
            assert stdin is not None
            stdin.write(f'{{"ts":"{ts}","values":{{"water_level":{level}}}}}\n'.encode())
            stdin.flush()
            i += 1
            self.sent = i

    def close(self) -> None:
        """Close the publishers' input; each publishes what it has been given, then exits."""
        wait_publishers(self._publishers)


def refuse_without_fast_path() -> None:
    """Stop before anything starts when this paho would send ingest down its public path (make_client's
    self-check): the figures would be paho's public client's, not the hub's (docs/scaling.md)."""
    missing = missing_paho_names()
    if missing:
        raise SystemExit(
            f"bench.ingest: paho-mqtt {paho.mqtt.__version__} lacks what the ingest fast path uses "
            f"({', '.join(missing)}), so ingest would take paho's public path and these figures would not be the "
            "hub's. Install the paho-mqtt version pyproject.toml pins (docs/scaling.md)."
        )


def percentile(values: list[float], q: float) -> float:
    """The q-quantile, within the observed range ("inclusive": a small sample's p99 never exceeds its max)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def streaming_round(
    args: argparse.Namespace,
    n: int,
    settings: Settings,
    pool: ConnectionPool,
    broker: Mosquitto,
    dsn: str,
    folder: Path,
    devices: list[str],
    t0: datetime,
    peer: NodeRedPeer | None,
    reset: Callable[[], None],
) -> dict[str, float]:
    """One round of the publish-while-ingesting phases, the baselines next to what they are baselines for."""
    tag = f"round {n}/{args.rounds}:"
    r: dict[str, float] = {}
    console.print(f"[bold]{tag}[/] bare paho receive loop, 1 reading per message")
    write_payload_files(folder, devices, args.messages, 1, t0)
    r["bare"] = bare_paho_loop(broker, folder, devices, args.messages)
    console.print(f"[bold]{tag}[/] ingest's own client, fast path, counting only")
    r["fast_client"] = fast_path_loop(broker, folder, devices, args.messages)
    console.print(f"[bold]{tag}[/] mimamori ingest, 1 reading per message")
    r["ingest_1"] = run_ingest(settings, pool, broker, folder, devices, args.messages, f"bench-1-{n}")
    reset()
    if peer:
        console.print(f"[bold]{tag}[/] Node-RED peer, 1 reading per message")
        r["nodered_stream_1"] = run_nodered(peer, broker, folder, devices, args.messages, f"bench-nr1-{n}")
        reset()
    if args.processes > 1:
        console.print(f"[bold]{tag}[/] {args.processes} ingest processes, 1 reading per message")
        r["ingest_1_processes"] = run_ingest_processes(
            settings, args.processes, broker, folder, devices, args.messages, f"bench-p1-{n}"
        )
        reset()
    console.print(f"[bold]{tag}[/] bare paho loop and mimamori ingest, 10 readings per message")
    write_payload_files(folder, devices, args.batched_messages, 10, t0)
    r["bare_10"] = bare_paho_loop(broker, folder, devices, args.batched_messages) * 10
    r["ingest_10"] = run_ingest(settings, pool, broker, folder, devices, args.batched_messages * 10, f"bench-10-{n}")
    reset()
    if peer:
        console.print(f"[bold]{tag}[/] Node-RED peer, 10 readings per message")
        r["nodered_stream_10"] = run_nodered(
            peer, broker, folder, devices, args.batched_messages * 10, f"bench-nr10-{n}"
        )
        reset()
    if args.processes > 1:
        console.print(f"[bold]{tag}[/] {args.processes} ingest processes, 10 readings per message")
        r["ingest_10_processes"] = run_ingest_processes(
            settings, args.processes, broker, folder, devices, args.batched_messages * 10, f"bench-p10-{n}"
        )
        reset()
    console.print(f"[bold]{tag}[/] naive baseline: INSERT + commit per message")
    write_payload_files(folder, devices, args.naive_messages, 1, t0)
    r["naive"] = naive_baseline(broker, dsn, folder, devices, args.naive_messages)
    reset()
    return r


def start_peer(args: argparse.Namespace, broker: Mosquitto, dsn: str, folder: Path) -> tuple[NodeRedPeer | None, str]:
    """The Node-RED peer (installed on first use), or None and why not."""
    if args.no_nodered:
        return None, "--no-nodered"
    if reason := missing_tool():
        return None, reason
    try:
        home = nodered_home(args.nodered_home)
    except subprocess.CalledProcessError as e:
        return None, f"npm install of {NODERED_SPEC} {PG_SPEC} failed ({e.returncode})"
    login = BrokerLogin(broker.port, broker.ingest_username, broker.ingest_password)
    return NodeRedPeer(home, folder / "nodered", login, dsn), ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=40_000, help="messages at 1 reading each")
    parser.add_argument("--batched-messages", type=int, default=20_000, help="messages at 10 readings each")
    parser.add_argument("--naive-messages", type=int, default=4_000)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--lag-seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3, help="each measures the baselines beside ingest")
    parser.add_argument(
        "--processes", type=int, default=2, help="also measure this many ingest processes on one subscription (1: not)"
    )
    parser.add_argument(
        "--drain-only", action="store_true", help="only the drain comparison, with smaller backlogs (a smoke run)"
    )
    parser.add_argument(
        "--drain-messages", type=int, help="backlog at 1 reading per message (40,000; 10,000 with --drain-only)"
    )
    parser.add_argument(
        "--drain-batched-messages",
        type=int,
        help="backlog at 10 readings per message (20,000; 5,000 with --drain-only); above ingest's batch of 2,000",
    )
    parser.add_argument("--no-nodered", action="store_true", help="leave the Node-RED peer out")
    parser.add_argument(
        "--profile", type=Path, help="py-spy records the one-process ingest drains into this folder (raw stacks)"
    )
    parser.add_argument("--nodered-home", type=Path, default=NODERED_HOME, help="Node-RED's folder (made if missing)")
    args = parser.parse_args(argv)
    if args.drain_messages is None:
        args.drain_messages = 10_000 if args.drain_only else 40_000
    if args.drain_batched_messages is None:
        args.drain_batched_messages = 5_000 if args.drain_only else 20_000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    refuse_without_fast_path()

    devices = device_ids(args.devices)
    broker = Mosquitto()
    broker.start()
    dsn = create_scratch_database("mimamori_bench")
    folder = Path(tempfile.mkdtemp(prefix="mimamori-bench-"))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    result: dict[str, Any] = {}
    try:
        # Each streaming phase's session ends with it, so no phase leaves a queue behind; the drain phase's
        # sessions are its own (drain_round).
        settings = bench_settings(dsn, broker, mqtt_session_expiry_s=0)
        prepare_database(settings, devices)
        with psycopg.connect(dsn) as conn:
            create_peer_table(conn)
        peer, skipped = start_peer(args, broker, dsn, folder)
        if peer:
            console.print(f"[bold]peer:[/] {peer.version} (from {args.nodered_home})")
        else:
            console.print(f"[yellow]Node-RED peer skipped: {skipped}[/]")
        # The collector settings of `mimamori ingest`; the baselines measured in this process run under them too.
        tune_for_streaming(settings.ingest_gc_gen0)
        pool = ConnectionPool(dsn, min_size=2, max_size=4, open=True)

        def reset() -> None:
            with psycopg.connect(dsn) as conn:
                conn.execute(f"TRUNCATE series_readings, latest_readings, dead_letters, {PEER_TABLE}")

        # Rounds, each measuring the baselines right next to what they are baselines for: on a shared machine
        # the throughput of every phase drifts by tens of percent from minute to minute, a ratio of neighbours
        # much less. The figures reported are medians over rounds; the ratios, medians of each round's ratio.
        rounds: list[dict[str, float]] = []
        drains: list[dict[str, float]] = []
        for n in range(1, args.rounds + 1):
            if not args.drain_only:
                rounds.append(streaming_round(args, n, settings, pool, broker, dsn, folder, devices, t0, peer, reset))
            d: dict[str, float] = {}
            for per_message, messages in ((1, args.drain_messages), (10, args.drain_batched_messages)):
                console.print(
                    f"[bold]round {n}/{args.rounds}:[/] drain of a {messages:,}-message backlog, "
                    f"{per_message} reading(s) per message"
                )
                d |= drain_round(
                    settings,
                    dsn,
                    broker,
                    folder,
                    devices,
                    messages,
                    per_message,
                    str(n),
                    peer,
                    n,
                    reset,
                    args.processes,
                    args.profile,
                )
            drains.append(d)
        if not args.drain_only:
            ingest_1 = statistics.median(r["ingest_1"] for r in rounds)
            console.print("[bold]database limit:[/] binary COPY")
            copy_rows = copy_limit(dsn, args.batched_messages * 10, t0)
            console.print(f"[bold]lag:[/] publish→commit at half of peak ({ingest_1 / 2:,.0f} msg/s)")
            lags = lag_at_rate(settings, pool, broker, devices, ingest_1 / 2, args.lag_seconds)
            result = streaming_result(args, rounds, copy_rows, lags)
        pool.close()
    finally:
        broker.cleanup()
        drop_database(dsn)
        shutil.rmtree(folder, ignore_errors=True)

    result |= drain_result(drains, peer.version if peer else None, skipped, args.processes)
    result["targets"] = targets(result)
    if not args.drain_only:
        Console(width=120).print(streaming_table(args, result))
    Console(width=120).print(drain_table(result))
    checks = Table(title="the issue's targets, in this run")
    processes = args.processes > 1
    for column in ("target", "one process", f"{args.processes} processes" if processes else ""):
        checks.add_column(column)
    for name, by in result["targets"].items():
        checks.add_row(name, *(f"{'met' if ok else 'NOT met'} ({value:,})" for value, ok in by.values()))
    Console(width=120).print(checks)
    print(json.dumps(result), flush=True)


def streaming_result(
    args: argparse.Namespace, rounds: list[dict[str, float]], copy_rows: float, lags: list[float]
) -> dict[str, Any]:
    def ratio(key: str, base: str) -> float:
        return statistics.median(r[key] / r[base] for r in rounds)

    bare, fast_client, ingest_1, bare_10, ingest_10, naive = (
        statistics.median(r[k] for r in rounds)
        for k in ("bare", "fast_client", "ingest_1", "bare_10", "ingest_10", "naive")
    )
    result: dict[str, Any] = {
        "rounds": len(rounds),
        "readings_per_s": round(ingest_1),
        "readings_per_s_batched10": round(ingest_10),
        "client_limit_msgs_per_s": round(bare),
        "client_limit_readings_per_s_batched10": round(bare_10),
        "naive_readings_per_s": round(naive),
        "copy_limit_rows_per_s": round(copy_rows),
        "client_limit_ratio": round(ratio("ingest_1", "bare"), 3),
        "fast_client_msgs_per_s": round(fast_client),
        "fast_client_ratio": round(ratio("ingest_1", "fast_client"), 3),
        "client_limit_ratio_batched10": round(ratio("ingest_10", "bare_10"), 3),
        "naive_ratio": round(ratio("ingest_1", "naive"), 1),
        "naive_ratio_batched10": round(ratio("ingest_10", "naive"), 1),
        "copy_limit_ratio": round(ingest_10 / copy_rows, 3),
        "lag_p50_ms": round(percentile(lags, 0.5), 1),
        "lag_p99_ms": round(percentile(lags, 0.99), 1),
        "per_round": [{k: round(v) for k, v in r.items()} for r in rounds],
    }
    if "nodered_stream_1" in rounds[0]:
        result |= {
            "nodered_readings_per_s": round(statistics.median(r["nodered_stream_1"] for r in rounds)),
            "nodered_readings_per_s_batched10": round(statistics.median(r["nodered_stream_10"] for r in rounds)),
            "nodered_ratio": round(ratio("ingest_1", "nodered_stream_1"), 2),
            "nodered_ratio_batched10": round(ratio("ingest_10", "nodered_stream_10"), 2),
        }
    if args.processes > 1:
        result |= {
            "processes": args.processes,
            "readings_per_s_processes": round(statistics.median(r["ingest_1_processes"] for r in rounds)),
            "readings_per_s_batched10_processes": round(statistics.median(r["ingest_10_processes"] for r in rounds)),
            "client_limit_ratio_processes": round(ratio("ingest_1_processes", "bare"), 3),
            "naive_ratio_processes": round(ratio("ingest_1_processes", "naive"), 1),
            "naive_ratio_batched10_processes": round(ratio("ingest_10_processes", "naive"), 1),
        }
    return result


def drain_result(drains: list[dict[str, float]], peer: str | None, skipped: str, processes: int = 1) -> dict[str, Any]:
    """The drain phase's columns: medians over rounds, each ratio the median of the rounds' own ratios."""

    def median(key: str) -> float:
        return statistics.median(d[key] for d in drains)

    def ratio(key: str, base: str) -> float:
        return statistics.median(d[key] / d[base] for d in drains)

    out: dict[str, Any] = {"drain_rounds": len(drains), "nodered": peer, "nodered_skipped": skipped or None}
    out["drain_processes"] = processes
    for k in (1, 10):
        s = "" if k == 1 else "_batched10"
        out |= {
            f"drain_published_readings{s}": int(drains[0][f"published_{k}"]),
            f"drain_stored_readings{s}": [int(d[f"mimamori_rows_{k}"]) for d in drains],
            f"drain_readings_per_s{s}": round(median(f"mimamori_{k}")),
            f"drain_cpu_ms_per_1000{s}": round(median(f"mimamori_cpu_{k}"), 1),
            f"broker_limit_readings_per_s{s}": round(median(f"broker_readings_{k}")),
            f"broker_limit_cpu_ms_per_1000{s}": round(median(f"broker_cpu_{k}"), 1),
            f"broker_limit_ratio{s}": round(ratio(f"mimamori_{k}", f"broker_readings_{k}"), 3),
        }
        # What the broker (and the database, for ingest) spend per reading beside the consumer: how much of two
        # cores a drain leaves the consumer at the broker's own delivery rate.
        out |= {
            f"broker_limit_broker_cpu_ms_per_1000{s}": round(median(f"broker_broker_cpu_{k}"), 1),
            f"drain_broker_cpu_ms_per_1000{s}": round(median(f"mimamori_broker_cpu_{k}"), 1),
            f"drain_database_cpu_ms_per_1000{s}": round(median(f"mimamori_database_cpu_{k}"), 1),
        }
        if f"workers_{k}" in drains[0]:
            out |= {
                f"drain_stored_readings_processes{s}": [int(d[f"workers_rows_{k}"]) for d in drains],
                f"drain_readings_per_s_processes{s}": round(median(f"workers_{k}")),
                f"drain_cpu_ms_per_1000_processes{s}": round(median(f"workers_cpu_{k}"), 1),
                f"drain_least_share_processes{s}": round(min(d[f"workers_least_share_{k}"] for d in drains), 3),
                f"drain_processes_ratio{s}": round(ratio(f"workers_{k}", f"mimamori_{k}"), 2),
                f"broker_limit_ratio_processes{s}": round(ratio(f"workers_{k}", f"broker_readings_{k}"), 3),
            }
            if peer:
                out[f"drain_nodered_ratio_processes{s}"] = round(ratio(f"workers_{k}", f"nodered_{k}"), 2)
        if peer:
            out |= {
                f"nodered_drain_stored_readings{s}": [int(d[f"nodered_rows_{k}"]) for d in drains],
                f"nodered_drain_readings_per_s{s}": round(median(f"nodered_{k}")),
                f"nodered_drain_cpu_ms_per_1000{s}": round(median(f"nodered_cpu_{k}"), 1),
                f"drain_nodered_ratio{s}": round(ratio(f"mimamori_{k}", f"nodered_{k}"), 2),
                f"drain_cpu_nodered_ratio{s}": round(ratio(f"mimamori_cpu_{k}", f"nodered_cpu_{k}"), 2),
            }
    out["drain_per_round"] = [{k: round(v, 1) for k, v in d.items()} for d in drains]
    return out


def streaming_table(args: argparse.Namespace, result: dict[str, Any]) -> Table:
    bare, fast_client = result["client_limit_msgs_per_s"], result["fast_client_msgs_per_s"]
    table = Table(title=f"Mimamori ingest benchmark (same run, same machine; medians of {result['rounds']} rounds)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_row("bare paho loop (issue's client limit)", f"{bare:,} msg/s", "")
    table.add_row(
        "ingest's client, fast path, counting only", f"{fast_client:,} msg/s", f"{fast_client / bare:.0%} of paho"
    )
    table.add_row(
        "ingest, 1 reading/msg",
        f"{result['readings_per_s']:,} readings/s",
        f"{result['client_limit_ratio']:.0%} of client limit, {result['fast_client_ratio']:.0%} of own client's, "
        f"{result['naive_ratio']}× naive",
    )
    table.add_row(
        "ingest, 10 readings/msg",
        f"{result['readings_per_s_batched10']:,} readings/s",
        f"{result['naive_ratio_batched10']}× naive, {result['copy_limit_ratio']:.0%} of COPY",
    )
    if "nodered_readings_per_s" in result:
        table.add_row(
            "Node-RED peer, 1 reading/msg",
            f"{result['nodered_readings_per_s']:,} readings/s",
            f"ingest {result['nodered_ratio']}× this",
        )
        table.add_row(
            "Node-RED peer, 10 readings/msg",
            f"{result['nodered_readings_per_s_batched10']:,} readings/s",
            f"ingest {result['nodered_ratio_batched10']}× this",
        )
    if args.processes > 1:
        table.add_row(
            f"{args.processes} ingest processes, 1 reading/msg",
            f"{result['readings_per_s_processes']:,} readings/s",
            f"{result['client_limit_ratio_processes']:.0%} of one client's limit, "
            f"{result['naive_ratio_processes']}× naive",
        )
        table.add_row(
            f"{args.processes} ingest processes, 10 readings/msg",
            f"{result['readings_per_s_batched10_processes']:,} readings/s",
            f"{result['naive_ratio_batched10_processes']}× naive",
        )
    table.add_row("naive INSERT+commit per msg", f"{result['naive_readings_per_s']:,} readings/s", "1×")
    table.add_row("binary COPY (database limit)", f"{result['copy_limit_rows_per_s']:,} rows/s", "")
    table.add_row("lag p50 / p99 at half peak", f"{result['lag_p50_ms']} / {result['lag_p99_ms']} ms", "")
    return table


def drain_table(result: dict[str, Any]) -> Table:
    """Drain of a backlog queued at the broker: each consumer alone, rows counted by SQL."""
    table = Table(title=f"drain of a queued backlog, each consumer alone (medians of {result['drain_rounds']} rounds)")
    for column in ("consumer", "readings/msg", "readings/s", "CPU ms / 1,000 readings", "stored / published"):
        table.add_column(column, justify="left" if column == "consumer" else "right")
    for k, s in ((1, ""), (10, "_batched10")):
        published = result[f"drain_published_readings{s}"]
        rows = [("mimamori ingest", "drain", s)]
        if f"drain_readings_per_s_processes{s}" in result:
            rows.append((f"mimamori ingest --workers {result['drain_processes']}", "drain", f"_processes{s}"))
        if result["nodered"]:
            rows.append((result["nodered"], "nodered_drain", s))
        for name, key, tail in rows:
            table.add_row(
                name,
                str(k),
                f"{result[f'{key}_readings_per_s{tail}']:,}",
                f"{result[f'{key}_cpu_ms_per_1000{tail}']}",
                f"{'/'.join(f'{n:,}' for n in result[f'{key}_stored_readings{tail}'])} / {published:,}",
            )
        table.add_row(
            "mosquitto_sub (broker's delivery limit)",
            str(k),
            f"{result[f'broker_limit_readings_per_s{s}']:,}",
            f"{result[f'broker_limit_cpu_ms_per_1000{s}']}",
            "",
        )
    if not result["nodered"]:
        table.caption = f"Node-RED peer skipped: {result['nodered_skipped']}"
    return table


# The targets (#3, #21): name → (result key for one process, key for several processes or None, bound,
# at least). A target whose key is not in the result (a phase not run, the peer skipped) is left out.
TARGETS: dict[str, tuple[str, str | None, float, bool]] = {
    "1 reading/msg: ≥ 80 % of the bare paho loop": ("client_limit_ratio", None, 0.8, True),
    "1 reading/msg: ≥ 10× naive": ("naive_ratio", "naive_ratio_processes", 10, True),
    "10 readings/msg: ≥ 60,000 readings/s": (
        "readings_per_s_batched10",
        "readings_per_s_batched10_processes",
        60_000,
        True,
    ),
    "10 readings/msg: ≥ 50× naive": ("naive_ratio_batched10", "naive_ratio_batched10_processes", 50, True),
    "lag p99 ≤ 250 ms at half of peak": ("lag_p99_ms", None, 250, False),
    "drain, 1 reading/msg: ≥ 1.5× Node-RED's": ("drain_nodered_ratio", "drain_nodered_ratio_processes", 1.5, True),
    "drain, 10 readings/msg: ≥ 1.5× Node-RED's": (
        "drain_nodered_ratio_batched10",
        "drain_nodered_ratio_processes_batched10",
        1.5,
        True,
    ),
    "drain, 1 reading/msg: CPU per reading ≤ 0.5× Node-RED's": ("drain_cpu_nodered_ratio", None, 0.5, False),
    "drain, 10 readings/msg: CPU per reading ≤ 0.5× Node-RED's": (
        "drain_cpu_nodered_ratio_batched10",
        None,
        0.5,
        False,
    ),
    "drain, 1 reading/msg: ≥ 80 % of the broker's delivery limit": (
        "broker_limit_ratio",
        "broker_limit_ratio_processes",
        0.8,
        True,
    ),
}


def targets(result: dict[str, Any]) -> dict[str, dict[str, tuple[float, bool]]]:
    """Each target with the value and whether it is met, for one process and (where measured) several."""
    out: dict[str, dict[str, tuple[float, bool]]] = {}
    for name, (one, several, bound, at_least) in TARGETS.items():
        if one not in result:
            continue
        by = {"one_process": result[one]} | ({"processes": result[several]} if several and several in result else {})
        out[name] = {k: (v, v >= bound if at_least else v <= bound) for k, v in by.items()}
    return out


if __name__ == "__main__":
    main()
