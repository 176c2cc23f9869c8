"""Which device misbehaves how, and when: a scenario's fault list resolved against the fleet. Pure.

A fault names a device id, or a device type (then it hits the first device of that type by id, so a
scenario works on the city's fleet and on a generated one alike). Fault times are scenario hours; a
one-off fault (``at_h``) hits the device's first message at or after each listed hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.fleet import SimDevice
from simulators.scenario import FaultKind, FaultSpec


@dataclass(slots=True)
class FaultPlan:
    specs: list[FaultSpec] = field(default_factory=list)
    _pending: dict[int, list[float]] = field(default_factory=dict)  # one-off hours not yet used, per spec

    def __post_init__(self) -> None:
        self._pending = {i: sorted(s.at_h) for i, s in enumerate(self.specs) if s.at_h}

    def _active(self, kind: FaultKind, hour: float) -> list[FaultSpec]:
        return [s for s in self.specs if s.kind == kind and s.active(hour)]

    def _take(self, kind: FaultKind, hour: float) -> FaultSpec | None:
        for i, spec in enumerate(self.specs):
            pending = self._pending.get(i)
            if spec.kind == kind and pending and pending[0] <= hour:
                pending.pop(0)
                return spec
        return None

    def silent(self, hour: float) -> bool:
        return bool(self._active(FaultKind.dropout, hour))

    def in_outage(self, hour: float) -> bool:
        return bool(self._active(FaultKind.outage_burst, hour))

    def clock_offset_s(self, hour: float) -> float:
        return sum(s.offset_s for s in self._active(FaultKind.clock_skew, hour))

    def stuck_values(self, hour: float, values: dict[str, float], memory: dict[str, float]) -> dict[str, float]:
        """Metrics frozen at the value they had when they stuck; ``memory`` keeps that value."""
        frozen: dict[str, float] = {}
        active = self._active(FaultKind.stuck, hour)
        stuck_metrics = {s.metric or next(iter(values)) for s in active}
        for metric in list(memory):
            if metric not in stuck_metrics:
                del memory[metric]  # the fault ended: the sensor reads the world again
        for metric in stuck_metrics:
            if metric in values:
                frozen[metric] = memory.setdefault(metric, values[metric])
        return frozen

    def take_spike(self, hour: float) -> FaultSpec | None:
        return self._take(FaultKind.spike, hour)

    def take_malformed(self, hour: float) -> bool:
        return self._take(FaultKind.malformed, hour) is not None

    def take_foreign_topic(self, hour: float) -> FaultSpec | None:
        return self._take(FaultKind.foreign_topic, hour)

    def duplicates(self, hour: float, sent: int) -> bool:
        return any(sent % max(s.every, 1) == 0 for s in self._active(FaultKind.duplicate, hour))


def resolve_device(spec: FaultSpec, devices: list[SimDevice]) -> SimDevice | None:
    if spec.device is not None:
        return next((d for d in devices if d.id == spec.device), None)
    of_type = sorted((d for d in devices if d.device_type == spec.device_type), key=lambda d: d.id)
    return of_type[0] if of_type else None


def plan_faults(specs: tuple[FaultSpec, ...], devices: list[SimDevice]) -> dict[str, FaultPlan]:
    """A plan per device that has faults; faults naming no device of the fleet are left out."""
    grouped: dict[str, list[FaultSpec]] = {}
    for spec in specs:
        target = resolve_device(spec, devices)
        if target is not None:
            grouped.setdefault(target.id, []).append(spec)
    return {device_id: FaultPlan(list(s)) for device_id, s in grouped.items()}
