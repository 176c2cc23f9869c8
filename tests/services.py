"""Real services for the tests: a private Mosquitto with the project's configuration, scratch databases."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
TEST_PUBLISHER = "test-publisher"
ADMIN_DSN = os.environ.get("MIMAMORI_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# The storage mode of the run's databases: off (plain PostgreSQL, as CI runs), on (TimescaleDB: ADMIN_DSN must reach
# a server that preloads it) or auto. `make test-timescaledb` sets both.
TEST_TIMESCALEDB = os.environ.get("MIMAMORI_TEST_TIMESCALEDB", "off")


def outside_environment() -> dict[str, str]:
    """This process's environment for a child `mimamori` process: no MIMAMORI_* setting of the developer's, and no
    laptop hub's var/laptop.env (a `make up` in this checkout must not point the tests at its broker)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")} | {"MIMAMORI_LAPTOP_ENV_FILE": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def render_mosquitto_conf(port: int, data_dir: Path, extra: str = "") -> str:
    """The project's broker configuration with this test's port, folders and dynamic-security plugin."""
    from devices.broker_setup import find_dynsec_plugin
    from devices.broker_setup import render_mosquitto_conf as render

    return render(MOSQUITTO_CONF.read_text(), port=port, data_dir=data_dir, plugin=find_dynsec_plugin(), extra=extra)


@dataclass
class Mosquitto:
    """A private broker process; restartable with its persistence kept."""

    port: int = field(default_factory=free_port)
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mimamori-mosq-")))
    extra_conf: str = ""
    # The suite's shared broker leaves the hub's accounts unbound (each test connects them under a client id of
    # its own); True initialises them as production does, bound to ``ingest_ids`` / ``alerts_ids``.
    bind_hub_accounts: bool = False
    ingest_ids: tuple[str, ...] = ("mimamori-ingest-1",)
    alerts_ids: tuple[str, ...] = ("mimamori-alerts-1",)
    proc: subprocess.Popen[bytes] | None = None
    # Credentials test publishers use when they stand in for devices (None: anonymous). start() sets them to
    # an account that may publish to every device topic (the broker refuses anonymous clients).
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # The hub's own accounts on this broker, created by start() with dynamic security.
    admin_username: str | None = None
    admin_password: str | None = field(default=None, repr=False)
    ingest_username: str | None = None
    ingest_password: str | None = field(default=None, repr=False)
    alerts_username: str | None = None
    alerts_password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def client(self, client_id: str = "", username: str | None = None, password: str | None = None) -> mqtt.Client:
        """A connected MQTT 5 paho client with its network loop running; call ``.loop_stop()`` when done."""
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        user = username if username is not None else self.username
        if user is not None:
            c.username_pw_set(user, password if username is not None else self.password)
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        return c

    def start(self) -> None:
        from devices import dynsec
        from devices.broker_setup import init_dynsec

        conf = self.data_dir / "mosquitto.conf"
        conf.write_text(render_mosquitto_conf(self.port, self.data_dir, self.extra_conf))
        # Dynamic security is initialised on the first start only; a restart keeps the accounts it holds.
        publisher_password = self.password or uuid.uuid4().hex
        publisher = dynsec.Account(
            TEST_PUBLISHER,
            publisher_password,
            {"test-publisher": dynsec.publisher_acls("mimamori/v1", None)},
            "tests: publishes for any device",
            client_id=TEST_PUBLISHER if self.bind_hub_accounts else None,  # under any client id in the suite's broker
        )
        accounts, created = init_dynsec(
            self.data_dir,
            "mimamori/v1",
            (publisher,),
            ingest_ids=self.ingest_ids,
            alerts_ids=self.alerts_ids,
            bind=self.bind_hub_accounts,
        )
        if created:
            self.username, self.password = TEST_PUBLISHER, publisher_password
        self.admin_username, self.admin_password = accounts.admin_username, accounts.admin_password
        self.ingest_username, self.ingest_password = accounts.ingest_username, accounts.ingest_password
        self.alerts_username, self.alerts_password = accounts.alerts_username, accounts.alerts_password
        log = open(self.data_dir / "mosquitto.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=log)
        wait_for_port(self.port)

    def add_ingest_account(self, client_id: str) -> None:
        """An ingest account named after ``client_id`` and bound to it, with the ingest password: what
        `mimamori broker migrate --ingest-id` makes for a further ingestor (a worker of ``ingest --workers``)."""
        from devices import dynsec
        from devices.broker import BrokerAdmin
        from mimamori.settings import Settings

        assert self.ingest_password and self.admin_password
        admin = Settings(
            mqtt_url=self.url, mqtt_admin_username=self.admin_username, mqtt_admin_password=self.admin_password
        )  # type: ignore[arg-type]
        with BrokerAdmin(admin) as a:
            a.execute(
                [dynsec.create_client(client_id, self.ingest_password, [dynsec.INGEST_ROLE], client_id=client_id)],
                tolerate=("already exists",),
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


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


def create_scratch_database(prefix: str = "mimamori_test") -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
    """An ``MqttIngestor`` connected and running in a thread of the test, stopped (and checked stopped) after."""
    from ingest import MqttIngestor

    ingestor = MqttIngestor(settings, pool, **kwargs)
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
