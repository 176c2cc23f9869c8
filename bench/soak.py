"""Soak benchmark: `python -m bench.soak --minutes 30` (not a test; `--minutes 3` for a quick look).

Starts its own Mosquitto (the project's configuration) and a scratch database as `bench.ingest` does, and runs
`mimamori ingest` as a real process, as production does (alert forwarding on, metrics on a port). Then:

1. peak — a burst of messages from mosquitto_pub processes; peak = messages / (first publish → last commit);
2. soak — mosquitto_pub processes fed at half that peak for ``--minutes``, each reading stamped with its publish
   time.

Every ``--interval`` seconds it samples the publish rate, the stored rate (the ingestor's own
``mimamori_ingest_readings_stored_total``), publish → commit lag p50/p99 of the readings committed in that
interval (seen on the ``mimamori_committed`` NOTIFY channel, i.e. when the alert evaluator could judge them) and
the ingestor's resident memory. Prints a per-minute table, writes a chart (default docs/img/soak.png) and ends
with one JSON line. A healthy run: stored rate = publish rate, flat lag, RSS flat after warm-up, nothing lost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from alerts.feed import CHANNEL, RESYNC
from bench.ingest import (
    PacedPublisher,
    bench_settings,
    device_ids,
    percentile,
    prepare_database,
    start_publishers,
    wait_publishers,
    write_payload_files,
)
from devkit.broker import Mosquitto
from devkit.databases import create_scratch_database, drop_database
from devkit.ports import free_port
from devkit.processes import HubProcess

console = Console(stderr=True)
DEFAULT_CHART = Path(__file__).resolve().parent.parent / "docs" / "img" / "soak.png"


@dataclass
class Sample:
    """One interval of the soak."""

    t_s: float  # seconds since the soak phase began (end of the interval)
    published_per_s: float
    stored_per_s: float
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    rss_mb: float
    lags_ms: list[float] = field(default_factory=list, repr=False)


class CommitListener:
    """LISTENs on the channel every ingestor forwards its committed readings to; keeps each reading's lag."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._lock = threading.Lock()
        self._lags_ms: list[float] = []
        self.resyncs = 0  # the ingestor's forward queue overflowed: some readings were not forwarded
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.ready.set()
            while not stop.is_set():
                for note in conn.notifies(timeout=0.5):
                    now = datetime.now(UTC)
                    if note.payload == RESYNC:
                        self.resyncs += 1
                        continue
                    # Each item is [device, metric, device time, value] (alerts.feed.encode).
                    items = json.loads(note.payload)
                    lags = [(now - datetime.fromisoformat(item[2])).total_seconds() * 1000 for item in items]
                    with self._lock:
                        self._lags_ms.extend(lags)

    def take(self) -> list[float]:
        with self._lock:
            lags, self._lags_ms = self._lags_ms, []
        return lags


def stored_total(metrics_url: str) -> float:
    """The ingestor's own count of readings committed (all sources)."""
    text = httpx.get(metrics_url, timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "mimamori_ingest_readings_stored":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


def wait_stored(metrics_url: str, target: float, timeout: float) -> float:
    """Poll until the ingestor has stored ``target`` readings; returns when it did (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if stored_total(metrics_url) >= target:
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError(f"the ingestor stored {stored_total(metrics_url):.0f} of {target:.0f} readings")


def measure_peak(broker: Mosquitto, metrics_url: str, devices: list[str], messages: int) -> float:
    """Readings per second the ingestor commits from a burst (first publish → last commit)."""
    folder = Path(tempfile.mkdtemp(prefix="mimamori-soak-"))
    try:
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        write_payload_files(folder, devices, messages, 1, t0)
        before = stored_total(metrics_url)
        start = time.perf_counter()
        wait_publishers(start_publishers(broker, folder, devices))
        done = wait_stored(metrics_url, before + messages, timeout=600)
        return messages / (done - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def soak(
    broker: Mosquitto,
    ingest: HubProcess,
    listener: CommitListener,
    metrics_url: str,
    devices: list[str],
    rate: float,
    minutes: float,
    interval: float,
) -> tuple[list[Sample], int, float]:
    """Publish at ``rate`` for ``minutes``, sampling every ``interval`` s; returns samples, sent, stored."""
    publisher = PacedPublisher(broker, devices, rate)
    stop = threading.Event()
    thread = threading.Thread(target=publisher.run, args=(stop,), name="soak-publisher")
    stored_at_start = stored_total(metrics_url)
    listener.take()  # the burst's readings are not the soak's
    samples: list[Sample] = []
    duration = minutes * 60
    start = time.perf_counter()
    thread.start()
    last_t, last_sent, last_stored = start, 0, stored_at_start
    with Progress(
        TextColumn("soak at {task.fields[rate]:,.0f} msg/s"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("soak", total=duration, rate=rate, status="")
        while (now := time.perf_counter()) - start < duration:
            time.sleep(min(interval, max(0.0, start + duration - now)) or 0.01)
            t, sent, stored = time.perf_counter(), publisher.sent, stored_total(metrics_url)
            lags = listener.take()
            samples.append(
                Sample(
                    t_s=t - start,
                    published_per_s=(sent - last_sent) / (t - last_t),
                    stored_per_s=(stored - last_stored) / (t - last_t),
                    lag_p50_ms=percentile(lags, 0.5) if lags else None,
                    lag_p99_ms=percentile(lags, 0.99) if lags else None,
                    rss_mb=ingest.rss_bytes() / 2**20,
                    lags_ms=lags,
                )
            )
            last_t, last_sent, last_stored = t, sent, stored
            s = samples[-1]
            progress.update(
                task,
                completed=t - start,
                status=f"stored {s.stored_per_s:,.0f}/s  lag p99 {s.lag_p99_ms or 0:,.0f} ms  RSS {s.rss_mb:,.0f} MB",
            )
    stop.set()
    thread.join()
    publisher.close()
    # Drain: everything published must be stored before the ingestor stops.
    wait_stored(metrics_url, stored_at_start + publisher.sent, timeout=120)
    return samples, publisher.sent, stored_total(metrics_url) - stored_at_start


def per_minute(samples: list[Sample]) -> list[tuple[int, list[Sample]]]:
    groups: dict[int, list[Sample]] = {}
    for s in samples:
        groups.setdefault(int((s.t_s - 1e-6) // 60), []).append(s)
    return sorted(groups.items())


def draw_chart(samples: list[Sample], rate: float, peak: float, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in samples]
    fig, (ax_rate, ax_lag, ax_rss) = plt.subplots(3, 1, figsize=(10, 8.5), sharex=True)
    ax_rate.plot(minutes, [s.published_per_s for s in samples], label="published", color="#888888", linewidth=1)
    ax_rate.plot(minutes, [s.stored_per_s for s in samples], label="stored (ingestor's counter)", color="#1f77b4")
    ax_rate.axhline(peak, linestyle="--", color="#d62728", linewidth=1, label=f"peak measured first ({peak:,.0f}/s)")
    ax_rate.set_ylabel("readings / s")
    ax_rate.set_ylim(0, max(peak * 1.1, max((s.stored_per_s for s in samples), default=rate) * 1.1))
    ax_rate.legend(loc="lower right", fontsize=8)
    ax_rate.set_title(title, fontsize=10)

    lag_points = [(m, s) for m, s in zip(minutes, samples, strict=True) if s.lag_p50_ms is not None]
    ax_lag.plot([m for m, _ in lag_points], [s.lag_p50_ms for _, s in lag_points], label="p50", color="#2ca02c")
    ax_lag.plot([m for m, _ in lag_points], [s.lag_p99_ms for _, s in lag_points], label="p99", color="#ff7f0e")
    ax_lag.set_ylabel("publish → commit (ms)")
    ax_lag.set_ylim(bottom=0)
    ax_lag.legend(loc="upper right", fontsize=8)

    ax_rss.plot(minutes, [s.rss_mb for s in samples], color="#9467bd")
    ax_rss.set_ylabel("ingestor RSS (MB)")
    ax_rss.set_ylim(bottom=0, top=max(s.rss_mb for s in samples) * 1.25)
    ax_rss.set_xlabel("minutes into the soak")
    for ax in (ax_rate, ax_lag, ax_rss):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak phase")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--peak-messages", type=int, default=20_000, help="burst size for the peak measurement")
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--chart", type=Path, default=DEFAULT_CHART, help="PNG to write")
    args = parser.parse_args()

    devices = device_ids(args.devices)
    broker = Mosquitto()
    broker.start()
    dsn = create_scratch_database("mimamori_soak")
    metrics_port = free_port()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    stop_listener = threading.Event()
    listening: threading.Thread | None = None
    ingest: HubProcess | None = None
    started = datetime.now(UTC)
    try:
        settings = bench_settings(dsn, broker, mqtt_client_id="bench-soak-ingest")
        prepare_database(settings, devices)
        listener = CommitListener(dsn)
        listening = threading.Thread(target=listener.run, args=(stop_listener,), name="soak-listener", daemon=True)
        listening.start()
        listener.ready.wait(10)
        ingest = HubProcess(settings, "ingest", env={"MIMAMORI_METRICS_PORT": str(metrics_port)})
        rss_start_mb = ingest.rss_bytes() / 2**20

        console.print(f"[bold]1/2[/] peak: a burst of {args.peak_messages:,} messages")
        peak = measure_peak(broker, metrics_url, devices, args.peak_messages)
        rate = peak / 2
        console.print(f"[bold]2/2[/] soak: {args.minutes:g} min at half of the peak ({peak:,.0f} → {rate:,.0f}/s)")
        samples, sent, stored = soak(broker, ingest, listener, metrics_url, devices, rate, args.minutes, args.interval)
        final = ingest.stop()
        ingest = None
        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT count(*) FROM readings").fetchone()[0]  # type: ignore[index]
            dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]  # type: ignore[index]
    finally:
        stop_listener.set()
        if listening is not None:
            listening.join(timeout=5)  # before the database is dropped under it
        if ingest is not None:
            ingest.stop()
        broker.cleanup()
        drop_database(dsn)

    all_lags = [lag for s in samples for lag in s.lags_ms]
    steady = [s for s in samples if s.t_s > 60] or samples  # the first minute warms caches and the pool
    rss = [s.rss_mb for s in samples]
    result = {
        "minutes": args.minutes,
        "peak_readings_per_s": round(peak),
        "target_rate_per_s": round(rate),
        "published": sent,
        "stored": round(stored),
        "readings_in_database": rows - args.peak_messages,
        "dead_letters": dead,
        "lost": sent - (rows - args.peak_messages),
        "stored_per_s_mean": round(statistics.fmean(s.stored_per_s for s in samples), 1),
        "lag_p50_ms": round(percentile(all_lags, 0.5), 1) if all_lags else None,
        "lag_p99_ms": round(percentile(all_lags, 0.99), 1) if all_lags else None,
        "lag_p99_ms_worst_interval": round(max(s.lag_p99_ms or 0 for s in samples), 1),
        "lag_readings_seen": len(all_lags),
        "forward_overflows": listener.resyncs,
        "rss_mb_start": round(rss_start_mb, 1),
        "rss_mb_after_first_minute": round(steady[0].rss_mb, 1),
        "rss_mb_end": round(rss[-1], 1),
        "rss_mb_max": round(max(rss), 1),
        "ingest_stopped": final,
    }

    table = Table(title=f"Mimamori soak: {args.minutes:g} min at {rate:,.0f}/s (half of a {peak:,.0f}/s peak)")
    for column in ("minute", "published/s", "stored/s", "lag p50 ms", "lag p99 ms", "RSS MB"):
        table.add_column(column, justify="right")
    for minute, group in per_minute(samples):
        lags = [lag for s in group for lag in s.lags_ms]
        table.add_row(
            str(minute + 1),
            f"{statistics.fmean(s.published_per_s for s in group):,.0f}",
            f"{statistics.fmean(s.stored_per_s for s in group):,.0f}",
            f"{percentile(lags, 0.5):,.1f}" if lags else "–",
            f"{percentile(lags, 0.99):,.1f}" if lags else "–",
            f"{group[-1].rss_mb:,.1f}",
        )
    Console().print(table)
    title = (
        f"mimamori ingest soak, {started:%Y-%m-%d}: {args.minutes:g} min at {rate:,.0f} readings/s "
        f"(half of the {peak:,.0f}/s peak measured first)\n{sent:,} published, {result['lost']} lost"
    )
    draw_chart(samples, rate, peak, args.chart, title)
    console.print(f"chart: {args.chart}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
