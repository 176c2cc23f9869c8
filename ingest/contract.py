"""The device contract: topic scheme and the value types every codec produces. Pure, no I/O.

Topics: ``{prefix}/{tenant}/{device}/telemetry`` for readings and ``{prefix}/{tenant}/{device}/status``
for birth, last-will and health messages; the default prefix is ``mimamori/v1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

TELEMETRY = "telemetry"
STATUS = "status"
# Every word the hub itself puts in a topic under the prefix (alerts/mqtt_publish.py: ``{prefix}/alerts/{tenant}/
# {id}`` and ``…/events``). No tenant may be named after one: ``{prefix}/alerts/x/telemetry`` must never read as
# tenant ``alerts``'s telemetry. devices/validation.py refuses them at tenant creation (a test keeps both equal).
TOPIC_WORDS = frozenset({TELEMETRY, STATUS, "alerts", "events"})


class Reason(StrEnum):
    """Why a message or reading was dead-lettered. Stable names: dashboards count by them."""

    bad_topic = "bad_topic"
    oversized = "oversized"
    malformed = "malformed"
    bad_timestamp = "bad_timestamp"
    unknown_device = "unknown_device"
    retired_device = "retired_device"
    tenant_mismatch = "tenant_mismatch"
    unknown_metric = "unknown_metric"
    bad_unit = "bad_unit"
    non_numeric = "non_numeric"
    non_finite = "non_finite"
    out_of_range = "out_of_range"
    ts_future = "ts_future"
    ts_past = "ts_past"
    internal_error = "internal_error"  # a bug of ours met this message: kept for replay once fixed
    store_failed = "store_failed"  # the database refused this message alone (its batch was split to find it)


@dataclass(frozen=True, slots=True)
class Topic:
    tenant: str
    device: str
    kind: str  # TELEMETRY or STATUS


# The two reading types are built once per reading on the hot path: not frozen (a frozen dataclass costs about
# 3.5× more to build), but hashable and never mutated by convention.
@dataclass(slots=True, unsafe_hash=True)
class RawReading:
    """A reading as the device sent it: its own time, metric name, value and (optional) unit."""

    time: datetime
    metric: str
    value: float
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    metric: str | None = None


@dataclass(slots=True, unsafe_hash=True)
class Reading:
    """A validated reading in its metric's canonical unit, identified by (device, metric, time)."""

    time: datetime
    device_id: str
    metric: str
    value: float


@dataclass(frozen=True, slots=True)
class Status:
    time: datetime
    online: bool | None = None
    battery: float | None = None
    signal: float | None = None


def telemetry_topic(prefix: str, tenant: str, device: str) -> str:
    return f"{prefix}/{tenant}/{device}/{TELEMETRY}"


def status_topic(prefix: str, tenant: str, device: str) -> str:
    return f"{prefix}/{tenant}/{device}/{STATUS}"


def subscription_filters(prefix: str, share_group: str | None) -> list[str]:
    """The filters an ingestor subscribes to; shared so several ingestors split the load."""
    filters = [f"{prefix}/+/+/{TELEMETRY}", f"{prefix}/+/+/{STATUS}"]
    return [f"$share/{share_group}/{f}" for f in filters] if share_group else filters


@lru_cache(maxsize=65536)  # a fleet repeats its topics; parsing each once keeps the hot path short
def parse_topic(prefix: str, topic: str) -> Topic | None:
    """The tenant, device and kind a topic names, or None when it is not one of ours."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) != 3 or parts[2] not in (TELEMETRY, STATUS):
        return None
    tenant, device, kind = parts
    if tenant in TOPIC_WORDS or not (_SEGMENT.match(tenant) and _SEGMENT.match(device)):
        return None
    return Topic(tenant, device, kind)
