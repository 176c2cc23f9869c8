"""The one place the hub is put together: which parts run in a process and how readings travel between them.

Two layouts, and nothing else wires the parts:

- **one process** (`mimamori up`, the tests and benchmarks that need a whole hub): the MQTT ingestor and the HTTP
  push both hand what they commit to the alert engine in memory (``InProcessHub``);
- **split processes** (production): `mimamori ingest` and `mimamori api` forward what they commit over PostgreSQL
  NOTIFY (``forwarding_ingestor``, ``standalone_api``) to the one `mimamori alerts run` evaluator.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from alerts import AlertServices, start_alert_services
from alerts.feed import start_forwarding
from api.app import create_app
from api.ngsi_ld.subscriptions import NOTIFICATION_FORMATS
from ingest import CommittedReadings, MqttIngestor, NatsIngestor, make_ingestor
from mimamori.settings import Settings


@dataclass
class InProcessHub:
    """Ingest, the alert services and (on demand) the API of one process, joined by one CommittedReadings."""

    settings: Settings
    pool: ConnectionPool
    committed: CommittedReadings
    ingestor: MqttIngestor | NatsIngestor
    alerts: AlertServices | None
    stop: threading.Event = field(default_factory=threading.Event)

    def app(self) -> FastAPI:
        """The API, its HTTP pushes handed to the same listeners as the ingestor's readings."""
        return create_app(self.settings, self.pool, self.committed)


@contextmanager
def in_process_hub(
    settings: Settings,
    pool: ConnectionPool,
    *,
    alerts: bool | None = None,
    webhooks: bool = True,
    clock: Callable[[], datetime] | None = None,
    ready_timeout_s: float | None = 10.0,
) -> Iterator[InProcessHub]:
    """Start the MQTT ingestor and (unless ``alerts`` is false or MIMAMORI_ALERTS_ENABLED is) the alert services;
    stop and join them on exit. ``clock`` is the alert engine's time (a played scenario's timeline)."""
    stop = threading.Event()
    committed = CommittedReadings()
    services = None
    if settings.alerts_enabled if alerts is None else alerts:
        services = start_alert_services(
            settings, pool, stop, webhooks=webhooks, clock=clock, notification_formats=NOTIFICATION_FORMATS
        )
        committed.subscribe(services.on_readings)
    ingestor = make_ingestor(settings, pool, committed=committed)
    worker = None
    try:
        ingestor.connect()
        worker = threading.Thread(target=ingestor.run, args=(stop,), name="ingest", daemon=True)
        worker.start()
        if services is not None and ready_timeout_s is not None and not services.engine.ready.wait(ready_timeout_s):
            raise RuntimeError(f"the alert engine was not ready within {ready_timeout_s:g} s")
        yield InProcessHub(settings, pool, committed, ingestor, services, stop)
    finally:
        stop.set()
        if worker is not None:
            worker.join(30)
        if services is not None:
            services.join(10)


def forwarding_ingestor(settings: Settings, pool: ConnectionPool, stop: threading.Event) -> MqttIngestor | NatsIngestor:
    """`mimamori ingest`: an ingestor whose committed batches go to `mimamori alerts run` over NOTIFY."""
    committed = CommittedReadings()
    if settings.alerts_enabled:
        start_forwarding(pool, committed, stop)
    return make_ingestor(settings, pool, committed=committed)


def standalone_api(settings: Settings) -> FastAPI:
    """`mimamori api` (each of its workers): its own pool, HTTP pushes forwarded to `mimamori alerts run`."""
    app = create_app(settings, forward_to_evaluator=True)
    freeze_start_up_heap()
    if settings.api_nice and hasattr(os, "nice"):
        # Once built, not before: start-up (imports, most of it) at full priority, serving below ingest's.
        os.nice(settings.api_nice)
    return app


def freeze_start_up_heap() -> None:
    """Everything imported and built so far out of the garbage collector's sight, for the process's life.

    A page of 100 stands makes tens of thousands of short-lived objects (coordinates), which start collections;
    each full one walked every module, class and schema the API had loaded (~90,000 objects). Measured on the
    benchmark's stands, 300 pages in one process: full collections 1.14 s → 0.34 s in all, a page's p99
    200 → 54 ms (shared 2-core machine); `python -m bench.api --peer tipg` in README.md.
    """
    gc.collect()  # start-up's own garbage goes first, not frozen with the rest
    gc.freeze()


def api_from_environment() -> FastAPI:
    """The app for ``MIMAMORI_*`` settings, built in each worker process of ``mimamori api --workers N``."""
    from mimamori.logs import setup_logging

    settings = Settings()
    setup_logging(settings.log_level, settings.log_json)
    return standalone_api(settings)
