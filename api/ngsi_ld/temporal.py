"""The temporal API's parameters (``timerel``, ``timeAt``, ``endTimeAt``, ``lastN``, the aggregated representation's
``aggrMethods`` and ``aggrPeriodDuration``) and the temporal representation of a device's series. Pure.

Aggregation is the native API's (devices/series_plan.py): ``aggrPeriodDuration`` is its bucket, aligned to the hub's
bucket origin (a JST midnight by default), and each method one of its aggregates; TimescaleDB answers from its
continuous aggregates where they tile the bucket, as for /v1/devices/{id}/readings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from api.ngsi_ld.model import measurement
from api.ngsi_ld.problems import bad_request

# NGSI-LD's aggregation methods that the store's aggregates answer (distinctCount, stddev and sumsq it has not).
AGGREGATES = {"totalCount": "count", "sum": "sum", "avg": "avg", "min": "min", "max": "max"}
UNSUPPORTED_AGGREGATES = ("distinctCount", "stddev", "sumsq")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TemporalQuery:
    start: datetime | None  # None: the native API's default (end − its default span)
    end: datetime | None  # exclusive; None: now
    last_n: int | None = None
    aggregates: tuple[str, ...] = ()  # NGSI-LD names, in the order asked; () for the normalized representation
    bucket: str | None = None  # the native API's bucket text (e.g. "60m") when aggregated
    temporal_values: bool = False  # options=temporalValues: the simplified representation


def _instant(name: str, text: str | None) -> datetime:
    if text is None:
        raise bad_request(f"{name} is required by this timerel")
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "+"))  # an unescaped + arrives as a space
    except ValueError:
        raise bad_request(f"{name} {text!r} is not an ISO 8601 date-time, e.g. 2026-11-25T09:00:00Z") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not EARLIEST <= value <= LATEST:
        raise bad_request(f"{name} must lie between {EARLIEST.year} and {LATEST.year}")
    return value


def duration_minutes(text: str) -> int:
    """An ISO 8601 duration of whole minutes (``PT1H``, ``P1D``, ``PT10M``, ``P1DT12H``); years and months, whose
    length varies, are refused."""
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        raise bad_request(f"aggrPeriodDuration {text!r} is not an ISO 8601 duration like PT1H or P1D (no Y or M)")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if total.total_seconds() % 60:
        raise bad_request("aggrPeriodDuration must be a whole number of minutes")
    return int(total.total_seconds() // 60)


def parse_temporal(params: Mapping[str, str]) -> TemporalQuery:
    timerel = params.get("timerel")
    start: datetime | None = None
    end: datetime | None = None
    if timerel is None:
        if "timeAt" in params or "endTimeAt" in params:
            raise bad_request("timeAt and endTimeAt need a timerel (before, after or between)")
    elif timerel == "before":
        start, end = EARLIEST, _instant("timeAt", params.get("timeAt"))
    elif timerel == "after":
        start, end = _instant("timeAt", params.get("timeAt")), None
    elif timerel == "between":
        start, end = _instant("timeAt", params.get("timeAt")), _instant("endTimeAt", params.get("endTimeAt"))
        if start >= end:
            raise bad_request("endTimeAt must be after timeAt")
    else:
        raise bad_request(f"timerel must be before, after or between, not {timerel!r}")
    if "timeproperty" in params and params["timeproperty"] != "observedAt":
        raise bad_request("timeproperty: readings are kept by observedAt only")
    last_n = None
    if "lastN" in params:
        text = params["lastN"]
        if not text.isdigit() or int(text) < 1:
            raise bad_request("lastN must be a whole number of at least 1")
        last_n = int(text)
    options = {o.strip() for o in params.get("options", "").split(",") if o.strip()}
    format_option = params.get("format")
    aggregated = "aggregatedValues" in options or format_option == "aggregatedValues"
    temporal_values = "temporalValues" in options or format_option == "temporalValues"
    if not aggregated:
        for name in ("aggrMethods", "aggrPeriodDuration"):
            if name in params:
                raise bad_request(f"{name} goes with options=aggregatedValues")
        return TemporalQuery(start, end, last_n, temporal_values=temporal_values)
    methods: list[str] = []
    for method in params.get("aggrMethods", "").split(","):
        method = method.strip()
        if not method:
            continue
        if method in UNSUPPORTED_AGGREGATES:
            raise bad_request(f"aggrMethods: {method} is not kept by this hub; it aggregates {', '.join(AGGREGATES)}")
        if method not in AGGREGATES:
            raise bad_request(f"aggrMethods: unknown method {method!r}; this hub aggregates {', '.join(AGGREGATES)}")
        if method not in methods:
            methods.append(method)
    if not methods:
        raise bad_request(f"options=aggregatedValues needs aggrMethods ({', '.join(AGGREGATES)})")
    if "aggrPeriodDuration" not in params:
        raise bad_request("options=aggregatedValues needs aggrPeriodDuration, e.g. PT1H")
    minutes = duration_minutes(params["aggrPeriodDuration"])
    if last_n is not None:
        raise bad_request("lastN does not go with options=aggregatedValues")
    return TemporalQuery(start, end, None, tuple(methods), f"{minutes}m")


def _time(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def temporal_attributes(
    points: Iterable[tuple[datetime, str, float]],
    units: Mapping[str, str],
    q: TemporalQuery,
    attrs: frozenset[str] | None,
) -> dict[str, Any]:
    """Raw points (time, metric, value) as each metric's temporal attribute, normalized or temporalValues."""
    by_metric: dict[str, list[tuple[datetime, float]]] = {}
    for t, metric, value in points:
        if attrs is None or metric in attrs:
            by_metric.setdefault(metric, []).append((t, value))
    out: dict[str, Any] = {}
    for metric, series in by_metric.items():
        if q.last_n is not None:
            series = series[-q.last_n :]
        if q.temporal_values:
            out[metric] = {"type": "Property", "values": [[v, _time(t)] for t, v in series]}
        else:
            out[metric] = [measurement(v, _time(t), units.get(metric)) for t, v in series]
    return out


def aggregated_attributes(
    per_method: Mapping[str, Iterable[tuple[datetime, str, float]]],
    width: timedelta,
    attrs: frozenset[str] | None,
) -> dict[str, Any]:
    """Bucketed points per NGSI-LD method as the aggregated representation: per metric, per method, a list of
    ``[value, bucket start, bucket end]``."""
    out: dict[str, dict[str, Any]] = {}
    for method, points in per_method.items():
        for t, metric, value in points:
            if attrs is not None and metric not in attrs:
                continue
            attribute = out.setdefault(metric, {"type": "Property"})
            attribute.setdefault(method, []).append([value, _time(t), _time(t + width)])
    for attribute in out.values():
        for method in per_method:
            attribute.setdefault(method, [])
    return out
