"""Shared pieces of the web map tests: a running hub (ingest, alert engine, API) and a headless Chromium."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from hub.compose import in_process_hub
from ingest import telemetry_topic
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
SECONDS = 1000  # Playwright waits in milliseconds


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
    """Ingest, the alert services and the API in this process, built as `mimamori up` builds them."""
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
    with in_process_hub(s, pool, alerts=True, webhooks=False) as hub, ApiServer(hub.app()) as api:
        yield Hub(s, api.url, hub.alerts)


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


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (skipped, with the reason, where it is not installed)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_map(browser: Any, url: str, key: str, *, viewport: tuple[int, int] = (1600, 900), lang: str = "en") -> Any:
    """A new browser context signed in to the map: (context, page, traffic)."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="en-GB")
    page = context.new_page()
    traffic = Traffic(url)
    traffic.watch(page)
    page.add_init_script(f"localStorage.setItem('mimamori.lang', '{lang}')")
    page.goto(url + "/")
    page.fill("#login-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body.ready", timeout=20 * SECONDS)
    return context, page, traffic


def publish_levels(broker: Any, settings: Settings, device: str, values: list[float]) -> None:
    """River levels of a city gauge over MQTT, 10 minutes apart and ending now."""
    client = broker.client()
    topic = telemetry_topic(settings.mqtt_topic_prefix, "toyota-city", device)
    start = datetime.now(UTC) - timedelta(minutes=10 * len(values))
    for i, v in enumerate(values):
        body = {"ts": (start + timedelta(minutes=10 * i)).isoformat(), "values": {"water_level": v}}
        client.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)
    client.disconnect()


def axe_problems(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of the page as it is now, at these impacts, one line per rule with its nodes.

    axe-core comes bundled in the axe-playwright-python dev dependency (`uv sync` installs it). With Chromium here and
    axe missing the test fails: a check that cannot run is not a pass.
    """
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError as exc:
        pytest.fail(f"axe-core cannot be loaded ({exc}): `uv sync --locked` installs axe-playwright-python")
    results = Axe().run(page).response
    # axe ran in the page and judged colour contrast (a rule that ran neither passes nor fails is listed nowhere)
    judged = {r["id"] for kind in ("passes", "violations", "incomplete") for r in results[kind]}
    assert page.evaluate("typeof window.axe?.run") == "function" and "color-contrast" in judged, sorted(judged)
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: " + "; ".join(" ".join(n["target"]) for n in v["nodes"][:8])
        for v in results["violations"]
        if v["impact"] in impacts
    ]
