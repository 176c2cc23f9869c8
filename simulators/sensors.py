"""What each type of device reports when it samples the world: one table of metric functions, per type.

A sensor adds what real instruments add: resolution (a tipping bucket counts 0.5 mm), noise, a per-device
offset, and the battery and radio signal every device reports. Values depend only on the seed, the device,
the world's state and the time, so a seeded run repeats exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from simulators._noise import gauss, uniform
from simulators.fleet import SimDevice
from simulators.hydrology import stage_m
from simulators.weather import air_temperature_c, daylight, humidity_pct, rain_between, rain_mm_h, wind
from simulators.world import World

TIP_MM = 0.5  # tipping-bucket resolution

# Gauge thresholds when a registry entry has none (domain.md §1, the Yahagi's estimates).
DEFAULT_STANDBY_M = 3.5
DEFAULT_DANGER_M = 6.8


@dataclass(slots=True)
class SensorState:
    """What a device remembers between samples."""

    last_hour: float | None = None
    bucket_mm: float = 0.0  # rain in the bucket that has not tipped yet


@dataclass(frozen=True, slots=True)
class Sample:
    device: SimDevice
    when: datetime
    hour: float
    step: int  # the device's sample number, for noise keys
    seed: int


Metric = Callable[[Sample, World, SensorState], float]


def _noise(s: Sample, metric: str, sd: float) -> float:
    return sd * gauss(s.seed, s.device.id, metric, s.step)


def _rain_since_last(s: Sample, world: World, state: SensorState) -> float:
    start = s.hour - s.device.interval_s / 3600.0 if state.last_hour is None else state.last_hour
    fallen = rain_between(world.scenario.weather, max(start, 0.0), s.hour, s.device.place, world.seed)
    state.bucket_mm += fallen
    tips = math.floor(state.bucket_mm / TIP_MM + 1e-9)
    state.bucket_mm -= tips * TIP_MM
    return tips * TIP_MM


def _water_level(s: Sample, world: World, _state: SensorState) -> float:
    meta = s.device.metadata
    river = world.river(str(meta.get("river", f"river-near-{s.device.id}")))
    standby = float(meta.get("standby_m", DEFAULT_STANDBY_M))
    danger = float(meta.get("danger_m", DEFAULT_DANGER_M))
    level = stage_m(river.outflow_mm_h, river.params, standby, danger)
    return round(level + _noise(s, "water_level", 0.004), 2)


def _displacement(s: Sample, world: World, _state: SensorState) -> float:
    slope = world.slope(str(s.device.metadata["slope_id"]))
    offset = 20.0 * uniform(world.seed, s.device.id, "ext-offset")  # where the wire was zeroed
    return round(offset + slope.displacement_mm + _noise(s, "displacement", 0.01), 2)


def _tilt(axis: int) -> Metric:
    def metric(s: Sample, world: World, _state: SensorState) -> float:
        slope = world.slope(str(s.device.metadata["slope_id"]))
        offset = 0.5 * gauss(world.seed, s.device.id, "tilt-offset", axis)
        thermal = 0.0005 * math.sin(2 * math.pi * daylight(s.when))  # housing warms in the sun
        name = "tilt_x" if axis == 0 else "tilt_y"
        return round(offset + slope.tilt_deg()[axis] + thermal + _noise(s, name, 0.0002), 4)

    return metric


def _soil_moisture(s: Sample, world: World, _state: SensorState) -> float:
    theta = world.soil_for(s.device).water_content + 0.02 * gauss(world.seed, s.device.id, "soil-offset")
    return round(min(max(theta + _noise(s, "soil_moisture", 0.002), 0.0), 1.0), 3)


def _soil_temperature(s: Sample, world: World, _state: SensorState) -> float:
    air = air_temperature_c(world.scenario.weather, s.hour, s.when, s.device.place)
    mean = world.scenario.weather.mean_temperature_c - 2.0
    return round(mean + 0.3 * (air - mean) + _noise(s, "soil_temperature", 0.05), 2)


def _air_temperature(s: Sample, world: World, _state: SensorState) -> float:
    air = air_temperature_c(world.scenario.weather, s.hour, s.when, s.device.place)
    return round(air + _noise(s, "air_temperature", 0.15), 1)


def _humidity(s: Sample, world: World, _state: SensorState) -> float:
    rh = humidity_pct(world.scenario.weather, s.hour, s.when, s.device.place) + _noise(s, "humidity", 1.0)
    return round(min(max(rh, 5.0), 100.0), 1)


def _wind_speed(s: Sample, world: World, _state: SensorState) -> float:
    speed, _ = wind(world.scenario.weather, s.hour, s.device.place)
    return round(max(0.0, speed * (1 + 0.15 * gauss(world.seed, s.device.id, "gust", s.step))), 1)


def _wind_direction(s: Sample, world: World, _state: SensorState) -> float:
    _, direction = wind(world.scenario.weather, s.hour, s.device.place)
    return round((direction + _noise(s, "wind_direction", 12.0)) % 360.0, 0)


def _stem_radius(s: Sample, world: World, _state: SensorState) -> float:
    """Seasonal growth plus the daily cycle: the stem shrinks by day as the tree transpires, and less so wet."""
    amplitude = 20.0 + 80.0 * uniform(world.seed, s.device.id, "dendro-amplitude")  # 20–100 µm (domain.md §3)
    growth_um_day = 3.0
    wetness = (world.soil_for(s.device).water_content - 0.15) / 0.30
    days = s.hour / 24.0
    shrink = amplitude * daylight(s.when) * (1.0 - 0.7 * min(max(wetness, 0.0), 1.0))
    return round(growth_um_day * days - shrink + 30.0 * wetness + _noise(s, "stem_radius_change", 1.0), 1)


def _battery(s: Sample, world: World, _state: SensorState) -> float:
    """A 3.7 V lithium cell on a small solar panel: charges by day, less under rain clouds."""
    cloud = min(1.0, rain_mm_h(world.scenario.weather, s.hour, s.device.place, world.seed) / 10.0)
    health = 0.1 * uniform(world.seed, s.device.id, "battery-health")
    volts = 3.75 - health + 0.35 * daylight(s.when) * (1 - 0.8 * cloud) - 0.004 * s.hour
    return round(volts + _noise(s, "battery", 0.01), 2)


def _signal(s: Sample, world: World, _state: SensorState) -> float:
    """Received power; heavy rain and swaying trees cost a few dB."""
    base = -75.0 - 25.0 * uniform(world.seed, s.device.id, "signal-site")
    rain = rain_mm_h(world.scenario.weather, s.hour, s.device.place, world.seed)
    return round(min(-40.0, base - 0.1 * rain + _noise(s, "signal", 2.0)), 0)


_COMMON: dict[str, Metric] = {"battery": _battery, "signal": _signal}

# One table drives every type; a new type is a new row, not a new simulator.
METRICS: dict[str, dict[str, Metric]] = {
    "river_gauge": {"water_level": _water_level},
    "river_gauge_crisis": {"water_level": _water_level},
    "rain_gauge": {"rainfall": _rain_since_last},
    "extensometer": {"displacement": _displacement},
    "tiltmeter": {"tilt_x": _tilt(0), "tilt_y": _tilt(1)},
    "soil_moisture": {"soil_moisture": _soil_moisture, "soil_temperature": _soil_temperature},
    "weather_station": {
        "rainfall": _rain_since_last,
        "air_temperature": _air_temperature,
        "humidity": _humidity,
        "wind_speed": _wind_speed,
        "wind_direction": _wind_direction,
    },
    "dendrometer": {"stem_radius_change": _stem_radius, "air_temperature": _air_temperature},
}


def sample(s: Sample, world: World, state: SensorState) -> dict[str, float]:
    """Every metric of the device's type, in the catalogue's canonical units."""
    values = {name: fn(s, world, state) for name, fn in (METRICS[s.device.device_type] | _COMMON).items()}
    state.last_hour = s.hour
    return values
