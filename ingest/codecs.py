"""Payload codecs: bytes in, raw readings and rejections out. Pure: no I/O, the clock is passed in.

Two formats are accepted on the telemetry topic:

* native JSON: ``{"ts": ..., "values": {"water_level": 3.42}}`` or a list of such objects
  (a store-and-forward batch). A value may carry a unit: ``{"water_level": {"v": 342, "u": "cm"}}``.
  ``ts`` is ISO 8601 (UTC when no offset is given) or epoch seconds (milliseconds above 1e11);
  when absent the hub's receive time is used.
* SenML JSON (RFC 8428), chosen by the content type ``application/senml+json`` or detected from its
  fields. The metric is the resolved name's last segment (after ``/``, ``:`` or ``;``).

A bad reading is rejected alone; its neighbours in the same message survive.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ingest.contract import RawReading, Reason, Rejection, Status

SENML_CONTENT_TYPES = frozenset({"application/senml+json", "application/senml-json"})
_SENML_KEYS = frozenset({"bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"})
# RFC 8428 §4.5.3: times below 2**28 are relative to now.
_SENML_RELATIVE_LIMIT = 2**28
_EPOCH_MS_THRESHOLD = 1e11
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_METRIC_LEN = 64


@dataclass(slots=True)
class Decoded:
    readings: list[RawReading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class _Malformed(Exception):
    pass


def _parse_json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)  # several times faster than json on the hot path
    except orjson.JSONDecodeError:
        pass
    # What orjson refuses but the standard parser takes (NaN and Infinity literals, integers beyond 64 bits,
    # UTF-16/32 text) is parsed again here, so such a value is judged reading by reading, not as a malformed
    # message that would take its good neighbours down with it.
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Malformed(f"not valid JSON: {str(exc)[:120]}") from None


def parse_time(value: object, received: datetime) -> datetime:
    """Device time from ISO 8601 or epoch seconds/milliseconds; raises ValueError when it is neither."""
    if type(value) is str:  # the common case first: ISO 8601 text
        try:
            parsed = datetime.fromisoformat(value)  # takes "Z" since Python 3.11
        except ValueError:
            text = value.strip()
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)  # ValueError on junk
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if value is None:
        return received
    if isinstance(value, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("timestamp is not finite")
        if abs(seconds) >= _EPOCH_MS_THRESHOLD:
            seconds /= 1000.0
        try:
            return _EPOCH + timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError("timestamp out of range") from None
    if isinstance(value, str):  # a str subclass
        return parse_time(str(value), received)
    raise ValueError(f"timestamp must be a string or a number, not {type(value).__name__}")


def _number(value: object) -> float:
    if type(value) is float:  # the common case, without the checks below
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"value must be a number, not {type(value).__name__}")
    try:
        return float(value)  # may be inf/nan (json accepts NaN literals): validation rejects those
    except OverflowError:  # an integer beyond any float (JSON sets no limit): as good as infinite, refused as such
        return math.inf if value > 0 else -math.inf


def _valid_metric(name: object) -> bool:
    if name in _GOOD_METRICS:  # a fleet repeats a few names: checked once each
        return True
    good = isinstance(name, str) and 0 < len(name) <= _MAX_METRIC_LEN and name.isprintable()
    if good and len(_GOOD_METRICS) < 4096:
        _GOOD_METRICS.add(name)  # type: ignore[arg-type]
    return good


_GOOD_METRICS: set[str] = set()


def is_senml(doc: Any, content_type: str | None) -> bool:
    if content_type:
        return content_type.split(";")[0].strip().lower() in SENML_CONTENT_TYPES
    if not isinstance(doc, list) or not doc:
        return False
    first = doc[0]
    # A native batch is told by its first reading set ("values" is no SenML key), without a pass over them all.
    if not isinstance(first, dict) or not first.keys() <= _SENML_KEYS:
        return False
    return (
        all(isinstance(r, dict) for r in doc)
        and any(("n" in r or "bn" in r) for r in doc)
        and all(r.keys() <= _SENML_KEYS for r in doc)
    )


def decode_telemetry(payload: bytes, content_type: str | None, received: datetime) -> Decoded:
    """Decode a telemetry payload. Never raises: every problem becomes a Rejection."""
    out = Decoded()
    try:
        doc = _parse_json(payload)
        if is_senml(doc, content_type):
            _decode_senml(doc, received, out)
        else:
            _decode_native(doc, received, out)
    except _Malformed as exc:
        out.rejections.append(Rejection(Reason.malformed, str(exc)))
    if not out.readings and not out.rejections:
        out.rejections.append(Rejection(Reason.malformed, "no readings in payload"))
    return out


def _decode_native(doc: Any, received: datetime, out: Decoded) -> None:
    is_list = isinstance(doc, list)
    sets = doc if is_list else [doc]
    for index, item in enumerate(sets):
        if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
            out.rejections.append(Rejection(Reason.malformed, f"{_at(is_list, index)}expected an object with 'values'"))
            continue
        try:
            when = parse_time(item.get("ts"), received)
        except (ValueError, TypeError, OverflowError) as exc:
            out.rejections.append(Rejection(Reason.bad_timestamp, f"{_at(is_list, index)}{exc}"))
            continue
        for metric, raw in item["values"].items():
            if not _valid_metric(metric):
                out.rejections.append(
                    Rejection(Reason.malformed, f"{_at(is_list, index)}bad metric name {metric!r:.80}")
                )
                continue
            unit = None
            if isinstance(raw, dict):
                unit = raw.get("u", raw.get("unit"))
                raw = raw.get("v", raw.get("value"))
                if unit is not None and not isinstance(unit, str):
                    out.rejections.append(
                        Rejection(Reason.bad_unit, f"{_at(is_list, index)}unit is not a string", metric)
                    )
                    continue
            try:
                value = _number(raw)
            except TypeError as exc:
                out.rejections.append(Rejection(Reason.non_numeric, f"{_at(is_list, index)}{metric}: {exc}", metric))
                continue
            out.readings.append(RawReading(when, metric, value, unit))


def _at(is_list: bool, index: int) -> str:
    """Where in a batch a problem is; spelled out only for a problem (the decode loop runs for every reading)."""
    return f"[{index}] " if is_list else ""


def _decode_senml(doc: Any, received: datetime, out: Decoded) -> None:
    if not isinstance(doc, list):
        raise _Malformed("SenML pack must be a JSON array")
    base_name, base_time, base_unit, base_value = "", 0.0, None, 0.0
    for index, rec in enumerate(doc):
        if not isinstance(rec, dict):
            out.rejections.append(Rejection(Reason.malformed, f"[{index}] SenML record is not an object"))
            continue
        try:
            if "bn" in rec:
                if not isinstance(rec["bn"], str):
                    raise TypeError("bn must be a string")
                base_name = rec["bn"]
            if "bt" in rec:
                base_time = _number(rec["bt"])
            if "bu" in rec:
                if not isinstance(rec["bu"], str):
                    raise TypeError("bu must be a string")
                base_unit = rec["bu"]
            if "bv" in rec:
                base_value = _number(rec["bv"])
        except TypeError as exc:
            out.rejections.append(Rejection(Reason.malformed, f"[{index}] {exc}"))
            continue
        has_value = any(k in rec for k in ("v", "vs", "vb", "vd", "s"))
        if not has_value:
            continue  # a record that only sets base fields
        name = rec.get("n", "")
        if not isinstance(name, str):
            out.rejections.append(Rejection(Reason.malformed, f"[{index}] n must be a string"))
            continue
        full = base_name + name
        metric = full
        for sep in ("/", ":", ";"):
            metric = metric.rsplit(sep, 1)[-1]
        if not _valid_metric(metric):
            out.rejections.append(Rejection(Reason.malformed, f"[{index}] bad metric name {full!r:.80}"))
            continue
        if "v" not in rec:
            out.rejections.append(
                Rejection(Reason.non_numeric, f"[{index}] {metric}: only numeric 'v' values are stored", metric)
            )
            continue
        unit = rec.get("u", base_unit)
        if unit is not None and not isinstance(unit, str):
            out.rejections.append(Rejection(Reason.bad_unit, f"[{index}] u must be a string", metric))
            continue
        try:
            value = base_value + _number(rec["v"])
            offset = base_time + _number(rec.get("t", 0.0))
            if not math.isfinite(offset):
                raise ValueError("time is not finite")
            when = (
                received + timedelta(seconds=offset)
                if abs(offset) < _SENML_RELATIVE_LIMIT
                else _EPOCH + timedelta(seconds=offset)
            )
        except TypeError as exc:
            out.rejections.append(Rejection(Reason.non_numeric, f"[{index}] {metric}: {exc}", metric))
            continue
        except (ValueError, OverflowError) as exc:
            out.rejections.append(Rejection(Reason.bad_timestamp, f"[{index}] {metric}: {exc}", metric))
            continue
        out.readings.append(RawReading(when, metric, value, unit))


def decode_status(payload: bytes, received: datetime) -> Status | Rejection:
    """A status (birth / last-will / health) message: ``{"state": "online", "battery": 3.6, "signal": -80}``.

    A bare ``online`` / ``offline`` string is accepted too, as many last-will messages are plain text.
    """
    text = payload.strip()
    if text in (b"online", b"offline"):
        return Status(received, online=text == b"online")
    try:
        doc = _parse_json(payload)
    except _Malformed as exc:
        return Rejection(Reason.malformed, str(exc))
    if not isinstance(doc, dict):
        return Rejection(Reason.malformed, "status must be a JSON object")
    try:
        when = parse_time(doc.get("ts"), received)
    except (ValueError, TypeError, OverflowError) as exc:
        return Rejection(Reason.bad_timestamp, str(exc))
    state = doc.get("state")
    if state not in (None, "online", "offline"):
        return Rejection(Reason.malformed, "state must be 'online' or 'offline'")
    try:
        battery = None if doc.get("battery") is None else _number(doc["battery"])
        signal = None if doc.get("signal") is None else _number(doc["signal"])
    except TypeError as exc:
        return Rejection(Reason.non_numeric, str(exc))
    for v in (battery, signal):
        if v is not None and not math.isfinite(v):
            return Rejection(Reason.non_finite, "battery and signal must be finite")
    return Status(when, None if state is None else state == "online", battery, signal)


def encode_native(readings: list[RawReading]) -> bytes:
    """Native JSON for a list of readings (used by simulators and tests; inverse of the decoder)."""
    by_time: dict[datetime, dict[str, object]] = {}
    for r in readings:
        by_time.setdefault(r.time, {})[r.metric] = r.value if r.unit is None else {"v": r.value, "u": r.unit}
    sets = [{"ts": t.isoformat(), "values": v} for t, v in by_time.items()]
    return json.dumps(sets[0] if len(sets) == 1 else sets).encode()


def encode_senml(base_name: str, readings: list[RawReading]) -> bytes:
    """A SenML pack for a list of readings, with base name and base time."""
    if not readings:
        return b"[]"
    base = min(r.time for r in readings)
    base_t = (base - _EPOCH).total_seconds()
    records: list[dict[str, object]] = []
    for i, r in enumerate(readings):
        rec: dict[str, object] = {"n": r.metric, "v": r.value}
        if i == 0:
            rec = {"bn": base_name, "bt": base_t, **rec}
        offset = (r.time - base).total_seconds()
        if offset:
            rec["t"] = offset
        if r.unit:
            rec["u"] = r.unit
        records.append(rec)
    return json.dumps(records).encode()
