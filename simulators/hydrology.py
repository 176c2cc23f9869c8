"""Water in the ground and in the rivers: small conceptual models stepped with rain. No I/O, no clock.

* ``SoilStore``: a fast and a slow linear store (hours, days); their sum is a soil water index in mm,
  like the Japan Meteorological Agency's 土壌雨量指数 in spirit (a tank model), not in calibration.
* ``Catchment``: rain × a runoff share that grows as the soil fills, routed through a Nash cascade of
  linear reservoirs; the outflow (mm/h over the catchment) sets the stage at a gauge.
* ``Slope``: creep at a background rate that accelerates with the square of the soil water index above
  a critical value, so movement follows rain with the ground's delay, never leads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SoilParams:
    theta_dry: float = 0.15
    theta_sat: float = 0.45
    half_mm: float = 70.0
    fast_h: float = 8.0
    slow_h: float = 96.0
    to_slow: float = 0.5


@dataclass(slots=True)
class SoilStore:
    params: SoilParams
    fast_mm: float = 0.0
    slow_mm: float = 0.0

    def step(self, rain_mm: float, dt_h: float) -> None:
        p = self.params
        # Exact decay over the step keeps the stores stable whatever dt is.
        fast_out = self.fast_mm * (1 - math.exp(-dt_h / p.fast_h))
        slow_out = self.slow_mm * (1 - math.exp(-dt_h / p.slow_h))
        self.fast_mm += rain_mm - fast_out
        self.slow_mm += p.to_slow * fast_out - slow_out

    @property
    def index_mm(self) -> float:
        """The soil water index: water held in the stores (mm)."""
        return self.fast_mm + self.slow_mm

    @property
    def water_content(self) -> float:
        """Volumetric water content (m³/m³) between the dry and saturated contents."""
        p = self.params
        return p.theta_dry + (p.theta_sat - p.theta_dry) * (1 - math.exp(-self.index_mm / p.half_mm))


@dataclass(frozen=True, slots=True)
class RiverParams:
    catchment: tuple[float, float] | None = None
    reservoirs: int = 2
    response_h: float = 1.0
    danger_runoff_mm_h: float = 22.0
    runoff_min: float = 0.25
    runoff_max: float = 0.9
    saturation_mm: float = 150.0
    baseflow_mm_h: float = 0.08
    base_fraction: float = 0.35


@dataclass(slots=True)
class Catchment:
    params: RiverParams
    soil: SoilStore
    stores_mm: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.stores_mm:
            # Start in equilibrium with baseflow so a calm day is flat, not a drain-down.
            self.stores_mm = [self.params.baseflow_mm_h * self.params.response_h] * self.params.reservoirs

    def runoff_share(self) -> float:
        p = self.params
        return p.runoff_min + (p.runoff_max - p.runoff_min) * (1 - math.exp(-self.soil.index_mm / p.saturation_mm))

    def step(self, rain_mm: float, dt_h: float) -> None:
        p = self.params
        inflow = rain_mm * self.runoff_share() + p.baseflow_mm_h * dt_h
        self.soil.step(rain_mm, dt_h)
        keep = math.exp(-dt_h / p.response_h)
        for i, stored in enumerate(self.stores_mm):
            out = stored * (1 - keep)
            self.stores_mm[i] = stored - out + inflow
            inflow = out

    @property
    def outflow_mm_h(self) -> float:
        return self.stores_mm[-1] / self.params.response_h


def stage_m(outflow_mm_h: float, params: RiverParams, standby_m: float, danger_m: float) -> float:
    """Stage at a gauge from catchment outflow: a power-law rating passing the gauge's own danger level."""
    base = params.base_fraction * standby_m
    gain = (danger_m - base) / params.danger_runoff_mm_h**0.6
    return base + gain * (max(outflow_mm_h, 0.0) ** 0.6 - params.baseflow_mm_h**0.6)


@dataclass(frozen=True, slots=True)
class SlopeParams:
    creep_mm_day: float = 0.05
    critical_swi_mm: float = 160.0
    acceleration_mm_h: float = 0.15
    tilt_deg_per_mm: float = 0.002
    tilt_azimuth_deg: float = 135.0


@dataclass(slots=True)
class Slope:
    params: SlopeParams
    soil: SoilStore
    displacement_mm: float = 0.0
    rate_mm_h: float = 0.0

    def step(self, rain_mm: float, dt_h: float) -> None:
        self.soil.step(rain_mm, dt_h)
        p = self.params
        excess = max(0.0, self.soil.index_mm - p.critical_swi_mm)
        self.rate_mm_h = p.creep_mm_day / 24.0 + p.acceleration_mm_h * (excess / 100.0) ** 2
        self.displacement_mm += self.rate_mm_h * dt_h

    def tilt_deg(self) -> tuple[float, float]:
        """(x, y) tilt the movement has caused, leaning downslope."""
        tilt = self.displacement_mm * self.params.tilt_deg_per_mm
        az = math.radians(self.params.tilt_azimuth_deg)
        return tilt * math.sin(az), tilt * math.cos(az)
