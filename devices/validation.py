"""Checking a device description against the catalogue, pure: values in, a list of problems out.

Used by the API, the CLI and bulk import alike, so a device is valid or not whichever door it came through.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from devices.catalogue import DeviceType

# Same rules as the CHECK constraints of migration 0001 (tenants.id, devices.id); checked here first so a bad
# row is reported with a reason instead of failing a whole batch.
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Words of the hub's own MQTT topics (ingest.contract.TOPIC_WORDS): a tenant named after one would make the
# alert publisher's topics read as that tenant's telemetry. Also refused by migration 0052 for new rows.
RESERVED_TENANT_IDS = frozenset({"telemetry", "status", "alerts", "events"})


def tenant_id_problem(tenant_id: str) -> str | None:
    """Why ``tenant_id`` cannot name a tenant, or None."""
    if not TENANT_ID.match(tenant_id):
        return f"tenant id {tenant_id!r} must be lower-case letters, digits, '_' or '-'"
    if tenant_id in RESERVED_TENANT_IDS:
        return f"tenant id {tenant_id!r} is reserved: it is a word of the hub's MQTT topics"
    return None


# River-gauge threshold keys, lowest first (水防団待機 → 氾濫注意 → 避難判断 → 氾濫危険, ../shared/domain.md §1):
# whichever of them a gauge has must rise in this order.
THRESHOLD_LADDER = ("standby_m", "caution_m", "evacuation_m", "danger_m")


class DeviceStatus(StrEnum):
    active = "active"
    maintenance = "maintenance"
    retired = "retired"


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Everything the registry stores about a device, as written by a person or a file."""

    id: str
    tenant_id: str
    device_type: str
    name: str = ""
    lon: float | None = None
    lat: float | None = None
    status: DeviceStatus = DeviceStatus.active
    expected_interval_s: int = 600
    installed_on: date | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> DeviceSpec:
        return replace(self, **changes)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def site_metadata_problems(metadata: dict[str, Any], dtype: DeviceType) -> list[str]:
    """Keys the type's ``site_schema`` declares must have its type; other keys are free-form notes."""
    problems: list[str] = []
    for key, kind in dtype.site_schema.items():
        if key not in metadata or metadata[key] is None:
            continue
        value = metadata[key]
        if kind == "number" and not _is_number(value):
            problems.append(f"metadata.{key} must be a number for {dtype.id}, got {value!r}")
        elif kind == "string" and not isinstance(value, str):
            problems.append(f"metadata.{key} must be a string for {dtype.id}, got {value!r}")
    ladder = [(k, metadata[k]) for k in THRESHOLD_LADDER if k in dtype.site_schema and _is_number(metadata.get(k))]
    for (low_key, low), (high_key, high) in itertools.pairwise(ladder):
        if not low < high:
            problems.append(f"metadata.{low_key} ({low}) must be below metadata.{high_key} ({high})")
    return problems


def device_problems(spec: DeviceSpec, catalogue: dict[str, DeviceType]) -> list[str]:
    """Everything wrong with ``spec``; empty when it may be stored."""
    problems: list[str] = []
    # Types first: a value from JSON may be anything (a null metadata was a TypeError below).
    texts = {"id": spec.id, "tenant": spec.tenant_id, "device type": spec.device_type, "name": spec.name}
    wrong = [f"{k} must be a string, got {type(v).__name__}" for k, v in texts.items() if not isinstance(v, str)]
    if wrong:
        return wrong
    if not DEVICE_ID.match(spec.id):
        problems.append(f"id {spec.id!r} must be 1-128 letters, digits, '.', '_' or '-', starting with a letter/digit")
    if not TENANT_ID.match(spec.tenant_id):
        problems.append(f"tenant {spec.tenant_id!r} is not a valid tenant id")
    dtype = catalogue.get(spec.device_type)
    if dtype is None:
        problems.append(f"unknown device type {spec.device_type!r}")
    if (spec.lon is None) != (spec.lat is None):
        problems.append("give both lon and lat, or neither")
    if spec.lon is not None and not (_is_number(spec.lon) and -180 <= spec.lon <= 180):
        problems.append(f"lon {spec.lon!r} is outside -180..180")
    if spec.lat is not None and not (_is_number(spec.lat) and -90 <= spec.lat <= 90):
        problems.append(f"lat {spec.lat!r} is outside -90..90")
    if not isinstance(spec.expected_interval_s, int) or not 1 <= spec.expected_interval_s <= 7 * 86400:
        problems.append(f"expected interval {spec.expected_interval_s!r} s must be between 1 s and 7 days")
    if len(spec.name) > 200:
        problems.append("name is longer than 200 characters")
    if not isinstance(spec.metadata, dict):
        problems.append("metadata must be an object ({} to clear it)")
    elif dtype is not None:
        problems.extend(site_metadata_problems(spec.metadata, dtype))
    return problems
