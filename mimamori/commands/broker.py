"""`mimamori broker`: prepare a Mosquitto for the hub (dynamic security) and manage gateway accounts."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mimamori.settings import load_settings

app = typer.Typer(help="The MQTT broker: configuration and accounts (dynamic security).", no_args_is_help=True)
out = Console()

_TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


@app.command("init")
def init(
    data_dir: Annotated[Path, typer.Option("--dir", help="Folder for the broker's configuration and data.")] = Path(
        "var/mosquitto"
    ),
    port: Annotated[int, typer.Option(help="Plain MQTT port to listen on.")] = 1884,
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    template: Annotated[Path, typer.Option(help="Configuration to start from.")] = _TEMPLATE,
) -> None:
    """Write DIR/mosquitto.conf and, on first use, the dynamic-security file with the hub's admin and ingest
    accounts. Their passwords go to DIR/hub-credentials.env (mode 0600), never to the terminal; safe to rerun."""
    from devices.broker_setup import CREDENTIALS_FILE, prepare_broker

    settings = load_settings()
    conf, _accounts, created = prepare_broker(
        template,
        data_dir,
        port=port,
        topic_prefix=settings.mqtt_topic_prefix,
        plugin=settings.mqtt_dynsec_plugin,
        bind=bind,
    )
    state = "created" if created else "kept (already initialised)"
    out.print(f"broker configuration {conf}; accounts {state}; credentials in {data_dir / CREDENTIALS_FILE}")


@app.command("add-publisher")
def add_publisher(
    username: str,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's topics (all if omitted).")] = None,
) -> None:
    """An account that may publish for every device of a tenant (a gateway, a load generator). Prints its
    password once."""
    from devices.broker import BrokerAdmin
    from devices.keys import audit
    from mimamori.db import connect

    settings = load_settings()
    with BrokerAdmin(settings) as admin:
        password = admin.create_publisher(username, tenant)
    with connect(settings.dsn) as conn:
        audit(conn, f"cli:{getpass.getuser()}", "broker.publisher.create", username, {"tenant": tenant})
        conn.commit()
    out.print(f"publisher {username} may publish to {settings.mqtt_topic_prefix}/{tenant or '*'}/…; password:")
    print(password)
