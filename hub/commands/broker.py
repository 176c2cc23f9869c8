"""`mimamori broker`: prepare a Mosquitto for the hub (dynamic security), bring an installed one in line, and
manage gateway accounts."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub.commands import plain
from mimamori.settings import load_settings

app = typer.Typer(help="The MQTT broker: configuration and accounts (dynamic security).", no_args_is_help=True)
out = Console()

_TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"

IngestWorkers = Annotated[
    int,
    typer.Option(min=1, help="`mimamori ingest --workers N` runs here: an account for each worker's client id <id>-n."),
]
IngestIds = Annotated[
    list[str] | None,
    typer.Option(
        "--ingest-id",
        help="Another ingestor's client id (a systemd instance, a compose service): an account of its own.",
    ),
]
AlertsIds = Annotated[
    list[str] | None,
    typer.Option("--alerts-id", help="Another alert publisher's client id (a standby): an account of its own."),
]


def _hub_ids(
    ingest_workers: int, ingest_id: list[str] | None, alerts_id: list[str] | None
) -> tuple[list[str], list[str]]:
    """Every client id of the hub's own processes: ingestors first, then alert publishers."""
    from devices.hub_accounts import ingest_client_ids

    settings = load_settings()
    ingest = ingest_client_ids(settings.mqtt_client_id, ingest_workers, ingest_id or ())
    alerts = list(dict.fromkeys([settings.alerts_mqtt_client_id, *(alerts_id or ())]))
    return ingest, alerts


@app.command("init")
def init(
    data_dir: Annotated[Path, typer.Option("--dir", help="Folder for the broker's configuration and data.")] = Path(
        "var/mosquitto"
    ),
    port: Annotated[int, typer.Option(help="Plain MQTT port to listen on.")] = 1884,
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    template: Annotated[Path, typer.Option(help="Configuration to start from.")] = _TEMPLATE,
    ingest_workers: IngestWorkers = 1,
    ingest_id: IngestIds = None,
    alerts_id: AlertsIds = None,
) -> None:
    """Write DIR/mosquitto.conf and, on first use, the dynamic-security file with the hub's admin, ingest and
    alert accounts, each bound to its client id (MIMAMORI_MQTT_CLIENT_ID, MIMAMORI_ALERTS_MQTT_CLIENT_ID and the
    ids given). Their passwords go to DIR/hub-credentials.env (mode 0600), never to the terminal; safe to rerun
    (an existing broker is brought in line with `mimamori broker migrate`)."""
    from devices.broker_setup import CREDENTIALS_FILE, prepare_broker

    settings = load_settings()
    ingest_ids, alerts_ids = _hub_ids(ingest_workers, ingest_id, alerts_id)
    conf, _accounts, created = prepare_broker(
        template,
        data_dir,
        port=port,
        topic_prefix=settings.mqtt_topic_prefix,
        plugin=settings.mqtt_dynsec_plugin,
        bind=bind,
        ingest_ids=ingest_ids,
        alerts_ids=alerts_ids,
    )
    state = "created" if created else "kept (already initialised)"
    out.print(f"broker configuration {conf}; accounts {state}; credentials in {data_dir / CREDENTIALS_FILE}")


@app.command("migrate")
def migrate(
    ingest_workers: IngestWorkers = 1,
    ingest_id: IngestIds = None,
    alerts_id: AlertsIds = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would change.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="List only what changes, not what is kept.")] = False,
) -> None:
    """Bring the broker's accounts in line with this version, over the control topic (no restart, no device
    re-provisioned, no password changed): each device bound to its device id as client id, each gateway to its
    username, the ingest and alert accounts to MIMAMORI_MQTT_CLIENT_ID / MIMAMORI_ALERTS_MQTT_CLIENT_ID (and an
    account for every further id given), the alert publisher's role narrowed. Idempotent; exit code 1 when
    something could not be done."""
    from devices.broker import BrokerAdmin
    from devices.broker_migrate import migrate_broker
    from devices.hub_accounts import ALERTS, INGEST, KEEP, hub_logins
    from devices.keys import audit
    from mimamori.db import connect
    from mimamori.errors import ValidationError

    settings = load_settings()
    ingest_ids, alerts_ids = _hub_ids(ingest_workers, ingest_id, alerts_id)
    logins = hub_logins(settings.mqtt_username or "mimamori-ingest", ingest_ids, INGEST)
    logins += hub_logins(settings.alerts_mqtt_username or "mimamori-alerts", alerts_ids, ALERTS)
    secret = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    alerts_secret = settings.alerts_mqtt_password.get_secret_value() if settings.alerts_mqtt_password else None
    with BrokerAdmin(settings) as admin:
        report = migrate_broker(
            admin,
            logins,
            {INGEST: secret, ALERTS: alerts_secret},
            prefix=settings.mqtt_topic_prefix,
            admin_username=settings.mqtt_admin_username,
            dry_run=dry_run,
        )
    for line in report.role_changes:
        out.print(f"role    {line}", soft_wrap=True, highlight=False, markup=False)
    for step in report.steps:
        if not (quiet and step.action == KEEP):
            out.print(
                step.line(), style="dim" if step.action == KEEP else None, highlight=False, soft_wrap=True, markup=False
            )
    for problem in report.problems:
        out.print(f"[red]problem[/red] {plain(problem)}", soft_wrap=True)
    kept = sum(s.action == KEEP for s in report.steps)
    verb = "would change" if dry_run else "changed"
    out.print(f"{verb} {report.changed}, kept {kept}, problems {len(report.problems)}")
    if report.changed and not dry_run:
        with connect(settings.dsn) as conn:
            audit(conn, f"cli:{getpass.getuser()}", "broker.migrate", "broker", {"changed": report.changed})
            conn.commit()
    if report.problems:
        raise ValidationError(f"{len(report.problems)} account(s) could not be brought in line")


@app.command("add-publisher")
def add_publisher(
    username: str,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's topics (all if omitted).")] = None,
    client_id: Annotated[
        str | None, typer.Option(help="The one MQTT client id it may connect with (its username if omitted).")
    ] = None,
) -> None:
    """An account that may publish for every device of a tenant (a gateway, a load generator), bound to one
    client id. Prints its password once."""
    from devices.broker import BrokerAdmin
    from devices.keys import audit
    from mimamori.db import connect

    settings = load_settings()
    with BrokerAdmin(settings) as admin:
        password = admin.create_publisher(username, tenant, client_id=client_id)
    with connect(settings.dsn) as conn:
        audit(conn, f"cli:{getpass.getuser()}", "broker.publisher.create", username, {"tenant": tenant})
        conn.commit()
    out.print(
        f"publisher {username} may publish to {settings.mqtt_topic_prefix}/{tenant or '*'}/… as client id "
        f"{client_id or username}; password:"
    )
    print(password)


@app.command("nats-init")
def nats_init(
    data_dir: Annotated[
        Path, typer.Option("--dir", help="Folder for the accounts file and the callout's seed.")
    ] = Path("var/nats"),
) -> None:
    """The NATS path's accounts (MIMAMORI_BROKER=nats): the ingestor's, the system user's and the auth callout
    service's, and the seed the callout signs with. Writes the hub's credentials to hub-credentials.env (0600)
    and prints the `authorization` block every node's configuration needs (docs/scaling.md)."""
    import os
    import secrets

    from devices.nats_accounts import CALLOUT_USER, SYSTEM_USER, init_accounts
    from devices.nats_callout import issuer_public_key, new_issuer_seed

    settings = load_settings()
    data_dir.mkdir(parents=True, exist_ok=True)
    accounts = data_dir / "accounts.conf"
    if accounts.with_suffix(".json").exists():
        raise typer.BadParameter(f"{accounts.with_suffix('.json')} exists already: the accounts are kept as they are")
    ingest, system, callout = (secrets.token_urlsafe(32) for _ in range(3))
    user = settings.nats_username or "mimamori-ingest"
    init_accounts(accounts, settings.mqtt_topic_prefix, user, ingest, system, callout)
    seed_file = data_dir / "callout.seed"
    seed = new_issuer_seed(secrets.token_bytes(32))
    fd = os.open(seed_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(seed)
    env = data_dir / "hub-credentials.env"
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            f"MIMAMORI_BROKER=nats\nMIMAMORI_NATS_USERNAME={user}\nMIMAMORI_NATS_PASSWORD={ingest}\n"
            f"MIMAMORI_NATS_SYSTEM_PASSWORD={system}\nMIMAMORI_NATS_CALLOUT_PASSWORD={callout}\n"
            f"MIMAMORI_NATS_ACCOUNTS_FILE={accounts.resolve()}\nMIMAMORI_NATS_CALLOUT_SEED_FILE={seed_file.resolve()}\n"
        )
    out.print(f"accounts in {accounts}, credentials in {env}; every node's configuration needs:")
    print(f'include "{accounts.resolve()}"')
    print(
        f"authorization {{ auth_callout {{ issuer: {issuer_public_key(seed)}, account: MIMAMORI, "
        f'auth_users: ["{user}", "{SYSTEM_USER}", "{CALLOUT_USER}"] }} }}'
    )


@app.command("nats-callout")
def nats_callout() -> None:
    """The NATS auth callout service: admits each device with its password under its own device id only (run one
    or more; the nodes ask any of them)."""
    import signal
    import threading

    from devices.nats_callout import CalloutService
    from mimamori.errors import ConfigError

    settings = load_settings()
    if not (settings.nats_callout_password and settings.nats_callout_seed_file and settings.nats_accounts_file):
        raise ConfigError(
            "MIMAMORI_NATS_CALLOUT_PASSWORD, MIMAMORI_NATS_CALLOUT_SEED_FILE and MIMAMORI_NATS_ACCOUNTS_FILE are"
            " needed (`mimamori broker nats-init` writes them)"
        )
    seed = Path(settings.nats_callout_seed_file).read_bytes().strip()
    service = CalloutService(
        settings.nats_servers,
        settings.nats_callout_password.get_secret_value(),
        seed,
        Path(settings.nats_accounts_file),
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    out.print(f"answering NATS authorisation requests from {settings.nats_urls}")
    service.run(stop)


@app.command("add-sta-reader")
def add_sta_reader(
    username: str,
    tenant: Annotated[str, typer.Option(help="The tenant whose Datastreams and Things it may follow.")],
    client_id: Annotated[
        str | None, typer.Option(help="The one MQTT client id it may connect with (its username if omitted).")
    ] = None,
) -> None:
    """An account for a partner's (or viewer's) SensorThings MQTT client: it may subscribe to its tenant's
    v1.1/Datastreams(id)/Observations and v1.1/Things('id')/… topics and nothing else. Prints its password once."""
    from devices.broker import BrokerAdmin
    from devices.keys import audit
    from devices.sta import tenant_datastreams
    from mimamori.db import connect

    settings = load_settings()
    with connect(settings.dsn) as conn:
        streams = tenant_datastreams(conn, tenant)
    with BrokerAdmin(settings) as admin:
        password = admin.create_sta_reader(username, tenant, streams, client_id=client_id)
    with connect(settings.dsn) as conn:
        audit(conn, f"cli:{getpass.getuser()}", "broker.sta_reader.create", username, {"tenant": tenant})
        conn.commit()
    out.print(
        f"STA reader {username} of {tenant} ({len(streams)} Datastreams), client id {client_id or username}; password:"
    )
    print(password)


@app.command("sync-sta-readers")
def sync_sta_readers(
    tenant: Annotated[list[str] | None, typer.Option(help="Only these tenants (every tenant if omitted).")] = None,
) -> None:
    """Bring each tenant's STA reader role in line with its Datastreams (run after devices or series appear)."""
    from devices.broker import BrokerAdmin
    from devices.queries import tenant_ids
    from devices.sta import tenant_datastreams
    from mimamori.db import connect

    settings = load_settings()
    with connect(settings.dsn) as conn:
        tenants = tenant or sorted(tenant_ids(conn))
        streams = {t: tenant_datastreams(conn, t) for t in tenants}
    with BrokerAdmin(settings) as admin:
        for name, pairs in streams.items():
            changed = admin.sync_sta_reader_role(name, pairs)
            out.print(f"{name}: {len(pairs)} Datastreams, {changed} ACL changes", highlight=False, markup=False)
