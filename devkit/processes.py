"""A `mimamori` command as a real process, in an environment of its settings alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from devkit.databases import TEST_TIMESCALEDB
from devkit.ports import wait_until


def outside_environment() -> dict[str, str]:
    """This process's environment for a child `mimamori` process: no MIMAMORI_* setting of the developer's, and no
    laptop hub's var/laptop.env (a `make up` in this checkout must not point the tests at its broker)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")} | {"MIMAMORI_LAPTOP_ENV_FILE": ""}


class HubProcess:
    """A `mimamori` command (``ingest``, ``alerts run``, ``api`` …) as a real process, its output collected.

    The environment is built from ``settings`` alone (plus ``env``), never inherited ``MIMAMORI_*`` variables, so
    the process talks to the test's own database and broker.
    """

    def __init__(
        self,
        settings: Any,
        *args: str,
        client_id: str | None = None,
        env: dict[str, str] | None = None,
        ready: str | None = "ingesting from",
        timeout: float = 90.0,
    ) -> None:
        full = outside_environment() | {
            "MIMAMORI_DATABASE_URL": settings.dsn,
            "MIMAMORI_MQTT_URL": settings.mqtt_url,
            "MIMAMORI_MQTT_CLIENT_ID": client_id or settings.mqtt_client_id,
            "MIMAMORI_MQTT_SHARE_GROUP": settings.mqtt_share_group,
            "MIMAMORI_TIMESCALEDB": str(getattr(settings, "timescaledb", TEST_TIMESCALEDB)),
        }
        if settings.mqtt_username:
            full["MIMAMORI_MQTT_USERNAME"] = settings.mqtt_username
            full["MIMAMORI_MQTT_PASSWORD"] = settings.mqtt_password.get_secret_value() if settings.mqtt_password else ""
        full |= env or {}
        self.args = args or ("ingest",)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", *self.args],
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()  # type: ignore[arg-type]
        if ready is not None:
            wait_until(
                lambda: any(ready in ln for ln in self.lines) or self.proc.poll() is not None,
                timeout=timeout,
                what=f"`mimamori {' '.join(self.args)}` to start",
            )
            assert self.proc.poll() is None, "".join(self.lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_bytes(self) -> int:
        """Resident memory of the process now, from /proc (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> dict | None:
        """SIGTERM and wait; an ingestor's final counters when it printed them."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        line = next((ln for ln in self.lines if ln.startswith('{"ingest_stopped"')), None)
        return json.loads(line)["ingest_stopped"] if line else None
