"""Shared pieces of the web map tests: a running hub (ingest, alert engine, API) and a headless Chromium."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from alerts import start_alert_services
from api.app import create_app
from ingest import CommittedReadings, MqttIngestor
from mimamori.settings import Settings
from tests.alerts_helpers import ApiServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def require_chromium() -> None:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (deploy/bootstrap.sh installs it): no browser tests")


@dataclass
class Hub:
    settings: Settings
    url: str
    services: Any


@contextmanager
def running_hub(settings: Settings, pool: ConnectionPool, broker: Any, **overrides: Any) -> Iterator[Hub]:
    """Ingest, the alert services and the API in this process, as `mimamori up` runs them."""
    s = settings.model_copy(
        update={
            "alerts_tick_s": 0.5,
            "alerts_stream_keepalive_s": 1.0,
            "alerts_stream_poll_ms": 100,
            "alerts_mqtt_username": broker.username,
            "alerts_mqtt_password": SecretStr(broker.password),
            **overrides,
        }
    )
    stop = threading.Event()
    committed = CommittedReadings()
    services = start_alert_services(s, pool, stop, webhooks=False)
    committed.subscribe(services.engine.on_readings)
    ingestor = MqttIngestor(s, pool, committed=committed)
    ingestor.connect()
    worker = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    worker.start()
    assert services.engine.ready.wait(10)
    try:
        with ApiServer(create_app(s, pool, committed)) as api:
            yield Hub(s, api.url, services)
    finally:
        stop.set()
        worker.join(10)
        services.join(10)


@dataclass
class Traffic:
    """Every request a page made: where to, and which failed (network error or an HTTP error status)."""

    origin: str
    urls: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} HTTP {r.status}"))
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def _failed(self, request: Any) -> None:
        # MapLibre cancels the tiles that left the view while the map moves: the browser's choice, not a failure.
        if "/v1/tiles/" in request.url and "ERR_ABORTED" in (request.failure or ""):
            return
        self.failed.append(f"{request.url} {request.failure}")

    def foreign(self) -> list[str]:
        """Requests that left the hub (the map must work with no internet connection)."""
        return [u for u in self.urls if not (u.startswith(self.origin) or u.startswith(("blob:", "data:")))]
