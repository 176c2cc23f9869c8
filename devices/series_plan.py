"""Time-series requests: buckets, aggregates, aligned ranges and the points limit. Pure: values in, values out.

Buckets are aligned to one origin (``MIMAMORI_TIMESERIES_BUCKET_ORIGIN``, by default a JST midnight, so a 1-day
bucket is a Japanese calendar day) and ranges are widened to whole buckets, so plain PostgreSQL (``date_bin``)
and TimescaleDB's continuous aggregates give the same answers for the same request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from mimamori.errors import ValidationError


class Agg(StrEnum):
    avg = "avg"
    min = "min"
    max = "max"
    sum = "sum"
    last = "last"
    count = "count"


# TimescaleDB continuous aggregates of migration 0002, finest first.
AGGREGATES: tuple[tuple[str, timedelta], ...] = (
    ("readings_1d", timedelta(days=1)),
    ("readings_1h", timedelta(hours=1)),
    ("readings_10m", timedelta(minutes=10)),
)
# time_bucket's default origin, which the continuous aggregates were built on.
TIMESCALE_ORIGIN = datetime.fromisoformat("2000-01-03T00:00:00+00:00")

_BUCKET = re.compile(r"^(\d{1,6})(s|m|min|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days"}


def parse_bucket(text: str) -> timedelta:
    """'10m', '1h', '1d', '90s': a bucket width of at least one minute and at most 366 days."""
    match = _BUCKET.match(text.strip())
    if not match:
        raise ValidationError(f"bucket {text!r} is not like 10m, 1h or 1d")
    try:
        width = timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise ValidationError("bucket must be between 1 minute and 366 days") from None
    if width < timedelta(minutes=1) or width > timedelta(days=366):
        raise ValidationError("bucket must be between 1 minute and 366 days")
    if width.total_seconds() % 60:
        raise ValidationError("bucket must be a whole number of minutes")
    return width


def floor_to_bucket(t: datetime, width: timedelta, origin: datetime) -> datetime:
    return origin + ((t - origin) // width) * width


def ceil_to_bucket(t: datetime, width: timedelta, origin: datetime) -> datetime:
    floored = floor_to_bucket(t, width, origin)
    return floored if floored == t else floored + width


@dataclass(frozen=True)
class SeriesRequest:
    start: datetime
    end: datetime  # exclusive
    bucket: timedelta | None  # None: raw readings
    agg: Agg


def plan(
    *,
    start: datetime | None,
    end: datetime | None,
    bucket: str | None,
    agg: str | None,
    now: datetime,
    default_span: timedelta,
    origin: datetime,
    max_points: int,
) -> SeriesRequest:
    """Validate a request and widen it to whole buckets; refuse it when it would exceed ``max_points``."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise ValidationError(f"{name} needs a time zone, e.g. 2026-11-25T10:00:00+09:00 or …Z")
    end = end or now
    try:
        start = start or end - default_span
    except OverflowError:  # an end near year 1: nothing to read before it anyway
        raise ValidationError("end is too early for the default range; give a start") from None
    if start >= end:
        raise ValidationError("start must be before end")
    try:
        chosen = Agg(agg or "avg")
    except ValueError:
        raise ValidationError(f"agg must be one of {', '.join(Agg)}") from None
    if bucket is None:
        if agg is not None:
            raise ValidationError("agg needs a bucket (e.g. bucket=1h)")
        return SeriesRequest(start, end, None, chosen)
    width = parse_bucket(bucket)
    try:
        start, end = floor_to_bucket(start, width, origin), ceil_to_bucket(end, width, origin)
    except OverflowError:  # widening to whole buckets left the calendar (years 1 or 9999)
        raise ValidationError("start and end must lie well within years 1 to 9999") from None
    points = (end - start) // width
    if points > max_points:
        raise ValidationError(
            f"{points} buckets of {bucket} in this range; at most {max_points} per request:"
            " narrow the range or widen the bucket"
        )
    return SeriesRequest(start, end, width, chosen)


def aggregate_source(width: timedelta, origin: datetime) -> str | None:
    """The coarsest continuous aggregate whose buckets tile ``width`` buckets exactly at ``origin``, if any.

    A 1-day bucket at a JST origin cannot use readings_1d (UTC days), but rolls up readings_1h exactly.
    """
    for view, size in AGGREGATES:
        if width % size == timedelta(0) and (origin - TIMESCALE_ORIGIN) % size == timedelta(0):
            return view
    return None
