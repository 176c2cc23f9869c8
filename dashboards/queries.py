"""The SQL of every dashboard panel and variable, written against the schema in mimamori/migrations.

These are Grafana query templates, not statements this process runs with bind parameters: Grafana fills in its
time macros (``$__timeFilter`` …) and the dashboard's variables (``$gauge`` …, quoted by Grafana). The few values
from the hub's settings that go in (bucket origin, rain-event gap, silence policy) are numbers or a timestamp,
checked when the options are made, never free text. Whether a device is silent is not written here: the
expression comes from the hub's one rule (devices.silence.silent_sql), the map's and the API's too.

Every statement runs in both storage modes: buckets come from ``$__timeGroup`` (which Grafana turns into
``time_bucket`` when the data source says TimescaleDB) or from ``date_bin`` (PostgreSQL 14+), never from
arithmetic on a ``$__timeGroup`` result, whose type differs between the modes.
"""

from __future__ import annotations

from datetime import datetime

from devices.silence import SilencePolicy, silent_sql

_RANGE_END = "$__timeTo()::timestamptz"  # "now" for a panel: the end of the dashboard's time range
RIVER_TYPES = "('river_gauge', 'river_gauge_crisis')"
RAIN_TYPES = "('rain_gauge', 'weather_station')"
LEVEL_COLUMNS = ("standby", "caution", "evacuation", "danger")


def _threshold(name: str) -> str:
    # Site metadata keys of river gauges (devices/catalogue.yaml): standby_m, caution_m, evacuation_m, danger_m.
    return f"(d.metadata->>'{name}_m')::float8"


# --- variables -------------------------------------------------------------------------------------------------

GAUGES = f"""
SELECT d.id AS __value, coalesce(nullif(d.name, ''), d.id) AS __text
FROM devices d
WHERE d.device_type IN {RIVER_TYPES} AND d.status <> 'retired'
ORDER BY d.id
"""

SLOPES = """
SELECT DISTINCT d.metadata->>'slope_id' AS __value, d.metadata->>'slope_id' AS __text
FROM devices d
WHERE d.metadata->>'slope_id' IS NOT NULL AND d.status <> 'retired'
ORDER BY 1
"""

RAIN_GAUGES = f"""
SELECT d.id AS __value, coalesce(nullif(d.name, ''), d.id) AS __text
FROM devices d
WHERE d.device_type IN {RAIN_TYPES} AND d.status <> 'retired'
ORDER BY d.id
"""

STANDS = """
SELECT DISTINCT d.metadata->>'stand_id' AS __value, d.metadata->>'stand_id' AS __text
FROM devices d
WHERE d.metadata->>'stand_id' IS NOT NULL AND d.status <> 'retired'
ORDER BY 1
"""


# --- river levels ----------------------------------------------------------------------------------------------

GAUGES_NOW = f"""
SELECT d.id AS "gauge",
       coalesce(nullif(d.name, ''), d.id) AS "name",
       d.metadata->>'river' AS "river",
       lr.value AS "water level (m)",
       lr.time AS "observed",
       {_threshold("standby")} AS "standby",
       {_threshold("caution")} AS "caution",
       {_threshold("evacuation")} AS "evacuation",
       {_threshold("danger")} AS "danger",
       CASE
         WHEN lr.value IS NULL THEN NULL
         WHEN lr.value >= {_threshold("danger")} THEN 4
         WHEN lr.value >= {_threshold("evacuation")} THEN 3
         WHEN lr.value >= {_threshold("caution")} THEN 2
         WHEN lr.value >= {_threshold("standby")} THEN 1
         ELSE 0
       END AS "warning level"
FROM devices d
LEFT JOIN latest_readings lr ON lr.device_id = d.id AND lr.metric = 'water_level'
WHERE d.id IN ($gauge)
ORDER BY "warning level" DESC NULLS LAST, d.id
"""

WATER_LEVEL = """
SELECT $__timeGroupAlias(r.time, $__interval), avg(r.value) AS "water level"
FROM readings r
WHERE r.device_id IN ($gauge) AND r.metric = 'water_level' AND $__timeFilter(r.time)
GROUP BY 1
ORDER BY 1
"""

# The gauge's thresholds as flat series across the range, so each repeated panel draws its own station's bands.
WATER_LEVEL_THRESHOLDS = f"""
SELECT t.time AS "time",
       {_threshold("standby")} AS "standby",
       {_threshold("caution")} AS "caution",
       {_threshold("evacuation")} AS "evacuation",
       {_threshold("danger")} AS "danger"
FROM devices d
CROSS JOIN (VALUES ($__timeFrom()::timestamptz), ($__timeTo()::timestamptz)) AS t(time)
WHERE d.id IN ($gauge)
ORDER BY 1
"""


def rise_rate(origin: str) -> str:
    """Water-level change in m/h between the last readings of consecutive 10-minute buckets (the standard gauge
    interval). Last readings and their own times, not bucket means, so a half-filled bucket does not skew it."""
    return f"""
WITH buckets AS (
  SELECT date_bin('10 minutes', r.time, TIMESTAMPTZ '{origin}') AS bucket, r.device_id, max(r.time) AS at,
         (array_agg(r.value ORDER BY r.time DESC))[1] AS level
  FROM readings r
  WHERE r.device_id IN ($gauge) AND r.metric = 'water_level'
    AND r.time BETWEEN $__timeFrom()::timestamptz - interval '10 minutes' AND $__timeTo()::timestamptz
  GROUP BY 1, 2
), rates AS (
  SELECT bucket, device_id,
         (level - lag(level) OVER w) / (extract(epoch FROM at - lag(at) OVER w) / 3600) AS rate
  FROM buckets
  WINDOW w AS (PARTITION BY device_id ORDER BY bucket)
)
SELECT bucket AS "time", device_id AS metric, rate AS "m/h"
FROM rates
WHERE rate IS NOT NULL
ORDER BY 1
"""


# --- landslides ------------------------------------------------------------------------------------------------


def slope_series(device_type: str, metrics: tuple[str, ...]) -> str:
    """A device type's metrics on the chosen slopes, one series per device (and metric when several)."""
    names = ", ".join(f"'{m}'" for m in metrics)
    label = "d.id" if len(metrics) == 1 else "d.id || ' ' || r.metric"
    return f"""
SELECT $__timeGroupAlias(r.time, $__interval), {label} AS metric, avg(r.value) AS value
FROM readings r
JOIN devices d ON d.id = r.device_id
WHERE d.device_type = '{device_type}' AND d.metadata->>'slope_id' IN ($slope)
  AND r.metric IN ({names}) AND $__timeFilter(r.time)
GROUP BY 1, 2
ORDER BY 1
"""


def slope_rate(device_type: str, metric: str, origin: str, unit: str) -> str:
    """Change per hour between the last readings of consecutive hours: the rate the landslide criteria use."""
    return f"""
WITH hourly AS (
  SELECT date_bin('1 hour', r.time, TIMESTAMPTZ '{origin}') AS bucket, r.device_id, max(r.time) AS at,
         (array_agg(r.value ORDER BY r.time DESC))[1] AS value
  FROM readings r
  JOIN devices d ON d.id = r.device_id
  WHERE d.device_type = '{device_type}' AND d.metadata->>'slope_id' IN ($slope) AND r.metric = '{metric}'
    AND r.time BETWEEN $__timeFrom()::timestamptz - interval '1 hour' AND $__timeTo()::timestamptz
  GROUP BY 1, 2
), rates AS (
  SELECT bucket, device_id,
         (value - lag(value) OVER w) / (extract(epoch FROM at - lag(at) OVER w) / 3600) AS rate
  FROM hourly
  WINDOW w AS (PARTITION BY device_id ORDER BY bucket)
)
SELECT bucket AS "time", device_id AS metric, rate AS "{unit}"
FROM rates
WHERE rate IS NOT NULL
ORDER BY 1
"""


# --- rainfall --------------------------------------------------------------------------------------------------

HOURLY_RAIN = """
SELECT $__timeGroupAlias(r.time, 1h), r.device_id AS metric, sum(r.value) AS "mm/h"
FROM readings r
WHERE r.device_id IN ($rain_gauge) AND r.metric = 'rainfall' AND $__timeFilter(r.time)
GROUP BY 1, 2
ORDER BY 1
"""


def cumulative_rain(origin: str) -> str:
    return f"""
WITH hourly AS (
  SELECT date_bin('1 hour', r.time, TIMESTAMPTZ '{origin}') AS bucket, r.device_id, sum(r.value) AS rain
  FROM readings r
  WHERE r.device_id IN ($rain_gauge) AND r.metric = 'rainfall' AND $__timeFilter(r.time)
  GROUP BY 1, 2
)
SELECT bucket AS "time", device_id AS metric,
       sum(rain) OVER (PARTITION BY device_id ORDER BY bucket) AS "mm since range start"
FROM hourly
ORDER BY 1
"""


RAIN_NOW = """
SELECT d.id AS "gauge",
       coalesce(sum(r.value) FILTER (WHERE r.time > $__timeTo()::timestamptz - interval '60 minutes'), 0)
         AS "60 min (mm)",
       coalesce(sum(r.value), 0) AS "24 h (mm)"
FROM devices d
LEFT JOIN readings r ON r.device_id = d.id AND r.metric = 'rainfall'
  AND r.time > $__timeTo()::timestamptz - interval '24 hours' AND r.time <= $__timeTo()::timestamptz
WHERE d.id IN ($rain_gauge)
GROUP BY d.id
ORDER BY 3 DESC, 1
"""


def event_rain(gap_hours: float, lookback_days: int) -> str:
    """Rain since the event began: an event ends after ``gap_hours`` without rain (shared/domain.md §2)."""
    return f"""
WITH wet AS (
  SELECT r.device_id, r.time, r.value,
         r.time - lag(r.time) OVER (PARTITION BY r.device_id ORDER BY r.time) AS gap
  FROM readings r
  WHERE r.device_id IN ($rain_gauge) AND r.metric = 'rainfall' AND r.value > 0
    AND r.time > $__timeTo()::timestamptz - interval '{lookback_days} days' AND r.time <= $__timeTo()::timestamptz
), starts AS (
  SELECT device_id, max(time) AS began
  FROM wet
  WHERE gap IS NULL OR gap >= interval '{gap_hours:g} hours'
  GROUP BY device_id
)
SELECT s.device_id AS "gauge", s.began AS "event began", max(w.time) AS "last rain",
       sum(w.value) AS "event rainfall (mm)"
FROM starts s
JOIN wet w ON w.device_id = s.device_id AND w.time >= s.began
GROUP BY s.device_id, s.began
HAVING max(w.time) > $__timeTo()::timestamptz - interval '{gap_hours:g} hours'
ORDER BY 4 DESC
"""


def daily_rain(origin: str, timescaledb: bool) -> str:
    """Daily totals, in days of the city's time zone (the bucket origin) in both modes.

    TimescaleDB's readings_1d holds UTC days (09:00 to 09:00 in Japan), so the days are rolled up from readings_1h,
    exact for sums, whenever the origin falls on a whole hour (every time zone of the city's kind does).
    """
    if timescaledb and datetime.fromisoformat(origin).minute == 0:
        return f"""
SELECT date_bin('1 day', a.bucket, TIMESTAMPTZ '{origin}') AS "time", a.device_id AS metric, sum(a.sum) AS "mm/day"
FROM readings_1h a
WHERE a.device_id IN ($rain_gauge) AND a.metric = 'rainfall' AND $__timeFilter(a.bucket)
GROUP BY 1, 2
ORDER BY 1
"""
    return f"""
SELECT date_bin('1 day', r.time, TIMESTAMPTZ '{origin}') AS "time", r.device_id AS metric, sum(r.value) AS "mm/day"
FROM readings r
WHERE r.device_id IN ($rain_gauge) AND r.metric = 'rainfall' AND $__timeFilter(r.time)
GROUP BY 1, 2
ORDER BY 1
"""


# --- forestry --------------------------------------------------------------------------------------------------


def stand_series(metrics: tuple[str, ...]) -> str:
    names = ", ".join(f"'{m}'" for m in metrics)
    return f"""
SELECT $__timeGroupAlias(r.time, $__interval), d.id || ' ' || r.metric AS metric, avg(r.value) AS value
FROM readings r
JOIN devices d ON d.id = r.device_id
WHERE d.metadata->>'stand_id' IN ($stand) AND r.metric IN ({names}) AND $__timeFilter(r.time)
GROUP BY 1, 2
ORDER BY 1
"""


STAND_SENSORS = """
SELECT d.metadata->>'stand_id' AS "stand",
       s.species_1 AS "species",
       s.age_1 AS "age",
       s.area_ha AS "area (ha)",
       d.id AS "device",
       d.device_type AS "type",
       l.last_seen AS "last seen",
       (SELECT string_agg(lr.metric || ' ' || round(lr.value::numeric, 3), ', ' ORDER BY lr.metric)
          FROM latest_readings lr
         WHERE lr.device_id = d.id AND lr.metric NOT IN ('battery', 'signal')) AS "latest"
FROM devices d
LEFT JOIN stands s ON s.stand_id = d.metadata->>'stand_id'
LEFT JOIN device_liveness l ON l.device_id = d.id
WHERE d.metadata->>'stand_id' IN ($stand) AND d.status <> 'retired'
ORDER BY 1, 5
"""


# --- alert map -------------------------------------------------------------------------------------------------

ACTIVE_ALERTS = """
SELECT a.id AS "alert", a.level AS "level", a.hazard AS "hazard", a.title_en AS "title",
       nullif(a.title_ja, '') AS "title (ja)", a.state AS "state", a.subject AS "subject",
       a.opened_at AS "opened", a.value AS "value",
       ST_Y(coalesce(a.location, ST_PointOnSurface(a.area))) AS latitude,
       ST_X(coalesce(a.location, ST_PointOnSurface(a.area))) AS longitude
FROM alerts a
WHERE a.state IN ('open', 'acknowledged') AND (a.location IS NOT NULL OR a.area IS NOT NULL)
ORDER BY a.level DESC, a.opened_at DESC
"""


def device_states(silence: SilencePolicy) -> str:
    """Every device on the map, silent by the hub's one rule (devices/silence.py) at the end of the time range."""
    silent, _since = silent_sql(silence, now=_RANGE_END)
    return f"""
SELECT d.id AS "device", coalesce(nullif(d.name, ''), d.id) AS "name", d.device_type AS "type",
       d.tenant_id AS "tenant", d.status AS "status", l.last_seen AS "last seen",
       CASE WHEN {silent} THEN 'silent' ELSE 'reporting' END AS "liveness",
       ST_Y(d.location) AS latitude, ST_X(d.location) AS longitude
FROM devices d
LEFT JOIN device_liveness l ON l.device_id = d.id
WHERE d.status <> 'retired' AND d.location IS NOT NULL
ORDER BY d.id
"""


ALERT_EVENTS = """
SELECT $__timeGroupAlias(e.at, $__interval), e.kind AS metric, count(*) AS "events"
FROM alert_events e
WHERE $__timeFilter(e.at)
GROUP BY 1, 2
ORDER BY 1
"""


# --- ingest health ---------------------------------------------------------------------------------------------

# Filtered on device time too, so the time index does the work; received_at then places each reading.
READINGS_STORED = """
SELECT $__timeGroupAlias(r.received_at, $__interval), count(*) AS "readings stored"
FROM readings r
WHERE $__timeFilter(r.time) AND $__timeFilter(r.received_at)
GROUP BY 1
ORDER BY 1
"""

INGEST_DELAY = """
SELECT $__timeGroupAlias(r.received_at, $__interval),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM r.received_at - r.time)) AS "median delay",
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM r.received_at - r.time)) AS "p95 delay"
FROM readings r
WHERE $__timeFilter(r.time) AND $__timeFilter(r.received_at)
GROUP BY 1
ORDER BY 1
"""

DEAD_LETTERS_BY_REASON = """
SELECT $__timeGroupAlias(dl.received_at, $__interval), dl.reason AS metric, count(*) AS "dead letters"
FROM dead_letters dl
WHERE $__timeFilter(dl.received_at)
GROUP BY 1, 2
ORDER BY 1
"""

# The payload stays out: it may hold whatever a misbehaving client sent.
RECENT_DEAD_LETTERS = """
SELECT dl.received_at AS "received", dl.source AS "source", dl.reason AS "reason", dl.detail AS "detail",
       dl.tenant_id AS "tenant", dl.device_id AS "device", dl.topic AS "topic"
FROM dead_letters dl
WHERE $__timeFilter(dl.received_at)
ORDER BY dl.received_at DESC
LIMIT 200
"""


def silent_devices(silence: SilencePolicy) -> str:
    """The devices silent by the hub's one rule (devices/silence.py) at the end of the time range."""
    silent, since = silent_sql(silence, now=_RANGE_END)
    return f"""
SELECT d.id AS "device", d.device_type AS "type", d.tenant_id AS "tenant", l.last_seen AS "last seen",
       extract(epoch FROM d.expected_interval) AS "expected every",
       {since} AS "silent since",
       extract(epoch FROM {_RANGE_END} - coalesce(l.last_seen, l.last_reading)) AS "silent for"
FROM devices d
LEFT JOIN device_liveness l ON l.device_id = d.id
WHERE {silent}
ORDER BY l.last_seen NULLS FIRST, d.id
"""


INGEST_TOTALS = """
SELECT (SELECT count(*) FROM readings r WHERE $__timeFilter(r.time) AND $__timeFilter(r.received_at))
         AS "readings stored",
       (SELECT count(*) FROM dead_letters dl WHERE $__timeFilter(dl.received_at)) AS "dead letters",
       (SELECT count(DISTINCT r.device_id) FROM readings r WHERE $__timeFilter(r.time)) AS "devices reporting"
"""
