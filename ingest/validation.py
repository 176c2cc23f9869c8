"""Validation of decoded readings against the device registry and the type catalogue. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from devices.catalogue import MetricSpec
from devices.records import DeviceRecord
from ingest.contract import RawReading, Reading, Reason, Rejection


@dataclass(frozen=True, slots=True)
class Limits:
    max_future: timedelta
    max_past: timedelta


def check_device(device: DeviceRecord | None, topic_tenant: str, device_id: str) -> Rejection | None:
    """Whether a message from this device on this tenant's topic may be stored at all."""
    if device is None:
        return Rejection(Reason.unknown_device, f"device {device_id!r} is not registered")
    if device.status == "retired":
        return Rejection(Reason.retired_device, f"device {device_id!r} is retired")
    if device.tenant_id != topic_tenant:
        return Rejection(Reason.tenant_mismatch, f"device {device_id!r} does not belong to tenant {topic_tenant!r}")
    return None


def validate_readings(
    device_id: str,
    raw: list[RawReading],
    specs: dict[str, MetricSpec],
    received: datetime,
    limits: Limits,
) -> tuple[list[Reading], list[Rejection]]:
    """Accepted readings in canonical units, and one rejection per bad reading (its detail names its position)."""
    accepted: list[Reading] = []
    rejected: list[Rejection] = []
    latest = received + limits.max_future
    earliest = received - limits.max_past
    for i, r in enumerate(raw):
        spec = specs.get(r.metric)
        if spec is None:
            rejected.append(
                Rejection(Reason.unknown_metric, f"reading {i}: metric {r.metric!r} is not in the catalogue", r.metric)
            )
            continue
        if not math.isfinite(r.value):
            rejected.append(Rejection(Reason.non_finite, f"reading {i}: {r.metric}: value {r.value!r}", r.metric))
            continue
        value = spec.to_canonical(r.value, r.unit)
        if value is None:
            accepted_units = ", ".join(repr(u) for u in (spec.unit, *spec.alt_units))
            rejected.append(
                Rejection(
                    Reason.bad_unit,
                    f"reading {i}: {r.metric}: unit {r.unit!r}, expected one of {accepted_units}",
                    r.metric,
                )
            )
            continue
        if not spec.in_range(value):
            rejected.append(
                Rejection(
                    Reason.out_of_range,
                    f"reading {i}: {r.metric}: {value:g} {spec.unit} outside [{spec.min_value}, {spec.max_value}]",
                    r.metric,
                )
            )
            continue
        if r.time > latest:
            rejected.append(
                Rejection(Reason.ts_future, f"reading {i}: {r.metric}: time {r.time.isoformat()} is ahead", r.metric)
            )
            continue
        if r.time < earliest:
            rejected.append(
                Rejection(Reason.ts_past, f"reading {i}: {r.metric}: time {r.time.isoformat()} too old", r.metric)
            )
            continue
        accepted.append(Reading(r.time, device_id, r.metric, value))
    return accepted, rejected
