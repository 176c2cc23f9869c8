"""The simulation: devices sampling the world on their own schedules, faults applied, messages encoded.

``Simulation.advance(until)`` returns every message devices would have sent up to a simulated time, in
time order. It does no I/O and reads no clock, so tests run a whole scenario in a moment and a publisher
calls it with the accelerated clock's "now".
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ingest.codecs import encode_native, encode_senml
from ingest.contract import RawReading, telemetry_topic
from simulators._noise import uniform
from simulators.faults import FaultPlan, plan_faults
from simulators.fleet import SimDevice
from simulators.scenario import FaultKind, Scenario
from simulators.sensors import Sample, SensorState, sample
from simulators.world import World

NATIVE = "native"
SENML = "senml"
SENML_CONTENT_TYPE = "application/senml+json"
_DAY_H = 24.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT publication a device makes."""

    device_id: str
    topic: str
    payload: bytes
    content_type: str | None
    time: datetime  # simulated time of sending
    readings: int  # readings in the payload (0 for a malformed one)
    fault: FaultKind | None = None


@dataclass(slots=True)
class _Runtime:
    device: SimDevice
    faults: FaultPlan
    sensor: SensorState = field(default_factory=SensorState)
    step: int = 0
    sent: int = 0
    last_sent_h: float | None = None
    held: list[RawReading] = field(default_factory=list)  # stored on the device during an outage
    stuck: dict[str, float] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GaugeState:
    device_id: str
    river: str
    level_m: float
    warning_level: int  # 0..4 by the gauge's thresholds (5, flooding, is observed, not measured)


def warning_level(level_m: float, meta: dict[str, object] | object) -> int:
    """The national ladder step a stage has reached by the gauge's own thresholds (domain.md §1)."""
    get = getattr(meta, "get", None)
    if get is None:
        return 0
    reached = 0
    for step, key in enumerate(("standby_m", "caution_m", "evacuation_m", "danger_m"), start=1):
        threshold = get(key)
        if isinstance(threshold, int | float) and level_m >= threshold:
            reached = step
    return reached


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        devices: list[SimDevice],
        start: datetime,
        *,
        fmt: str = NATIVE,
        topic_prefix: str = "mimamori/v1",
        seed: int | None = None,
    ) -> None:
        if fmt not in (NATIVE, SENML):
            raise ValueError(f"format must be {NATIVE!r} or {SENML!r}")
        if seed is not None and seed != scenario.seed:
            from dataclasses import replace

            scenario = replace(scenario, seed=seed)
        self.scenario = scenario
        self.start = start
        self.fmt = fmt
        self.prefix = topic_prefix
        self.devices = devices
        self.world = World(scenario, devices)
        plans = plan_faults(scenario.faults, devices)
        self._runtimes = [_Runtime(d, plans.get(d.id, FaultPlan())) for d in devices]
        self._queue: list[tuple[float, int]] = []
        for i, rt in enumerate(self._runtimes):
            heapq.heappush(self._queue, (self._first_sample_h(rt.device), i))
        self.hour = 0.0

    # -- schedule -------------------------------------------------------------------------------------

    def _first_sample_h(self, d: SimDevice) -> float:
        """Devices report on their interval's grid of wall time, a few seconds apart from each other."""
        interval = d.interval_s
        epoch_s = self.start.timestamp()
        first = math.ceil(epoch_s / interval) * interval + 20.0 * uniform(self.scenario.seed, d.id, "phase")
        return (first - epoch_s) / 3600.0

    def time_at(self, hour: float) -> datetime:
        return self.start + timedelta(hours=hour)

    def hour_at(self, when: datetime) -> float:
        return (when - self.start).total_seconds() / 3600.0

    # -- running --------------------------------------------------------------------------------------

    def advance(self, until: datetime) -> list[Outgoing]:
        """Every message sent after the previous call and up to ``until`` (simulated time), in order."""
        limit = self.hour_at(until)
        out: list[Outgoing] = []
        while self._queue and self._queue[0][0] <= limit:
            hour, index = heapq.heappop(self._queue)
            rt = self._runtimes[index]
            self.world.advance_to(hour)
            out.extend(self._sample(rt, hour))
            heapq.heappush(self._queue, (hour + rt.device.interval_s / 3600.0, index))
        self.world.advance_to(limit)
        self.hour = max(self.hour, limit)
        return out

    def _sample(self, rt: _Runtime, hour: float) -> list[Outgoing]:
        d = rt.device
        when = self.time_at(hour)
        values = sample(Sample(d, when, hour, rt.step, self.scenario.seed), self.world, rt.sensor)
        rt.step += 1
        rt.latest = values
        if d.device_type == "river_gauge_crisis" and not self._crisis_gauge_sends(rt, hour, values["water_level"]):
            return []
        return self._send(rt, hour, when, values)

    @staticmethod
    def _crisis_gauge_sends(rt: _Runtime, hour: float, level: float) -> bool:
        """A crisis gauge reports daily below its observation-start level, every interval above it."""
        start = rt.device.metadata.get("observation_start_m")
        if not isinstance(start, int | float) or level >= start:
            return True
        return rt.last_sent_h is None or hour - rt.last_sent_h >= _DAY_H

    def _send(self, rt: _Runtime, hour: float, when: datetime, values: dict[str, float]) -> list[Outgoing]:
        plan = rt.faults
        d = rt.device
        fault: FaultKind | None = None
        values = dict(values)
        for metric, frozen in plan.stuck_values(hour, values, rt.stuck).items():
            values[metric] = frozen
            fault = FaultKind.stuck
        spike = plan.take_spike(hour)
        if spike is not None:
            metric = spike.metric or next(iter(values))
            values[metric] = spike.value if spike.value is not None else values[metric] * 10 + 100
            fault = FaultKind.spike
        stamp = when + timedelta(seconds=plan.clock_offset_s(hour))
        if stamp != when:
            fault = FaultKind.clock_skew
        readings = [RawReading(stamp, m, v) for m, v in values.items()]
        if plan.silent(hour):
            return []  # not even sampled into a buffer: the device is off
        if plan.in_outage(hour):
            rt.held.extend(readings)
            return []
        if rt.held:
            readings = [*rt.held, *readings]
            rt.held = []
            fault = FaultKind.outage_burst
        topic = telemetry_topic(self.prefix, d.tenant, d.id)
        foreign = plan.take_foreign_topic(hour)
        if foreign is not None:
            topic = telemetry_topic(self.prefix, foreign.tenant or d.tenant, foreign.topic_device or d.id)
            fault = FaultKind.foreign_topic
        payload, content_type = self._encode(d, readings)
        if plan.take_malformed(hour):
            payload, fault = payload[: max(len(payload) // 2, 1)], FaultKind.malformed  # cut mid-message
        rt.sent += 1
        rt.last_sent_h = hour
        n = 0 if fault == FaultKind.malformed else len(readings)
        msg = Outgoing(d.id, topic, payload, content_type, when, n, fault)
        if plan.duplicates(hour, rt.sent):
            return [msg, Outgoing(d.id, topic, payload, content_type, when, n, FaultKind.duplicate)]
        return [msg]

    def _encode(self, d: SimDevice, readings: list[RawReading]) -> tuple[bytes, str | None]:
        if self.fmt == SENML:
            return encode_senml(f"urn:dev:mimamori:{d.id}:", readings), SENML_CONTENT_TYPE
        return encode_native(readings), None

    # -- what a live summary shows --------------------------------------------------------------------

    def gauges(self) -> list[GaugeState]:
        """The latest level each river gauge measured, with its warning level."""
        out = []
        for rt in self._runtimes:
            if "water_level" in rt.latest:
                level = rt.latest["water_level"]
                river = str(rt.device.metadata.get("river", "?"))
                out.append(GaugeState(rt.device.id, river, level, warning_level(level, rt.device.metadata)))
        return out

    def rain_mm_h_max(self) -> float:
        from simulators.weather import rain_mm_h

        return max(
            (rain_mm_h(self.scenario.weather, self.hour, d.place, self.scenario.seed) for d in self.devices[:200]),
            default=0.0,
        )

    def fastest_slope(self) -> tuple[str, float] | None:
        """The slope moving fastest now (mm/h)."""
        rates = [(sid, slope.rate_mm_h) for sid, (slope, _) in self.world.slopes.items()]
        return max(rates, key=lambda r: r[1], default=None)
