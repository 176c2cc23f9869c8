"""What Grafana does to a panel's SQL before PostgreSQL sees it, as a pure function.

Grafana first substitutes template variables in the browser (``$var``, ``${var}``, ``${var:format}``, ``[[var]]``,
``$__interval``, ``$__interval_ms``), then its PostgreSQL data source expands the time macros on the server
(``$__timeFilter(col)``, ``$__timeGroup(col, 5m)``, ``$__timeGroupAlias(…)``, ``$__timeFrom()``, …). The rules
here follow Grafana's documented semantics and its source (pkg/tsdb/grafana-postgresql-datasource/macros.go,
the SQL data sources' ``interpolateVariable`` and rangeutil's ``roundInterval``), so ``mimamori grafana check``
and the tests run the very SQL Grafana would send.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mimamori.errors import ValidationError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "M": 30 * 86400, "y": 365 * 86400}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|M|y)$")
# Grafana's table: an ideal interval (ms) below the bound rounds to the value (ms).
_ROUNDING: tuple[tuple[int, int], ...] = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_YEAR_MS = 31_536_000_000
_MACRO = re.compile(r"\$(\w+)\(([^)]*)\)")
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?::([^}]+))?\}")


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValidationError("a dashboard time range needs time-zone-aware instants")
        if self.end <= self.start:
            raise ValidationError("a dashboard time range must end after it starts")


@dataclass(frozen=True)
class VariableValue:
    """The current value of a dashboard variable. ``multi`` is true for multi-value or include-all variables:
    Grafana then quotes every value, even a single one."""

    values: tuple[str, ...]
    multi: bool = True


def parse_duration(text: str) -> timedelta:
    """Grafana's interval notation: ``500ms``, ``30s``, ``10m``, ``1h``, ``1d``, ``1w``."""
    match = _DURATION.match(text.strip().strip("'"))
    if not match:
        raise ValidationError(f"not a Grafana interval: {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_duration(interval: timedelta) -> str:
    """The short form Grafana puts in ``$__interval`` (``10m``, ``1h``, ``500ms``)."""
    ms = round(interval.total_seconds() * 1000)
    for unit, factor in (("y", _YEAR_MS), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= factor and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def auto_interval(time_range: TimeRange, max_data_points: int, min_interval: timedelta | None = None) -> timedelta:
    """``$__interval`` for a panel: the range over its data points, rounded as Grafana rounds it."""
    ideal_ms = (time_range.end - time_range.start).total_seconds() * 1000 / max(max_data_points, 1)
    rounded = next((value for bound, value in _ROUNDING if ideal_ms < bound), _YEAR_MS)
    interval = timedelta(milliseconds=rounded)
    return max(interval, min_interval) if min_interval else interval


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _format(value: VariableValue, fmt: str | None) -> str:
    if fmt in ("raw", "csv"):
        return ",".join(value.values)
    if fmt == "sqlstring" or (fmt is None and value.multi):
        return ",".join(_quote(v) for v in value.values)
    # A single-value variable goes in bare, with its quotes doubled (Grafana's SQL data sources).
    return ",".join(v.replace("'", "''") for v in value.values)


def substitute_variables(sql: str, variables: Mapping[str, VariableValue], interval: timedelta) -> str:
    """Template variables, as the browser replaces them; unknown names are left alone (macros among them)."""
    builtins = {
        "__interval": format_duration(interval),
        "__interval_ms": str(round(interval.total_seconds() * 1000)),
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(5)
        if name in builtins:
            return builtins[name]
        if name in variables:
            return _format(variables[name], fmt)
        return match.group(0)

    return _VARIABLE.sub(replace, sql)


def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def _seconds(text: str) -> str:
    seconds = parse_duration(text).total_seconds()
    return f"{seconds:g}"


def expand_macros(sql: str, time_range: TimeRange, *, timescaledb: bool) -> str:
    """The PostgreSQL data source's server-side macros."""
    start, end = _rfc3339(time_range.start), _rfc3339(time_range.end)

    def evaluate(name: str, args: Sequence[str], followed_by_comma: bool) -> str:
        if name == "__timeGroup" and followed_by_comma:
            name = "__timeGroupAlias"  # Grafana's pre-5.3 compatibility: `$__timeGroup(...),` gets the alias
        if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter") and not args[0]:
            raise ValidationError(f"macro ${name} needs a time column")
        if name == "__time":
            return f'{args[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {args[0]}) as "time"'
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{start}' AND '{end}'"
        if name == "__timeFrom":
            return f"'{start}'"
        if name == "__timeTo":
            return f"'{end}'"
        if name == "__unixEpochFrom":
            return str(int(time_range.start.timestamp()))
        if name == "__unixEpochTo":
            return str(int(time_range.end.timestamp()))
        if name == "__unixEpochFilter":
            return (
                f"{args[0]} >= {int(time_range.start.timestamp())} AND {args[0]} <= {int(time_range.end.timestamp())}"
            )
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                raise ValidationError(f"macro ${name} needs a time column and an interval")
            seconds = parse_duration(args[1]).total_seconds()
            if timescaledb:
                group = f"time_bucket('{seconds:.3f}s',{args[0]})"
            else:
                group = f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        raise ValidationError(f"unknown Grafana macro ${name}")

    def replace(match: re.Match[str]) -> str:
        args = [a.strip() for a in match.group(2).split(",")]
        after = match.string[match.end() : match.end() + 1]
        return evaluate(match.group(1), args, after == ",")

    return _MACRO.sub(replace, sql)


def render_sql(
    sql: str,
    time_range: TimeRange,
    *,
    variables: Mapping[str, VariableValue] | None = None,
    interval: timedelta,
    timescaledb: bool,
) -> str:
    """A panel's SQL as Grafana sends it to PostgreSQL."""
    return expand_macros(substitute_variables(sql, variables or {}, interval), time_range, timescaledb=timescaledb)
