"""Device simulators: sensor models over Toyota City, scenarios (calm, typhoon, faults), CSV replay, and an
MQTT publisher that plays them to the hub as real devices would. A device, not a part of the hub: it uses
only the public contract (topics, payload codecs) and credentials handed to it.
"""

from simulators.clock import SimClock
from simulators.engine import NATIVE, SENML, GaugeState, Outgoing, Simulation, warning_level
from simulators.errors import FleetError, ScenarioError, SimulatorError
from simulators.fleet import SimDevice, city_devices, sized_fleet, synthesize
from simulators.scenario import FaultKind, FaultSpec, Scenario, Storm, Weather, available_scenarios, load_scenario

__all__ = [
    "NATIVE",
    "SENML",
    "FaultKind",
    "FaultSpec",
    "FleetError",
    "GaugeState",
    "Outgoing",
    "Scenario",
    "ScenarioError",
    "SimClock",
    "SimDevice",
    "Simulation",
    "SimulatorError",
    "Storm",
    "Weather",
    "available_scenarios",
    "city_devices",
    "load_scenario",
    "sized_fleet",
    "synthesize",
    "warning_level",
]
