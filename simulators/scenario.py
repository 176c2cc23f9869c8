"""Scenarios: weather, ground and faults over a number of hours, read from YAML. Pure data, no I/O but reading.

Shipped scenarios live in ``simulators/scenarios/`` (``calm``, ``typhoon``, ``faults``); a path to any other
YAML file works the same way. Times in a scenario are hours since it began.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from simulators.errors import ScenarioError


class FaultKind(StrEnum):
    dropout = "dropout"  # the device is silent (a gauge falling silent in a storm)
    stuck = "stuck"  # a metric repeats its last value
    spike = "spike"  # one impossible value
    clock_skew = "clock_skew"  # the device's clock is off by offset_s
    duplicate = "duplicate"  # every n-th message is sent twice
    outage_burst = "outage_burst"  # 5G outage: readings stored on the device, sent as one batch afterwards
    malformed = "malformed"  # a payload that is not JSON
    foreign_topic = "foreign_topic"  # the device publishes on a topic that is not its own


@dataclass(frozen=True, slots=True)
class Storm:
    """A rain event: an asymmetric hyetograph (rising to ``peak_h``, falling until ``end_h``) on a moving core."""

    start_h: float
    peak_h: float
    end_h: float
    peak_mm_h: float
    track_from: tuple[float, float] = (35.08, 137.16)  # (lat, lon) of the core at start_h
    track_to: tuple[float, float] = (35.08, 137.16)  # … and at end_h
    radius_km: float = 60.0
    wind_peak_ms: float = 0.0
    band_period_h: float = 1.5  # rain bands passing over: a typhoon's rain comes in pulses
    band_amplitude: float = 0.3


@dataclass(frozen=True, slots=True)
class Weather:
    mean_temperature_c: float = 24.0
    daily_range_c: float = 8.0
    humidity_pct: float = 70.0
    wind_ms: float = 2.0
    antecedent_mm: float = 20.0  # soil water at the start (mm in the soil stores)
    storms: tuple[Storm, ...] = ()


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: FaultKind
    device: str | None = None  # a device id, or …
    device_type: str | None = None  # … the first device of this type (sorted by id) in the fleet
    from_h: float = 0.0
    to_h: float = float("inf")
    at_h: tuple[float, ...] = ()  # spike / malformed / foreign_topic: the sample times it hits
    metric: str | None = None
    value: float | None = None
    offset_s: float = 0.0
    every: int = 2
    tenant: str | None = None  # foreign_topic: the tenant in the topic used (default: the device's own)
    topic_device: str | None = None  # foreign_topic: the device id in the topic used (default: its own)
    note: str = ""

    def active(self, hour: float) -> bool:
        return self.from_h <= hour < self.to_h


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    duration_h: float
    seed: int = 8
    weather: Weather = field(default_factory=Weather)
    faults: tuple[FaultSpec, ...] = ()
    rivers: dict[str, dict[str, Any]] = field(default_factory=dict)  # overrides of places.yaml
    slopes: dict[str, dict[str, Any]] = field(default_factory=dict)


def available_scenarios() -> list[str]:
    folder = resources.files("simulators").joinpath("scenarios")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name (``typhoon``) or any scenario YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
        where = str(path)
    else:
        if name_or_path not in available_scenarios():
            raise ScenarioError(f"no scenario {name_or_path!r}; shipped: {', '.join(available_scenarios())}")
        text = resources.files("simulators").joinpath("scenarios", f"{name_or_path}.yaml").read_text("utf-8")
        where = f"simulators/scenarios/{name_or_path}.yaml"
    try:
        return parse_scenario(yaml.safe_load(text))
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"scenario {where} is invalid: {exc}") from None


def _build(cls: type, doc: dict[str, Any], what: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(doc) - known
    if unknown:
        raise ValueError(f"{what}: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(**doc)


def parse_scenario(doc: dict[str, Any]) -> Scenario:
    weather_doc = dict(doc.get("weather") or {})
    storms = []
    for s in weather_doc.pop("storms", None) or []:
        s = dict(s)
        for key in ("track_from", "track_to"):
            if key in s:
                s[key] = (float(s[key][0]), float(s[key][1]))
        storm = _build(Storm, s, "storm")
        if not storm.start_h <= storm.peak_h <= storm.end_h:
            raise ValueError("storm: start_h <= peak_h <= end_h is required")
        storms.append(storm)
    weather = _build(Weather, {**weather_doc, "storms": tuple(storms)}, "weather")
    faults = []
    for f in doc.get("faults") or []:
        f = dict(f)
        f["kind"] = FaultKind(f["kind"])
        if "at_h" in f:
            at = f["at_h"]
            f["at_h"] = tuple(float(x) for x in (at if isinstance(at, list) else [at]))
        spec = _build(FaultSpec, f, f"fault {f['kind']}")
        if spec.device is None and spec.device_type is None:
            raise ValueError(f"fault {spec.kind}: give a device or a device_type")
        faults.append(spec)
    duration = float(doc["duration_h"])
    if duration <= 0:
        raise ValueError("duration_h must be positive")
    return Scenario(
        name=str(doc["name"]),
        description=str(doc.get("description", "")).strip(),
        duration_h=duration,
        seed=int(doc.get("seed", 8)),
        weather=weather,
        faults=tuple(faults),
        rivers=dict(doc.get("rivers") or {}),
        slopes=dict(doc.get("slopes") or {}),
    )
