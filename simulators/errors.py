"""The simulator's errors: one small hierarchy the CLI maps to a one-line message and an exit code."""

from __future__ import annotations


class SimulatorError(Exception):
    """Base of every error the simulator raises on purpose."""

    exit_code = 2


class ScenarioError(SimulatorError):
    """A scenario or replay file is missing or invalid."""


class FleetError(SimulatorError):
    """The devices to simulate could not be determined (bad file, unknown type, …)."""
