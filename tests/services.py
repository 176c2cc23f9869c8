"""Real services for the tests: what they share with the benchmarks comes from devkit/ (a private Mosquitto,
scratch databases, a hub process, ports), named here too so a test imports its services from one place; the rest
(a PostgreSQL cluster of a test's own, a database behind a proxy, an ingestor in a thread) only tests use."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from devkit.broker import MOSQUITTO_CONF, TEST_PUBLISHER, Mosquitto, render_mosquitto_conf
from devkit.databases import (
    ADMIN_DSN,
    TEST_TIMESCALEDB,
    create_scratch_database,
    drop_database,
    server_has_timescaledb,
)
from devkit.ports import free_port, wait_for_port, wait_until
from devkit.processes import HubProcess, outside_environment

__all__ = [
    "ADMIN_DSN",
    "MOSQUITTO_CONF",
    "ROOT",
    "TEST_PUBLISHER",
    "TEST_TIMESCALEDB",
    "HubProcess",
    "Mosquitto",
    "PrivatePostgres",
    "create_scratch_database",
    "drop_database",
    "dsn_address",
    "dsn_via",
    "free_port",
    "outside_environment",
    "private_postgres_unavailable",
    "render_mosquitto_conf",
    "running_ingestor",
    "server_has_timescaledb",
    "settings_via",
    "wait_for_port",
    "wait_until",
]

ROOT = Path(__file__).resolve().parent.parent


def dsn_address(dsn: str) -> tuple[str, int]:
    """Host and port a DSN connects to (URL or key=value form)."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)


def dsn_via(dsn: str, port: int, host: str = "127.0.0.1") -> str:
    """The same database (a postgresql:// URL) reached through another address (a TcpProxy in front of it)."""
    parts = urllib.parse.urlsplit(dsn)
    user = parts.netloc.rpartition("@")[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user + '@' if user else ''}{host}:{port}"))


def settings_via(settings: Any, port: int, **update: Any) -> Any:
    """The same settings with the database reached through another local port (a TcpProxy in front of it)."""
    url = type(settings.database_url)(dsn_via(settings.dsn, port))
    return settings.model_copy(update={"database_url": url, **update})


PG_BIN = Path(os.environ.get("MIMAMORI_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def private_postgres_unavailable() -> str | None:
    """Why a private PostgreSQL cluster cannot be started here (None when it can)."""
    if not (PG_BIN / "pg_ctl").exists():
        return f"no PostgreSQL server binaries in {PG_BIN} (set MIMAMORI_TEST_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: cannot start PostgreSQL as the postgres user"
    return None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, on its own port, that a test may really stop and start.

    As root the server runs as the ``postgres`` user (via runuser); PostGIS comes from the system install.
    """

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mimamori-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *cmd: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, timeout=timeout, capture_output=True)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"  # a throw-away cluster: speed over durability
        )
        if (PG_BIN.parent / "lib" / "timescaledb.so").exists():  # so a TimescaleDB run can use it too
            options += " -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        """A fast shutdown: connections are cut, as in a failover or a restart for an upgrade."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def cleanup(self) -> None:
        if self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_ingestor(settings: Any, pool: Any, **kwargs: Any) -> Iterator[Any]:
    """The configured broker's ingestor (``MqttIngestor`` unless MIMAMORI_BROKER=nats) connected and running in a
    thread of the test, stopped (and checked stopped) after."""
    from ingest import make_ingestor

    ingestor = make_ingestor(settings, pool, **kwargs)
    ingestor.connect()
    stop = threading.Event()
    thread = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield ingestor
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "ingestor did not stop"
