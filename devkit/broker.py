"""A private Mosquitto with the project's configuration and dynamic security: the hub's accounts and a publisher
that stands in for devices; restartable with its persistence kept."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devkit.ports import free_port, wait_for_port

MOSQUITTO_CONF = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "mosquitto.conf"
TEST_PUBLISHER = "test-publisher"


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
