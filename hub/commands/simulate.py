"""`mimamori simulate`: play a scenario to the broker as a fleet of devices, with a live summary."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hub.commands import plain
from mimamori.errors import ConfigError, UnreachableError
from mimamori.settings import Settings, load_settings

app = typer.Typer(
    help="Device simulators: scenarios played to the broker as real devices.", invoke_without_command=True
)
out = Console()
err = Console(stderr=True)

_LEVEL_STYLE = {0: "green", 1: "cyan", 2: "yellow", 3: "dark_orange", 4: "bold red"}
_LEVEL_NAME = {0: "normal", 1: "standby", 2: "caution", 3: "evacuation judgement", 4: "danger"}


@app.callback()
def simulate(
    scenario: Annotated[str, typer.Option(help="calm, typhoon, faults, or a path to a scenario YAML.")] = "typhoon",
    speed: Annotated[float, typer.Option(help="Acceleration: 60 plays a 24 h storm in 24 min.", min=1)] = 60.0,
    devices: Annotated[
        int | None, typer.Option("--devices", "-n", help="How many devices; generated ones beyond the city's.")
    ] = None,
    from_db: Annotated[
        bool, typer.Option("--from-db", help="Simulate the registry's devices, not the city file.")
    ] = False,
    register: Annotated[bool, typer.Option(help="Register generated devices in the hub first.")] = False,
    credentials: Annotated[
        Path | None, typer.Option(help="Device logins (JSON/YAML; see docs/simulators.md).", exists=True)
    ] = None,
    provision: Annotated[
        bool, typer.Option(help="Give each device its own broker account first (needs the broker admin account).")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="native or senml.")] = "native",
    mode: Annotated[str, typer.Option(help="devices (a connection each) or load (a few shared ones).")] = "devices",
    connections: Annotated[int, typer.Option(help="Connections in load mode.", min=1)] = 4,
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    replay: Annotated[
        Path | None, typer.Option(help="Replay a recorded CSV instead of a scenario.", exists=True)
    ] = None,
    keep_going: Annotated[bool, typer.Option("--continue", help="Carry on in real time after the scenario.")] = False,
) -> None:
    """Play a scenario (or a recorded CSV) to the broker: each device with its own connection, client id and login,
    over MQTT 5, timestamps consistent with the accelerated clock (the scenario ends at the present moment)."""
    import simulators as sim_pkg
    from simulators.publisher import socket_limit_hint

    settings = load_settings()
    if fmt not in (sim_pkg.NATIVE, sim_pkg.SENML):
        raise ConfigError("--format must be native or senml")
    if mode not in (sim_pkg.DEVICES, sim_pkg.LOAD):
        raise ConfigError("--mode must be devices or load")
    _wait_for_broker(settings)
    try:
        now = datetime.now(UTC)
        if replay:
            # Read once to learn the recording's length, then anchored so it ends at the present like a scenario.
            source = sim_pkg.Replay(replay, now, fmt=fmt, topic_prefix=settings.mqtt_topic_prefix)
            source = sim_pkg.Replay(
                replay,
                now - source.duration + source.duration / speed,
                fmt=fmt,
                topic_prefix=settings.mqtt_topic_prefix,
            )
            clock = sim_pkg.SimClock.anchored(now, speed, source.duration or timedelta(seconds=1))
            title = f"replay of {replay.name}"
        else:
            chosen = sim_pkg.load_scenario(scenario)
            base = _registry_devices(settings) if from_db else sim_pkg.city_devices()
            fleet = sim_pkg.sized_fleet(base, devices, seed if seed is not None else chosen.seed)
            if register:
                _register(
                    settings, [d for d in fleet if d.metadata.get("synthetic") is True and d.id.startswith("sim-")]
                )
            clock = sim_pkg.SimClock.anchored(now, speed, timedelta(hours=chosen.duration_h))
            source = sim_pkg.Simulation(
                chosen, fleet, clock.sim_start, fmt=fmt, topic_prefix=settings.mqtt_topic_prefix, seed=seed
            )
            title = f"{chosen.name} at {speed:g}×"
        logins = sim_pkg.load_credentials(credentials) if credentials else sim_pkg.Credentials()
        if not credentials and mode == sim_pkg.DEVICES and settings.mqtt_admin_password:
            provision = True  # a broker binding accounts to client ids refuses devices without their own
        if provision:
            logins = logins.merged(_provision(settings, source.devices))
        if mode == sim_pkg.LOAD or not logins.devices:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            logins = logins.merged(
                sim_pkg.Credentials(default=logins.default or sim_pkg.Login(settings.mqtt_username, password))
            )
    except sim_pkg.SimulatorError as exc:
        raise ConfigError(str(exc)) from None
    if mode == sim_pkg.DEVICES and (hint := socket_limit_hint(len(source.devices))):
        raise ConfigError(hint + "; raise it, or use --mode load")

    run = sim_pkg.start_run(
        source,
        clock,
        sim_pkg.broker_target(settings),
        logins,
        mode=mode,
        connections=connections,
        continue_after=keep_going,
    )
    out.print(f"[bold]{plain(title)}[/]: {len(source.devices)} devices → {plain(settings.mqtt)} (Ctrl-C stops)")
    started = time.monotonic()
    try:
        with Live(_summary(run, title), console=out, refresh_per_second=4) as live:
            while not run.wait(0.25):
                live.update(_summary(run, title))
                _check_someone_connected(run, settings, time.monotonic() - started)
            live.update(_summary(run, title))
    except KeyboardInterrupt:
        out.print("stopping…")
    finally:
        run.stop()
    if run.error:
        raise ConfigError(f"simulator stopped: {run.error}")
    s = run.stats
    out.print(
        f"sent {s.messages} messages ({s.readings} readings) and {s.births} birth messages; refused {s.refused}; "
        f"resent {s.retried}, unheard {s.unheard}; dropped {s.dropped}, unsent at stop {s.unsent}; errors {s.errors}"
    )


def _wait_for_broker(settings: Settings) -> None:
    """Return once the broker takes a TCP connection; say at once when it does not, and give up after
    MIMAMORI_SIMULATE_CONNECT_TIMEOUT_S (a wrong address otherwise showed nothing while every device retried)."""
    address, patience = settings.mqtt, settings.simulate_connect_timeout_s
    deadline = time.monotonic() + patience
    told = False
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((address.host, address.port), timeout=max(0.2, min(2.0, left))):
                return
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
        if time.monotonic() >= deadline:
            raise UnreachableError(
                f"cannot connect to the MQTT broker at {address} (MIMAMORI_MQTT_URL): {why};"
                f" gave up after {patience:g} s, nothing was sent"
            )
        if not told:
            err.print(f"cannot connect to the MQTT broker at {plain(address)}: {plain(why)}; trying for {patience:g} s")
            told = True
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def _check_someone_connected(run: object, settings: Settings, elapsed_s: float) -> None:
    """A broker that takes TCP connections but never answers MQTT (a proxy, a firewall, another service on the
    port), or refuses every login: when no device got through in MIMAMORI_SIMULATE_CONNECT_TIMEOUT_S, say why."""
    from simulators import SimulationRun

    assert isinstance(run, SimulationRun)
    s = run.stats
    if elapsed_s < settings.simulate_connect_timeout_s or s.connected or s.messages or s.births or s.refused:
        return
    why = s.last_error or "no MQTT answer (CONNACK) yet"
    raise UnreachableError(
        f"no device could connect to the MQTT broker at {settings.mqtt} (MIMAMORI_MQTT_URL)"
        f" within {settings.simulate_connect_timeout_s:g} s: {why}"
    )


def _summary(run: object, title: str) -> Group:
    from simulators import SimulationRun

    assert isinstance(run, SimulationRun)
    s, source = run.stats, run.source
    head = Table.grid(padding=(0, 2))
    sim_time = s.sim_time.astimezone().strftime("%Y-%m-%d %H:%M") if s.sim_time else "-"
    hours = run.clock.hours_into(s.sim_time) if s.sim_time else 0.0
    head.add_row("scenario", plain(title), "simulated time", f"{sim_time} (hour {hours:4.1f})")
    head.add_row(
        "devices", f"{s.connected}/{s.connections} connected", "sent", f"{s.messages} msgs, {s.readings} readings"
    )
    head.add_row("refused", str(s.refused), "errors", Text(str(s.errors), style="red" if s.errors else ""))
    head.add_row("resent", str(s.retried), "unheard", Text(str(s.unheard), style="red" if s.unheard else ""))
    head.add_row(
        "rain (max)",
        f"{source.rain_mm_h_max():.0f} mm/h",
        "faults",
        plain(", ".join(f"{k} {v}" for k, v in s.faults.items())) or "-",
    )
    slope = source.fastest_slope()
    if slope:
        head.add_row("fastest slope", plain(f"{slope[0]} {slope[1]:.2f} mm/h"), "", "")
    if s.last_error:
        head.add_row("last error", Text(s.last_error, style="red"), "", "")
    gauges = Table("gauge", "river", "level (m)", "warning level", title="river gauges", title_justify="left")
    for g in sorted(source.gauges(), key=lambda g: -g.warning_level)[:12]:
        style = _LEVEL_STYLE[g.warning_level]
        gauges.add_row(
            plain(g.device_id),
            plain(g.river),
            f"{g.level_m:.2f}",
            Text(f"{g.warning_level} {_LEVEL_NAME[g.warning_level]}", style=style),
        )
    return Group(head, gauges)


def _registry_devices(settings: Settings) -> list:
    from devices.queries import DeviceFilter, list_devices
    from mimamori.db import connect
    from simulators import SimDevice

    found: list[SimDevice] = []
    with connect(settings.dsn) as conn:  # the registry's read model of a device, made a simulated one here
        while page := list_devices(conn, None, DeviceFilter(status="active", limit=1000, offset=len(found))):
            found += [
                SimDevice(
                    id=d.id,
                    tenant=d.tenant_id,
                    device_type=d.device_type,
                    lat=d.lat,
                    lon=d.lon,
                    interval_s=d.expected_interval_s or 600,
                    metadata=dict(d.metadata or {}),
                    name=d.name or "",
                )
                for d in page
            ]
    found = [d for d in found if d.lat is not None and d.lon is not None]
    if not found:
        raise ConfigError("the registry has no active devices with a location (run `mimamori up` or seed it first)")
    return found


def _register(settings: Settings, generated: list) -> None:
    from rich.progress import track

    from devices import upsert_device
    from mimamori.db import connect

    if not generated:
        return
    with connect(settings.dsn) as conn:
        for d in track(generated, description="registering generated devices", console=out):
            upsert_device(
                conn,
                device_id=d.id,
                tenant_id=d.tenant,
                device_type=d.device_type,
                name=d.name,
                lon=d.lon,
                lat=d.lat,
                expected_interval=timedelta(seconds=d.interval_s),
                metadata=dict(d.metadata),
            )
        conn.commit()


def _provision(settings: Settings, fleet: list) -> object:
    """Broker accounts for the devices through the hub's provisioning; passwords stay in this process."""
    from rich.progress import track

    from simulators import Credentials, Login

    try:
        from devices.broker import BrokerAdmin
    except ImportError:
        raise ConfigError("this hub has no broker provisioning (devices.broker)") from None
    logins = {}
    with BrokerAdmin(settings) as admin:
        for d in track(fleet, description="provisioning broker accounts", console=out):
            creds = (
                admin.rotate_password(d.tenant, d.id)
                if admin.account_exists(d.id)
                else admin.provision_device(d.tenant, d.id)
            )
            logins[d.id] = Login(creds.username, creds.password)
    return Credentials(logins)
