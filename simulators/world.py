"""The simulated ground and rivers under the scenario's weather, stepped on a fixed grid of scenario time.

Devices read from the world; they never change it. The world steps every five simulated minutes whatever
the devices' intervals are, so a seed gives the same hydrology however the run is sliced.
"""

from __future__ import annotations

from dataclasses import fields
from importlib import resources
from typing import Any

import yaml

from simulators.fleet import SimDevice
from simulators.hydrology import (
    Catchment,
    RiverParams,
    Slope,
    SlopeParams,
    SoilParams,
    SoilStore,
)
from simulators.scenario import Scenario
from simulators.weather import rain_between

STEP_H = 5.0 / 60.0
_SLOPE_TYPES = ("extensometer", "tiltmeter", "soil_moisture")


def load_places() -> dict[str, Any]:
    return yaml.safe_load(resources.files("simulators").joinpath("places.yaml").read_text("utf-8"))


def _params(cls: type, *layers: dict[str, Any] | None) -> Any:
    names = {f.name for f in fields(cls)}
    merged: dict[str, Any] = {}
    for layer in layers:
        merged |= {k: v for k, v in (layer or {}).items() if k in names}
    if merged.get("catchment") is not None:
        merged["catchment"] = (float(merged["catchment"][0]), float(merged["catchment"][1]))
    return cls(**merged)


class World:
    def __init__(self, scenario: Scenario, devices: list[SimDevice], places: dict[str, Any] | None = None) -> None:
        places = places or load_places()
        self.scenario = scenario
        self.seed = scenario.seed
        self.soil_params: SoilParams = _params(SoilParams, places.get("soil"))
        self.hour = 0.0
        self.rivers: dict[str, tuple[Catchment, tuple[float, float]]] = {}
        self.slopes: dict[str, tuple[Slope, tuple[float, float]]] = {}
        self.soils: dict[str, tuple[SoilStore, tuple[float, float]]] = {}
        for d in devices:
            meta = d.metadata
            if d.device_type in ("river_gauge", "river_gauge_crisis"):
                river = str(meta.get("river", f"river-near-{d.id}"))
                if river not in self.rivers:
                    params: RiverParams = _params(
                        RiverParams,
                        places.get("default_river"),
                        (places.get("rivers") or {}).get(river),
                        scenario.rivers.get(river),
                    )
                    where = params.catchment or d.place
                    self.rivers[river] = (Catchment(params, self._new_soil()), where)
            if self._on_slope(d):
                slope_id = str(meta["slope_id"])
                if slope_id not in self.slopes:
                    sp: SlopeParams = _params(SlopeParams, places.get("default_slope"), scenario.slopes.get(slope_id))
                    self.slopes[slope_id] = (Slope(sp, self._new_soil()), d.place)
            if d.device_type in ("soil_moisture", "dendrometer") and not self._on_slope(d):
                key = self.soil_key(d)
                if key not in self.soils:
                    self.soils[key] = (self._new_soil(), d.place)

    def _new_soil(self) -> SoilStore:
        a = self.scenario.weather.antecedent_mm
        return SoilStore(self.soil_params, fast_mm=0.3 * a, slow_mm=0.7 * a)

    @staticmethod
    def _on_slope(d: SimDevice) -> bool:
        return d.device_type in _SLOPE_TYPES and bool(d.metadata.get("slope_id"))

    @staticmethod
    def soil_key(d: SimDevice) -> str:
        return str(d.metadata.get("stand_id") or d.id)

    def advance_to(self, hour: float) -> None:
        """Step the world on its grid up to ``hour`` (never backwards)."""
        weather = self.scenario.weather
        while self.hour + STEP_H <= hour + 1e-9:
            h0, h1 = self.hour, self.hour + STEP_H
            for catchment, where in self.rivers.values():
                catchment.step(rain_between(weather, h0, h1, where, self.seed), STEP_H)
            for slope, where in self.slopes.values():
                slope.step(rain_between(weather, h0, h1, where, self.seed), STEP_H)
            for soil, where in self.soils.values():
                soil.step(rain_between(weather, h0, h1, where, self.seed), STEP_H)
            self.hour = h1

    def river(self, name: str) -> Catchment:
        return self.rivers[name][0]

    def slope(self, slope_id: str) -> Slope:
        return self.slopes[slope_id][0]

    def soil_for(self, d: SimDevice) -> SoilStore:
        if self._on_slope(d):
            return self.slopes[str(d.metadata["slope_id"])][0].soil
        return self.soils[self.soil_key(d)][0]
