"""Identifiers of STA entities in URLs and documents, and the keyset cursor carried by ``@iot.nextLink``. Pure.

An Observation is a row of ``series_readings``, keyed by (series_id, time): its ``@iot.id`` is the text
``"{series_id}.{microseconds since the Unix epoch}"``, lossless (PostgreSQL keeps microseconds) and readable.
A Datastream's ``@iot.id`` is its ``series.series_id`` (an integer); Things, Locations and HistoricalLocations are
keyed by the device id, Sensors by the device type, ObservedProperties by the metric name (all strings).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OBS = re.compile(r"^([0-9]{1,10})\.(-?[0-9]{1,17})$")
_MAX_SERIES = 2**31 - 1
MAX_CURSOR = 2000  # characters: a cursor holds a few sort values, never more


class IdError(ValueError):
    """An id or cursor that is not one of ours."""


@dataclass(frozen=True, slots=True)
class ObservationId:
    series_id: int
    time: datetime

    def __str__(self) -> str:
        delta = self.time - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return f"{self.series_id}.{micros}"

    @classmethod
    def parse(cls, text: str) -> ObservationId:
        match = _OBS.match(text)
        if match is None:
            raise IdError(f"{text[:80]!r} is not an Observation id (series.microseconds)")
        series_id, micros = int(match[1]), int(match[2])
        if series_id > _MAX_SERIES:
            raise IdError(f"{text[:80]!r} is not an Observation id: series number out of range")
        try:
            when = _EPOCH + timedelta(microseconds=micros)
        except OverflowError:
            raise IdError(f"{text[:80]!r} is not an Observation id: time out of range") from None
        return cls(series_id, when)


def parse_key(text: str) -> int | str:
    """The key between the parentheses of ``Things('gauge-1')`` or ``Datastreams(5)``: a quoted string (``''``
    for a quote) or an integer."""
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        inner = text[1:-1]
        if "'" in inner.replace("''", ""):
            raise IdError(f"bad quoting in key {text[:80]!r}")
        return inner.replace("''", "'")
    if re.fullmatch(r"-?[0-9]{1,18}", text):
        return int(text)
    raise IdError(f"{text[:80]!r} is neither a quoted string nor an integer key")


def format_key(key: int | str) -> str:
    return str(key) if isinstance(key, int) else "'" + key.replace("'", "''") + "'"


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"d": value.isoformat()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) != {"d"} or not isinstance(value["d"], str):
            raise IdError("bad cursor value")
        try:
            when = datetime.fromisoformat(value["d"])
        except ValueError:
            raise IdError("bad cursor time") from None
        if when.tzinfo is None:
            raise IdError("bad cursor time")
        return when
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise IdError("bad cursor value")


def encode_cursor(order: str, values: list[Any]) -> str:
    """A ``$skiptoken``: the sort values of a page's last entity, bound to the ``$orderby`` it was sorted by."""
    raw = json.dumps({"o": order, "v": [_tag(v) for v in values]}, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, order: str, size: int) -> list[Any]:
    """The sort values of ``token``; IdError unless it was made for ``order`` with ``size`` values."""
    if len(token) > MAX_CURSOR:
        raise IdError("$skiptoken is too long")
    try:
        doc = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise IdError("$skiptoken is not one of ours") from None
    if not isinstance(doc, dict) or doc.get("o") != order or not isinstance(doc.get("v"), list):
        raise IdError("$skiptoken belongs to another $orderby")
    values = [_untag(v) for v in doc["v"]]
    if len(values) != size:
        raise IdError("$skiptoken is not one of ours")
    return values
