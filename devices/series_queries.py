"""SQL of a device's time series: stored readings in a range, bucketed from readings or rolled up from TimescaleDB's
continuous aggregates, and how fresh those aggregates are. Parameterised; tenant rules in the WHERE.

Reads ``readings`` (the view over ``series`` and ``series_readings``) and ``readings_10m``/``_1h``/``_1d`` (views over
the ``series_readings_*`` continuous aggregates), all of migration 0060.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

_RAW_AGG = {
    "avg": "avg(r.value)",
    "min": "min(r.value)",
    "max": "max(r.value)",
    "sum": "sum(r.value)",
    "count": "count(*)::float8",
    "last": "(array_agg(r.value ORDER BY r.time DESC))[1]",
}
# Rolling continuous-aggregate rows up into wider buckets: exact for every aggregate (avg via sum and count).
_ROLLUP_AGG = {
    "avg": "sum(r.sum) / sum(r.count)",
    "min": "min(r.min)",
    "max": "max(r.max)",
    "sum": "sum(r.sum)",
    "count": "sum(r.count)::float8",
    "last": "(array_agg(r.last ORDER BY r.bucket DESC))[1]",
}
_DEVICE_IS_VISIBLE = "id = %(device)s AND (%(tenant)s::text IS NULL OR tenant_id = %(tenant)s)"
_VISIBLE_DEVICE = f"SELECT 1 FROM devices WHERE {_DEVICE_IS_VISIBLE}"


def _metric_filter(metric: str | None, column: str = "r.metric") -> sql.Composable:
    # Two statements rather than "(%(metric)s IS NULL OR r.metric = %(metric)s)": once prepared, that form's
    # generic plan cannot put the metric into the index condition and reads every metric of the device.
    return sql.SQL(column + " = %(metric)s") if metric is not None else sql.SQL("TRUE")


def _visible_series(
    conn: psycopg.Connection, query: sql.Composable, params: dict[str, Any]
) -> list[tuple[datetime, str, float]] | None:
    """Run a series ``query``, and in the same round trip learn whether the caller may see the device at all.

    A marker row (metric NULL, sorted first) stands for "visible"; the series follows it. No rows: not visible
    (``query`` must check visibility itself too, so a hidden device's rows never come without the marker).
    """
    rows = conn.execute(
        sql.SQL(
            "SELECT * FROM (SELECT NULL::timestamptz AS t, NULL::text AS metric, NULL::float8 AS v"
            f" FROM devices WHERE {_DEVICE_IS_VISIBLE} UNION ALL ({{}})) s ORDER BY metric NULLS FIRST, t"
        ).format(query),
        params,
        binary=True,  # times and values as they are stored: no text to parse per point
    ).fetchall()
    return rows[1:] if rows else None


def raw_series(
    conn: psycopg.Connection,
    device_id: str,
    tenant_id: str | None,
    metric: str | None,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[tuple[datetime, str, float]] | None:
    """Stored readings in [start, end), at most ``limit`` rows (time, metric, value); None for a device the
    caller may not see."""
    query = sql.SQL(
        "SELECT r.time, r.metric, r.value FROM readings r"
        f" WHERE r.device_id = %(device)s AND EXISTS ({_VISIBLE_DEVICE})"
        " AND {metric} AND r.time >= %(start)s AND r.time < %(end)s ORDER BY r.metric, r.time LIMIT %(limit)s"
    ).format(metric=_metric_filter(metric))
    params = {"device": device_id, "tenant": tenant_id, "metric": metric, "start": start, "end": end, "limit": limit}
    return _visible_series(conn, query, params)


# From when on a continuous aggregate may lack readings of a time range: the earliest write since its last refresh
# there (TimescaleDB's invalidation logs) below its watermark (above it, real-time aggregation reads raw rows anyway).
# Catalog tables of TimescaleDB's own, checked against 2.28.3: where they cannot be read, nothing is trusted.
_AGGREGATE_STALE_FROM = """
SELECT min(greatest(x.lowest, _timescaledb_functions.to_unix_microseconds(%(start)s)))
FROM _timescaledb_catalog.continuous_agg ca
CROSS JOIN LATERAL (SELECT least(_timescaledb_functions.to_unix_microseconds(%(end)s),
                                 _timescaledb_functions.cagg_watermark(ca.mat_hypertable_id)) AS upto) w
CROSS JOIN LATERAL (
    SELECT m.lowest_modified_value AS lowest, m.greatest_modified_value AS greatest
    FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log m
    WHERE m.materialization_id = ca.mat_hypertable_id
    UNION ALL
    SELECT h.lowest_modified_value, h.greatest_modified_value
    FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log h
    WHERE h.hypertable_id = ca.raw_hypertable_id
) x
CROSS JOIN LATERAL (  -- before the oldest chunk there are no raw rows to miss (TimescaleDB clamps its refreshes
                    -- to the data, and logs dropped chunks as invalidations): the aggregate is all there is
    SELECT coalesce(_timescaledb_functions.to_unix_microseconds(min(c.range_start)), 0) AS oldest
    FROM timescaledb_information.chunks c
    WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = 'series_readings'
) d
WHERE ca.user_view_schema = current_schema() AND ca.user_view_name = %(view)s
  AND x.lowest < w.upto AND x.greatest >= _timescaledb_functions.to_unix_microseconds(%(start)s)
  AND x.greatest >= d.oldest
"""


def aggregate_stale_from(conn: psycopg.Connection, view: str, start: datetime, end: datetime) -> datetime | None:
    """The earliest time in [start, end) from which ``view`` may not yet hold every reading; None when it does."""
    aggregate = "series_" + view  # the continuous aggregate behind the view (migration 0060)
    try:
        with conn.transaction():
            row = conn.execute(_AGGREGATE_STALE_FROM, {"view": aggregate, "start": start, "end": end}).fetchone()
            known = conn.execute(
                "SELECT 1 FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = %s", (aggregate,)
            ).fetchone()
    except psycopg.Error:
        return start
    if known is None:
        return start
    if row is None or row[0] is None:
        return None
    return datetime.fromtimestamp(row[0] / 1_000_000, tz=start.tzinfo)


def bucketed_series(
    conn: psycopg.Connection,
    device_id: str,
    tenant_id: str | None,
    metric: str | None,
    start: datetime,
    end: datetime,
    width: timedelta,
    agg: str,
    origin: datetime,
    source: str | None,
    limit: int,
) -> list[tuple[datetime, str, float]] | None:
    """One value per bucket and metric: from readings with date_bin, or rolled up from a continuous aggregate;
    None for a device the caller may not see.

    ``source`` names the continuous aggregate (TimescaleDB) or is None (plain readings). [start, end) must already
    be whole buckets, so both ways see exactly the same readings.
    """
    params = {
        "device": device_id,
        "tenant": tenant_id,
        "metric": metric,
        "start": start,
        "end": end,
        "width": width,
        "origin": origin,
        "limit": limit,
    }
    if source is None:
        query = sql.SQL(
            "SELECT date_bin(%(width)s, r.time, %(origin)s) AS b, r.metric, {agg} FROM readings r"
            " WHERE r.device_id = %(device)s AND EXISTS (" + _VISIBLE_DEVICE + ")"
            " AND {metric} AND r.time >= %(start)s AND r.time < %(end)s"
            " GROUP BY b, r.metric ORDER BY r.metric, b LIMIT %(limit)s"
        ).format(agg=sql.SQL(_RAW_AGG[agg]), metric=_metric_filter(metric))
    else:
        if source not in ("readings_10m", "readings_1h", "readings_1d"):
            raise ValueError(f"not a continuous aggregate: {source}")
        # The series aggregate itself, its series numbers found first (an InitPlan): a join with `series` (what
        # the readings_1h view is) cannot reach into the aggregate's union of materialised and real-time rows, which
        # then reads every series of the range (15 ms against 0.4 for a week of hours among 200 gauges).
        query = sql.SQL(
            "SELECT date_bin(%(width)s, r.bucket, %(origin)s) AS b, s.metric, {agg}"
            " FROM {view} r JOIN series s USING (series_id)"
            " WHERE r.series_id = ANY (ARRAY(SELECT series_id FROM series"
            " WHERE device_id = %(device)s AND {metric}))"
            " AND EXISTS (" + _VISIBLE_DEVICE + ") AND r.bucket >= %(start)s AND r.bucket < %(end)s"
            " GROUP BY b, s.metric ORDER BY s.metric, b LIMIT %(limit)s"
        ).format(
            agg=sql.SQL(_ROLLUP_AGG[agg]),
            view=sql.Identifier("series_" + source),
            metric=_metric_filter(metric, column="metric"),
        )
    return _visible_series(conn, query, params)


def calendar_buckets(
    conn: psycopg.Connection,
    device_ids: list[str],
    metric: str,
    unit: str,
    start: datetime,
    end: datetime,
    tz: str = "Asia/Tokyo",
) -> list[tuple[str, datetime, int, float, float, float, float]]:
    """Per device, per calendar day or month of ``tz`` in [start, end): (device, bucket start, count, min, max,
    mean, sum) of one metric, by device then time. ``unit`` is 'day' or 'month' (calendar months are not of one
    width, so this reads the readings, not the fixed-width aggregates); callers bound the range."""
    if unit not in ("day", "month"):
        raise ValueError("unit is day or month")
    query = sql.SQL(
        "SELECT r.device_id, date_trunc({unit}, r.time AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS bucket,"
        " count(*)::int, min(r.value), max(r.value), avg(r.value), sum(r.value) FROM readings r"
        " WHERE r.device_id = ANY(%(devices)s) AND r.metric = %(metric)s AND r.time >= %(start)s AND r.time < %(end)s"
        " GROUP BY 1, 2 ORDER BY 1, 2"
    ).format(unit=sql.Literal(unit))
    params = {"devices": device_ids, "metric": metric, "start": start, "end": end, "tz": tz}
    return [tuple(r) for r in conn.execute(query, params).fetchall()]  # type: ignore[misc]
