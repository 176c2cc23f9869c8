"""Reading a device's time series from whichever storage the database has, with tenant rules and limits."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

import psycopg

from devices.series_plan import SeriesRequest, aggregate_source, floor_to_bucket
from devices.series_queries import aggregate_stale_from, bucketed_series, raw_series
from mimamori.errors import NotFound, ValidationError


@dataclass(frozen=True)
class Series:
    device_id: str
    request: SeriesRequest
    source: str  # 'readings', or the continuous aggregate used
    points: list[tuple[datetime, str, float]]  # (time, metric, value), by metric then time

    def as_json(self) -> dict[str, object]:
        """The series as JSON-ready data; times stay ``datetime`` (orjson writes them as RFC 3339 itself, several
        times faster than ``isoformat`` per point)."""
        by_metric: dict[str, list[dict[str, object]]] = {}
        for t, metric, value in self.points:
            by_metric.setdefault(metric, []).append({"time": t, "value": value})
        bucket = self.request.bucket
        return {
            "device_id": self.device_id,
            "start": self.request.start.isoformat(),
            "end": self.request.end.isoformat(),
            "bucket_seconds": int(bucket.total_seconds()) if bucket else None,
            "agg": self.request.agg.value if bucket else None,
            "series": by_metric,
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["time", "metric", "value"])
        writer.writerows((t.isoformat(), metric, repr(value)) for t, metric, value in self.points)
        return out.getvalue()


def read_series(
    conn: psycopg.Connection,
    *,
    device_id: str,
    tenant_id: str | None,
    metric: str | None,
    request: SeriesRequest,
    origin: datetime,
    storage_mode: str,
    max_points: int,
    final_before: datetime | None = None,
) -> Series:
    """The series a request asks for; NotFound for a device the caller may not see, ValidationError past the limit."""
    if request.bucket is None:
        points = raw_series(conn, device_id, tenant_id, metric, request.start, request.end, max_points + 1)
        source = "readings"
    else:
        view = aggregate_source(request.bucket, origin) if storage_mode == "timescaledb" else None
        cut = None
        if view is not None:
            # Before ``final_before`` no reading can arrive any more (ingest refuses them): the aggregate is final
            # there, even where retention has dropped the raw rows (TimescaleDB logs a drop as an invalidation).
            since = request.start if final_before is None else max(request.start, final_before)
            stale = aggregate_stale_from(conn, view, since, request.end) if since < request.end else None
            if stale is not None:
                cut = max(request.start, floor_to_bucket(stale, request.bucket, origin))
        parts: list[
            tuple[str | None, datetime, datetime]
        ] = []  # (source, start, end): the aggregate up to what it may lack, raw rows from there
        if view is None or cut == request.start:
            parts.append((None, request.start, request.end))
        elif cut is None:
            parts.append((view, request.start, request.end))
        else:
            parts += [(view, request.start, cut), (None, cut, request.end)]
        points: list[tuple[datetime, str, float]] = []
        for part_view, part_start, part_end in parts:
            got = bucketed_series(
                conn,
                device_id,
                tenant_id,
                metric,
                part_start,
                part_end,
                request.bucket,
                request.agg.value,
                origin,
                part_view,
                max_points + 1,
            )
            if got is None:
                raise NotFound(f"device {device_id!r} not found")
            points += got
        if len(parts) > 1:
            points.sort(key=lambda p: (p[1], p[0]))  # by metric, then time, as one query would give them
        source = "+".join(v or "readings" for v, _, _ in parts)
    if points is None:
        raise NotFound(f"device {device_id!r} not found")
    if len(points) > max_points:
        raise ValidationError(
            f"more than {max_points} points in this range; narrow the range, name one metric, or use a bucket"
        )
    return Series(device_id, request, source, points)
