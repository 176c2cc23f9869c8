"""Device simulators: sensor models over Toyota City, scenarios (calm, typhoon, faults), CSV replay, and an
MQTT publisher that plays them to the hub as real devices would; and the synthetic stand register
(`simulators.stand_register`, imported by its path: it needs geopandas, which a device run does not). A device,
not a part of the hub: it uses only the public contract (topics, payload codecs) and credentials handed to it.
"""

from simulators.clock import SimClock
from simulators.credentials import Credentials, Login, load_credentials
from simulators.engine import NATIVE, SENML, GaugeState, Outgoing, Simulation, warning_level
from simulators.errors import FleetError, ScenarioError, SimulatorError
from simulators.fleet import SimDevice, city_devices, sized_fleet, synthesize
from simulators.publisher import DEVICES, LOAD, BrokerTarget, PublisherStats, RetryPolicy
from simulators.replay import Replay
from simulators.runner import SimulationRun, broker_target, run_in_background, start_run
from simulators.scenario import FaultKind, FaultSpec, Scenario, Storm, Weather, available_scenarios, load_scenario

__all__ = [
    "DEVICES",
    "LOAD",
    "NATIVE",
    "SENML",
    "BrokerTarget",
    "Credentials",
    "FaultKind",
    "FaultSpec",
    "FleetError",
    "GaugeState",
    "Login",
    "Outgoing",
    "PublisherStats",
    "Replay",
    "RetryPolicy",
    "Scenario",
    "ScenarioError",
    "SimClock",
    "SimDevice",
    "Simulation",
    "SimulationRun",
    "SimulatorError",
    "Storm",
    "Weather",
    "available_scenarios",
    "broker_target",
    "city_devices",
    "load_credentials",
    "load_scenario",
    "run_in_background",
    "sized_fleet",
    "start_run",
    "synthesize",
    "warning_level",
]
