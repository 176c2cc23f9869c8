"""Replay of recorded series from CSV: ``time,device_id,metric,value`` (optional ``unit`` and ``tenant``).

The recording is shifted so its first row falls at the replay's start, keeping the gaps between rows, and is
played through the same publisher as a simulation (same clock, same acceleration).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ingest.codecs import encode_native, encode_senml, parse_time
from ingest.contract import RawReading, telemetry_topic
from simulators.engine import NATIVE, SENML_CONTENT_TYPE, GaugeState, Outgoing
from simulators.errors import ScenarioError
from simulators.fleet import SimDevice


@dataclass(frozen=True, slots=True)
class _Row:
    time: datetime
    tenant: str
    device: str
    reading: RawReading


class Replay:
    def __init__(
        self,
        path: Path,
        start: datetime,
        *,
        tenant: str = "toyota-city",
        fmt: str = NATIVE,
        topic_prefix: str = "mimamori/v1",
    ) -> None:
        rows = _read(path, tenant)
        if not rows:
            raise ScenarioError(f"replay file {path} has no rows")
        first = min(r.time for r in rows)
        self.shift = start - first
        self.start = start
        self.duration = max(r.time for r in rows) - first
        self.fmt, self.prefix = fmt, topic_prefix
        seen: dict[str, str] = {}
        grouped: dict[tuple[datetime, str], list[RawReading]] = defaultdict(list)
        for r in rows:
            seen.setdefault(r.device, r.tenant)
            when = r.time + self.shift
            grouped[(when, r.device)].append(RawReading(when, r.reading.metric, r.reading.value, r.reading.unit))
        self.devices = [SimDevice(d, t, "replay", 0.0, 0.0) for d, t in sorted(seen.items())]
        self._tenants = seen
        self._messages = sorted(grouped.items(), key=lambda kv: kv[0])
        self._next = 0

    def advance(self, until: datetime) -> list[Outgoing]:
        out = []
        while self._next < len(self._messages) and self._messages[self._next][0][0] <= until:
            (when, device), readings = self._messages[self._next]
            self._next += 1
            topic = telemetry_topic(self.prefix, self._tenants[device], device)
            if self.fmt == NATIVE:
                payload, ctype = encode_native(readings), None
            else:
                payload, ctype = encode_senml(f"urn:dev:mimamori:{device}:", readings), SENML_CONTENT_TYPE
            out.append(Outgoing(device, topic, payload, ctype, when, len(readings)))
        return out

    def gauges(self) -> list[GaugeState]:
        return []

    def fastest_slope(self) -> tuple[str, float] | None:
        return None

    def rain_mm_h_max(self) -> float:
        return 0.0


def _read(path: Path, tenant: str) -> list[_Row]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"time", "device_id", "metric", "value"} - set(reader.fieldnames or [])
            if missing:
                raise ScenarioError(f"replay file {path} lacks column(s) {', '.join(sorted(missing))}")
            rows = []
            for n, rec in enumerate(reader, start=2):
                try:
                    when = parse_time(rec["time"], datetime.min)
                    reading = RawReading(when, rec["metric"], float(rec["value"]), rec.get("unit") or None)
                except (ValueError, TypeError) as exc:
                    raise ScenarioError(f"{path} line {n}: {exc}") from None
                rows.append(_Row(when, rec.get("tenant") or tenant, rec["device_id"], reading))
            return rows
    except OSError as exc:
        raise ScenarioError(f"cannot read replay file {path}: {exc.strerror}") from None
