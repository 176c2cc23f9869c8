"""When a device counts as silent (途絶): the one rule, for the map, the feature collections and Grafana.

A device is silent when it is active and the hub has not heard from it (any message: a reading or a status) for
``after_intervals`` times its reporting interval, when it said it went offline, or when it was never heard at all.
Its reporting interval is the registered one, except for a crisis gauge (危機管理型水位計) below its
observation-start level (metadata ``observation_start_m``): the national guideline lets it report only daily
there, so a quiet crisis gauge in dry weather is not silent (shared/domain.md, section 1).

Pure: values in, values out, ``now`` passed in. The same rule is written as SQL by :func:`silent_sql` for the
queries Grafana runs itself; tests/devices/test_silence.py holds the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mimamori.settings import Settings

OBSERVATION_START_KEY = "observation_start_m"  # site metadata of a crisis gauge (devices/catalogue.yaml)
LEVEL_METRIC = "water_level"  # the reading compared with it


@dataclass(frozen=True, slots=True)
class SilencePolicy:
    """The rule's numbers (settings `devices_silent_after_intervals`, `devices_quiet_interval_s`)."""

    after_intervals: float = 3.0
    quiet_interval: timedelta = timedelta(days=1)  # a crisis gauge below its observation-start level

    def __post_init__(self) -> None:
        if self.after_intervals <= 0 or self.quiet_interval <= timedelta(0):
            raise ValueError("silence needs a positive factor and quiet interval")

    @classmethod
    def from_settings(cls, settings: Settings) -> SilencePolicy:
        return cls(settings.devices_silent_after_intervals, timedelta(seconds=settings.devices_quiet_interval_s))


@dataclass(frozen=True, slots=True)
class Silence:
    silent: bool
    since: datetime | None  # when it became silent; None when not silent, or never heard at all


NOT_SILENT = Silence(False, None)


def reporting_interval(
    expected: timedelta, metadata: Mapping[str, object], level: float | None, policy: SilencePolicy
) -> timedelta:
    """How often the device must be heard from now: its own interval, or daily for a crisis gauge below its
    observation-start level (never shorter than its own)."""
    start = metadata.get(OBSERVATION_START_KEY)
    if isinstance(start, int | float) and not isinstance(start, bool) and level is not None and level < start:
        return max(expected, policy.quiet_interval)
    return expected


def judge(
    *,
    status: str,
    online: bool | None,
    heard: datetime | None,
    expected: timedelta,
    metadata: Mapping[str, object],
    level: float | None,
    now: datetime,
    policy: SilencePolicy,
) -> Silence:
    """Whether a device is silent at ``now``. ``heard``: when the hub last heard from it (its last message's
    arrival, not the device's own clock); ``level``: its latest water level, if it has one."""
    if status != "active":
        return NOT_SILENT  # retired or in maintenance: nothing is expected of it
    if heard is None:
        return Silence(True, None)
    if online is False:
        return Silence(True, heard)  # it said goodbye (or its broker said so for it)
    deadline = heard + policy.after_intervals * reporting_interval(expected, metadata, level, policy)
    return Silence(True, deadline) if now > deadline else NOT_SILENT


def silent_sql(policy: SilencePolicy, *, now: str, device: str = "d", liveness: str = "l") -> tuple[str, str]:
    """The rule as two SQL expressions, (silent boolean, silent since timestamptz), over a row of ``devices``
    aliased ``device`` LEFT JOINed to its ``device_liveness`` aliased ``liveness``; ``now`` is an SQL
    timestamptz expression (Grafana's ``$__timeTo()::timestamptz``). Numbers come from the policy, not a caller.
    """
    d, lv = device, liveness
    heard = f"coalesce({lv}.last_seen, {lv}.last_reading)"
    level = f"(SELECT lr.value FROM latest_readings lr WHERE lr.device_id = {d}.id AND lr.metric = '{LEVEL_METRIC}')"
    start = f"{d}.metadata->'{OBSERVATION_START_KEY}'"
    quiet = f"interval '{policy.quiet_interval.total_seconds():g} seconds'"
    interval = (
        f"CASE WHEN jsonb_typeof({start}) = 'number' AND {level} < ({start})::float8"
        f" THEN greatest({d}.expected_interval, {quiet}) ELSE {d}.expected_interval END"
    )
    deadline = f"{heard} + {policy.after_intervals:g} * ({interval})"
    silent = f"({d}.status = 'active' AND ({heard} IS NULL OR {lv}.online IS FALSE OR {deadline} < {now}))"
    since = (
        f"CASE WHEN {d}.status <> 'active' OR {heard} IS NULL THEN NULL"
        f" WHEN {lv}.online IS FALSE THEN {heard}"
        f" WHEN {deadline} < {now} THEN {deadline} END"
    )
    return silent, since
