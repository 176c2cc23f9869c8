"""Running a simulation against a broker: in the foreground (the CLI) or in a background thread (``mimamori up``)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from simulators.clock import SimClock
from simulators.credentials import Credentials, Login
from simulators.engine import NATIVE, GaugeState, Outgoing, Simulation
from simulators.fleet import SimDevice, city_devices
from simulators.publisher import DEVICES, BrokerTarget, PublisherStats, RetryPolicy, play
from simulators.scenario import Scenario, load_scenario

if TYPE_CHECKING:
    from mimamori.settings import Settings


class Source(Protocol):
    """A simulation or a replay: anything that yields messages up to a time."""

    devices: list[SimDevice]

    def advance(self, until: datetime) -> list[Outgoing]: ...
    def gauges(self) -> list[GaugeState]: ...
    def fastest_slope(self) -> tuple[str, float] | None: ...
    def rain_mm_h_max(self) -> float: ...


def broker_target(settings: Settings) -> BrokerTarget:
    addr = settings.mqtt
    return BrokerTarget(addr.host, addr.port, addr.tls, settings.mqtt_ca_file, settings.mqtt_topic_prefix)


@dataclass
class SimulationRun:
    """A simulation publishing from its own thread and event loop; ``stop()`` ends it cleanly."""

    source: Source
    clock: SimClock
    stats: PublisherStats
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def stop(self, timeout: float = 15.0) -> None:
        self._ready.wait(5)
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end by itself (the scenario played); True when it has."""
        if self._thread:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True


def start_run(
    source: Source,
    clock: SimClock,
    target: BrokerTarget,
    credentials: Credentials,
    *,
    mode: str = DEVICES,
    connections: int = 4,
    continue_after: bool = False,
    retry: RetryPolicy | None = None,
) -> SimulationRun:
    run = SimulationRun(source, clock, PublisherStats())

    def main() -> None:
        loop = asyncio.new_event_loop()
        run._loop = loop
        try:
            run._stop = asyncio.Event()
            run._ready.set()
            loop.run_until_complete(
                play(
                    source,  # type: ignore[arg-type]
                    clock,
                    target,
                    credentials,
                    run.stats,
                    run._stop,
                    mode=mode,
                    connections=connections,
                    continue_after=continue_after,
                    retry=retry,
                )
            )
        except BaseException as exc:  # reported to the owner of the run, who decides what to do
            run.error = exc
            raise
        finally:
            run._ready.set()
            loop.close()

    run._thread = threading.Thread(target=main, name="simulator", daemon=True)
    run._thread.start()
    return run


def run_in_background(
    settings: Settings,
    scenario: str | Scenario = "typhoon",
    speed: float = 360.0,
    *,
    devices: list[SimDevice] | None = None,
    credentials: Credentials | None = None,
    fmt: str = NATIVE,
    seed: int | None = None,
    continue_after: bool = True,
    now: datetime | None = None,
) -> SimulationRun:
    """Start a scenario for ``mimamori up``: the city's devices, accelerated, then on in real time.

    ``credentials`` are the devices' broker logins (e.g. from ``devices.broker`` provisioning); without them
    every device logs in with the settings' MQTT account, which works where that account may publish.
    """
    chosen = load_scenario(scenario) if isinstance(scenario, str) else scenario
    fleet = devices if devices is not None else city_devices()
    clock = SimClock.anchored(now or datetime.now(UTC), speed, timedelta(hours=chosen.duration_h))
    sim = Simulation(chosen, fleet, clock.sim_start, fmt=fmt, topic_prefix=settings.mqtt_topic_prefix, seed=seed)
    if credentials is None:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        credentials = Credentials(default=Login(settings.mqtt_username, password))
    return start_run(sim, clock, broker_target(settings), credentials, continue_after=continue_after)
