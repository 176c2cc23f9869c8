"""The simulated sky over Toyota City: rain, temperature, humidity and wind at a place and time. Pure.

Every function takes the scenario's weather, the hours since the scenario began, and (for daily cycles)
the simulated wall time, and returns a value: no state, so any device can ask about any moment.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from simulators._noise import gauss
from simulators.scenario import Storm, Weather

JST = timezone(timedelta(hours=9))
_KM_PER_DEG_LAT = 111.0


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance; plenty for a city of 30 km."""
    mean_lat = math.radians((a[0] + b[0]) / 2)
    dy = (a[0] - b[0]) * _KM_PER_DEG_LAT
    dx = (a[1] - b[1]) * _KM_PER_DEG_LAT * math.cos(mean_lat)
    return math.hypot(dx, dy)


def _core(storm: Storm, hour: float) -> tuple[float, float]:
    span = max(storm.end_h - storm.start_h, 1e-9)
    f = min(max((hour - storm.start_h) / span, 0.0), 1.0)
    return (
        storm.track_from[0] + f * (storm.track_to[0] - storm.track_from[0]),
        storm.track_from[1] + f * (storm.track_to[1] - storm.track_from[1]),
    )


def _envelope(storm: Storm, hour: float) -> float:
    """0 → 1 → 0 over the storm: Gaussian flanks, wider on the slower side, cut to zero at start and end."""
    if not storm.start_h <= hour <= storm.end_h:
        return 0.0
    if hour <= storm.peak_h:
        width = max(storm.peak_h - storm.start_h, 1e-9) / 2.5
    else:
        width = max(storm.end_h - storm.peak_h, 1e-9) / 2.5
    shape = math.exp(-0.5 * ((hour - storm.peak_h) / width) ** 2)
    floor = math.exp(-0.5 * 2.5**2)  # value at the ends, removed so the rain starts and stops at zero
    return max(0.0, (shape - floor) / (1 - floor))


def _orographic(place: tuple[float, float]) -> float:
    """Mountains to the north-east of the city centre wring more rain out of a typhoon."""
    east = min(max((place[1] - 137.15) / 0.35, 0.0), 1.0)
    north = min(max((place[0] - 35.05) / 0.2, 0.0), 1.0)
    return 1.0 + 0.2 * east + 0.1 * north


def storm_factor(storm: Storm, hour: float, place: tuple[float, float]) -> float:
    """How strongly a storm acts on a place at an hour, 0..~1.3 (before bands and noise)."""
    env = _envelope(storm, hour)
    if env == 0.0:
        return 0.0
    d = distance_km(place, _core(storm, hour))
    spatial = 0.45 + 0.55 * math.exp(-0.5 * (d / storm.radius_km) ** 2)
    return env * spatial * _orographic(place)


@lru_cache(maxsize=65536)
def _cell(seed: int, storm: int, lat: float, lon: float, slot: int) -> float:
    """Rain-cell variability: ±15 % per 0.01° square and 10 minutes."""
    return 1.0 + 0.15 * gauss(seed, "rain", storm, lat, lon, slot)


def rain_mm_h(weather: Weather, hour: float, place: tuple[float, float], seed: int) -> float:
    """Rain intensity (mm/h) at a place: the storms' hyetographs, rain bands, and 10-min cell noise."""
    total = 0.0
    for i, storm in enumerate(weather.storms):
        f = storm_factor(storm, hour, place)
        if f == 0.0:
            continue
        phase = (place[0] * 37.0 + place[1] * 53.0) % (2 * math.pi)  # bands reach places at different times
        bands = 1.0 + storm.band_amplitude * math.sin(2 * math.pi * hour / storm.band_period_h + phase)
        cell = _cell(seed, i, round(place[0], 2), round(place[1], 2), math.floor(hour * 6))
        total += storm.peak_mm_h * f * bands * max(cell, 0.3)
    return max(total, 0.0)


def rain_between(weather: Weather, h0: float, h1: float, place: tuple[float, float], seed: int) -> float:
    """Rain (mm) that falls on a place between two scenario hours (2-minute steps)."""
    steps = max(1, math.ceil((h1 - h0) * 30))
    dh = (h1 - h0) / steps
    return sum(rain_mm_h(weather, h0 + (k + 0.5) * dh, place, seed) * dh for k in range(steps))


def _local_hour(when: datetime) -> float:
    local = when.astimezone(JST)
    return local.hour + local.minute / 60 + local.second / 3600


def daylight(when: datetime) -> float:
    """0 at night, up to 1 at solar noon (JST), for solar charging and dendrometer cycles."""
    return max(0.0, math.sin(math.pi * (_local_hour(when) - 6.0) / 12.0))


def _storminess(weather: Weather, hour: float, place: tuple[float, float]) -> float:
    return min(1.0, sum(storm_factor(s, hour, place) for s in weather.storms))


def air_temperature_c(weather: Weather, hour: float, when: datetime, place: tuple[float, float]) -> float:
    """Daily cycle peaking mid-afternoon, flattened and cooled under a storm, cooler in the mountains."""
    wet = _storminess(weather, hour, place)
    cycle = math.sin(2 * math.pi * (_local_hour(when) - 9.0) / 24.0)
    altitude_cooling = 2.5 * min(max((place[1] - 137.15) / 0.35, 0.0), 1.0)
    return weather.mean_temperature_c - altitude_cooling - 3.0 * wet + (weather.daily_range_c / 2) * (1 - wet) * cycle


def humidity_pct(weather: Weather, hour: float, when: datetime, place: tuple[float, float]) -> float:
    """Relative humidity: lowest in the afternoon, near saturation in rain."""
    wet = _storminess(weather, hour, place)
    cycle = math.sin(2 * math.pi * (_local_hour(when) - 9.0) / 24.0)
    dry = weather.humidity_pct - 15.0 * cycle
    return min(100.0, dry + (98.0 - dry) * wet)


def wind(weather: Weather, hour: float, place: tuple[float, float]) -> tuple[float, float]:
    """(speed m/s, direction the wind blows from, degrees): anticlockwise round a typhoon's core."""
    speed, direction = weather.wind_ms, 180.0  # a light southerly in fair weather
    for storm in weather.storms:
        env = _envelope(storm, hour)
        if env == 0.0 or storm.wind_peak_ms <= 0:
            continue
        core = _core(storm, hour)
        d = distance_km(place, core)
        gust = storm.wind_peak_ms * env * math.exp(-0.5 * (d / (storm.radius_km * 0.6)) ** 2)
        if gust > speed:
            bearing = math.degrees(math.atan2(place[1] - core[1], place[0] - core[0])) % 360
            speed, direction = gust, (bearing + 90.0) % 360
    return speed, direction
