"""The ``mimamori`` command. Subcommands are thin: they parse, call the owning package, and print."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.commands import plain
from mimamori.errors import MimamoriError
from mimamori.logs import setup_logging
from mimamori.serve import serve
from mimamori.settings import Settings, load_settings, redact_url

app = typer.Typer(help="Mimamori: smart-city IoT data hub.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema and status.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _register_command_groups() -> None:
    # One module per command group under hub/commands; each owns its `app`.
    from hub.commands import keys

    app.add_typer(keys.app, name="keys")

    from hub.commands import broker, devices, tenants

    app.add_typer(devices.app, name="devices")
    app.add_typer(tenants.app, name="tenants")
    app.add_typer(broker.app, name="broker")

    from hub.commands import rules

    app.add_typer(rules.app, name="rules")

    from hub.commands import alerts

    app.add_typer(alerts.app, name="alerts")

    from hub.commands import stands

    app.add_typer(stands.app, name="stands")

    from hub.commands import evacuation

    app.add_typer(evacuation.app, name="evacuation")

    from hub.commands import simulate

    app.add_typer(simulate.app, name="simulate")

    from hub.commands import grafana

    app.add_typer(grafana.app, name="grafana")


_register_command_groups()

out = Console()

if TYPE_CHECKING:
    from simulators import SimClock, SimulationRun


def _settings() -> Settings:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_json)
    return settings


def prepare_database(settings: Settings) -> str:
    """Migrate and load the device catalogue; returns the storage mode."""
    from devices import load_catalogue, sync_catalogue
    from mimamori.db import connect
    from mimamori.migrate import migrate

    report = migrate(settings)
    with connect(settings.dsn) as conn:
        sync_catalogue(conn, load_catalogue())
        conn.commit()
    if report.applied:
        out.print(f"applied {len(report.applied)} migration(s): {', '.join(report.applied)}")
    return report.mode


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database if needed and apply pending migrations (safe to run twice, or concurrently)."""
    settings = _settings()
    mode = prepare_database(settings)
    out.print(f"database up to date ({mode} mode)")


@db_app.command("info")
def db_info() -> None:
    """Storage mode, server and extension versions, and row counts."""
    from mimamori.db import connect
    from mimamori.dbinfo import database_info

    settings = _settings()
    with connect(settings.dsn) as conn:
        info = database_info(conn)
    table = Table(title=f"Mimamori database {plain(redact_url(settings.dsn))}", show_header=False)
    for key, value in info.items():
        table.add_row(plain(key), plain(value))
    out.print(table)


@app.command("ingest")
def ingest_cmd(
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes to run on the shared subscription. One Python process is bound by its MQTT client "
            "(about one core); more processes use more cores. Worker n uses client id <MIMAMORI_MQTT_CLIENT_ID>-n "
            "and the broker account of that name (`mimamori broker migrate --ingest-workers N`).",
        ),
    ] = 1,
) -> None:
    """Subscribe to the broker and store readings (run several on the shared subscription)."""
    from ingest.gc_tuning import tune_for_streaming
    from mimamori.db import make_pool

    settings = _settings()
    pool = make_pool(settings)
    stop = threading.Event()
    children = _spawn_ingest_workers(settings, workers)

    def on_signal(sig: int, _frame: object) -> None:
        stop.set()
        for child in children:
            child.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    if settings.metrics_port:  # worker n serves on metrics_port + n - 1 (docs/operations.md)
        from mimamori.metrics import serve_metrics

        serve_metrics(settings.metrics_host, settings.metrics_port)
    try:
        from hub.compose import forwarding_ingestor

        ingestor = forwarding_ingestor(settings, pool, stop)  # evaluated by `mimamori alerts run` (docs/alerts.md)
        tune_for_streaming(settings.ingest_gc_gen0)
        ingestor.connect()
        source = settings.nats_urls if settings.broker == "nats" else settings.mqtt
        out.print(f"ingesting from {source} as {settings.mqtt_client_id}")
        ingestor.run(stop)
        print(json.dumps({"ingest_stopped": ingestor.stats.snapshot()}), flush=True)
    finally:
        pool.close()
        failed = [c.args for c in children if c.wait() != 0]
    if failed:
        raise MimamoriError(f"{len(failed)} ingest worker(s) failed")


def _spawn_ingest_workers(settings: Settings, workers: int) -> list[subprocess.Popen[bytes]]:
    """Workers 2…n as child processes with their own stable client ids; this process is worker 1.

    The broker binds each account to one client id, so worker n logs in with the account named after its
    client id (same password; `mimamori broker migrate --ingest-workers N` creates them)."""
    from devices.hub_accounts import worker_client_id

    children = []
    for n in range(2, workers + 1):
        client_id = worker_client_id(settings.mqtt_client_id, n)
        env = os.environ | {"MIMAMORI_MQTT_CLIENT_ID": client_id, "MIMAMORI_MQTT_USERNAME": client_id}
        if settings.metrics_port:
            env["MIMAMORI_METRICS_PORT"] = str(settings.metrics_port + n - 1)
        children.append(subprocess.Popen([sys.executable, "-m", "hub.cli", "ingest"], env=env))
    return children


@app.command("api")
def api_cmd(
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving the API on one port. One Python process answers on about one core; run one "
            "per core the API may use.",
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API."""
    from hub.compose import standalone_api

    settings = _settings()
    from mimamori.db import connect

    connect(settings.dsn).close()  # fail with one line now, not inside the server's start-up
    if workers > 1:
        from mimamori.serve import serve_workers

        serve_workers("hub.compose:api_from_environment", settings.api_host, settings.api_port, workers)
        return
    serve(standalone_api(settings), settings.api_host, settings.api_port)


def _tell_once_serving(settings: Settings, way_in: list[str]) -> None:
    """The map's address and the way in, printed when the API answers: the last lines of start-up, not lost
    above the server's own."""
    import socket
    import time

    def answers() -> bool:
        try:
            socket.create_connection((settings.api_host, settings.api_port), timeout=1).close()
            return True
        except OSError:
            return False

    def tell() -> None:
        deadline = time.monotonic() + 120
        while not answers():
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)
        url = f"http://{settings.api_host}:{settings.api_port}"
        lines = ["", "[bold]Mimamori is serving[/]", f"  map    {url}/", f"  API    {url}/docs"]
        lines += ["  " + line for line in way_in]
        lines.append("  in another terminal: cd to this checkout, `. .venv/bin/activate`, then any mimamori command")
        for line in lines:
            out.print(line, markup=line.startswith("[bold]"), highlight=False, soft_wrap=True)

    threading.Thread(target=tell, name="tell-once-serving", daemon=True).start()


@app.command("up")
def up_cmd(
    scenario: Annotated[
        str, typer.Option(help="Simulator scenario to play over the city's devices (calm, typhoon, faults).")
    ] = "typhoon",
    speed: Annotated[float, typer.Option(help="Time acceleration (360 plays a 24 h storm in 4 min).")] = 360.0,
    simulate: Annotated[bool, typer.Option(help="Run the device simulators too.")] = True,
    sample_stands: Annotated[
        int, typer.Option(help="On a hub without forest stands, import this many SYNTHETIC sample stands (0: none).")
    ] = 20_000,
    sample_evacuation: Annotated[
        bool, typer.Option(help="On a hub without evacuation sites, import the SAMPLE Toyota lists (geo/samples/).")
    ] = True,
) -> None:
    """Everything in one process for a laptop: migrate, seed, ingest, alerts, the API and the map, and the
    city's simulated devices playing a scenario (then carrying on in real time)."""
    from devices.seed import admin_way_in, seed_city
    from hub.compose import in_process_hub
    from mimamori.db import make_pool

    settings = _settings()
    mode = prepare_database(settings)
    pool = make_pool(settings)
    try:
        with pool.connection() as conn:
            seeded = seed_city(conn)
            way_in = admin_way_in(conn, settings.admin_key_file)
            no_stands = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM stands)").fetchone()[0]  # type: ignore[index]
            no_sites = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM evacuation_sites)").fetchone()[0]  # type: ignore[index]
        if sample_stands and no_stands:
            _import_sample_stands(sample_stands)
        if sample_evacuation and no_sites:
            _import_sample_evacuation_sites()
        # While a scenario plays, alerts judge silence on its timeline (set once the simulator has started).
        sim_clocks: list[SimClock] = []

        def alert_clock() -> datetime:
            now = datetime.now(UTC)
            return sim_clocks[0].sim_at(now) if sim_clocks else now

        with in_process_hub(settings, pool, clock=alert_clock, ready_timeout_s=None) as hub:
            out.print(f"[bold]Mimamori is up[/] ({mode} mode, {seeded} city devices)")
            out.print(f"  map       http://{settings.api_host}:{settings.api_port}/")
            out.print(f"  API       http://{settings.api_host}:{settings.api_port}/docs")
            out.print(f"  broker    {settings.mqtt}  topics {settings.mqtt_topic_prefix}/<tenant>/<device>/telemetry")
            run = _start_simulation(settings, scenario, speed) if simulate else None
            if run is not None:
                sim_clocks.append(run.clock)
            _tell_once_serving(settings, way_in.lines())
            serve(hub.app(), settings.api_host, settings.api_port, hub.stop)
            if run is not None:
                run.stop()
    finally:
        pool.close()


def _import_sample_stands(count: int) -> None:
    """A synthetic stand register in EPSG:6675 (as a real one comes), imported like a real one."""
    import tempfile

    from hub.commands import stands

    with tempfile.TemporaryDirectory(prefix="mimamori-stands-") as folder:
        path = Path(folder) / "sample-stands.gpkg"
        stands.sample(path, count=count, seed=232114)
        stands.import_(path)


def _import_sample_evacuation_sites() -> None:
    """The SAMPLE evacuation lists for Toyota City, imported like a city's own files."""
    from hub.commands import evacuation

    for path in evacuation.sample_paths():
        evacuation.import_(path)


def _start_simulation(settings: Settings, scenario: str, speed: float) -> SimulationRun:
    """The city's devices, each with its own broker account (provisioned now), playing ``scenario``."""
    from hub.commands.simulate import _provision
    from simulators import city_devices, run_in_background

    fleet = city_devices()
    credentials = _provision(settings, fleet) if settings.mqtt_admin_password else None
    run = run_in_background(settings, scenario, speed, devices=fleet, credentials=credentials)
    out.print(f"  simulator {scenario} at {speed:g}× over {len(fleet)} devices (Ctrl-C stops everything)")
    return run


def main(argv: list[str] | None = None) -> None:
    """Entry point: every MimamoriError becomes one line on stderr and a non-zero exit code."""
    import psycopg

    try:
        # Outside standalone mode click returns a command's exit code instead of exiting with it.
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MimamoriError as exc:
        print(f"mimamori: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except psycopg.Error as exc:
        print(f"mimamori: database error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
