"""The hub's Grafana dashboards, generated from code so their SQL follows the schema.

River levels with each station's threshold bands, the landslide monitor, rainfall accumulations, forestry
sensors, the alert map (Geomap) and ingest health. Thresholds and view defaults come from the settings
(shared/domain.md's figures), never from this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from dashboards import queries as q
from dashboards.model import Dashboard, Json, Panel, Query, Variable
from devices.silence import SilencePolicy
from mimamori.errors import ConfigError

if TYPE_CHECKING:
    from mimamori.settings import Settings

# Warning-level colours as the national scale paints them (1 white/grey … 4 purple, 5 black).
LEVEL_COLOURS = {"standby": "#e6e6e6", "caution": "#f2cc0c", "evacuation": "#ff7f00", "danger": "#a020f0"}
_LEVEL_STEPS: list[tuple[float | None, str]] = [
    (None, "green"),
    (1, "#e6e6e6"),
    (2, "#f2cc0c"),
    (3, "#ff0000"),
    (4, "#a020f0"),
    (5, "#111111"),
]


@dataclass(frozen=True)
class DashboardOptions:
    """What the dashboards take from the hub's configuration."""

    datasource_uid: str = "mimamori"
    timescaledb: bool = False
    bucket_origin: str = "2000-01-03T00:00:00+09:00"
    extensometer_rate_mm_h: tuple[float, ...] = (2.0, 4.0, 10.0)
    tilt_rate_deg_h: tuple[float, ...] = (0.01, 0.1)
    rain_hourly_caution_mm: float = 20.0
    rain_event_caution_mm: float = 100.0
    rain_event_gap_h: float = 24.0
    rain_event_lookback_days: int = 30
    silence: SilencePolicy = field(default_factory=SilencePolicy)
    map_lat: float = 35.15
    map_lon: float = 137.30
    map_zoom: float = 10.0

    def __post_init__(self) -> None:
        # The origin is pasted into SQL templates: only a real timestamp may go there.
        try:
            origin = datetime.fromisoformat(self.bucket_origin)
        except ValueError:
            raise ConfigError(f"bucket origin is not an ISO 8601 timestamp: {self.bucket_origin!r}") from None
        if origin.tzinfo is None:
            raise ConfigError("bucket origin needs a UTC offset (e.g. +09:00)")
        object.__setattr__(self, "bucket_origin", origin.isoformat())

    @classmethod
    def from_settings(cls, settings: Settings, *, timescaledb: bool) -> DashboardOptions:
        return cls(
            datasource_uid=settings.grafana_datasource_uid,
            timescaledb=timescaledb,
            bucket_origin=settings.timeseries_bucket_origin,
            extensometer_rate_mm_h=tuple(settings.grafana_extensometer_rate_mm_h),
            tilt_rate_deg_h=tuple(settings.grafana_tilt_rate_deg_h),
            rain_hourly_caution_mm=settings.grafana_rain_hourly_caution_mm,
            rain_event_caution_mm=settings.grafana_rain_event_caution_mm,
            rain_event_gap_h=settings.grafana_rain_event_gap_h,
            silence=SilencePolicy.from_settings(settings),
            map_lat=settings.grafana_map_lat,
            map_lon=settings.grafana_map_lon,
            map_zoom=settings.grafana_map_zoom,
        )


def _lines(**extra: object) -> Json:
    return {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0, "spanNulls": False, "showPoints": "never", **extra}


def _bars() -> Json:
    return {"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1, "showPoints": "never"}


def _bands(values: tuple[float, ...], colours: tuple[str, ...]) -> list[tuple[float | None, str]]:
    return [(None, "transparent"), *zip(values, colours, strict=False)]


def _by_name(name: str, *properties: tuple[str, object]) -> Json:
    return {"matcher": {"id": "byName", "options": name}, "properties": [{"id": k, "value": v} for k, v in properties]}


def _level_table_overrides(column: str) -> list[Json]:
    return [_by_name(column, ("custom.cellOptions", {"type": "color-background"}))]


def rivers(o: DashboardOptions) -> Dashboard:
    # Each threshold series fills down to the one below: standby–caution yellow, caution–evacuation orange,
    # evacuation–danger red; danger itself is a bold purple line.
    band_overrides = [
        _by_name(
            "standby",
            ("color", {"mode": "fixed", "fixedColor": LEVEL_COLOURS["standby"]}),
            ("displayName", "待機 standby"),
        ),
        _by_name(
            "caution",
            ("color", {"mode": "fixed", "fixedColor": LEVEL_COLOURS["caution"]}),
            ("custom.fillBelowTo", "standby"),
            ("custom.fillOpacity", 15),
            ("displayName", "注意 caution"),
        ),
        _by_name(
            "evacuation",
            ("color", {"mode": "fixed", "fixedColor": LEVEL_COLOURS["evacuation"]}),
            ("custom.fillBelowTo", "caution"),
            ("custom.fillOpacity", 15),
            ("displayName", "避難判断 evacuation"),
        ),
        _by_name(
            "danger",
            ("color", {"mode": "fixed", "fixedColor": "red"}),
            ("custom.fillBelowTo", "evacuation"),
            ("custom.fillOpacity", 20),
            ("custom.lineWidth", 3),
            ("displayName", "氾濫危険 danger"),
        ),
        _by_name("water level", ("color", {"mode": "fixed", "fixedColor": "#1f60c4"}), ("custom.lineWidth", 3)),
    ]
    return Dashboard(
        uid="mimamori-rivers",
        title="Mimamori · River levels 河川水位",
        description="Water levels (m above the gauge zero) with each station's warning thresholds.",
        variables=[Variable("gauge", "Gauge", q.GAUGES)],
        panels=[
            Panel(
                "table",
                "Gauges now",
                [Query(q.GAUGES_NOW, "table")],
                width=24,
                height=7,
                description="Latest level against the station's ladder; warning level 1 (standby) to 4 (danger).",
                thresholds=_LEVEL_STEPS,
                overrides=_level_table_overrides("warning level"),
            ),
            Panel(
                "timeseries",
                "Water level · $gauge",
                [Query(q.WATER_LEVEL), Query(q.WATER_LEVEL_THRESHOLDS)],
                width=12,
                height=9,
                unit="lengthm",
                custom=_lines(),
                overrides=band_overrides,
                repeat="gauge",
            ),
            Panel(
                "timeseries",
                "Rise rate",
                [Query(q.rise_rate(o.bucket_origin))],
                width=24,
                unit="m/h",
                custom=_lines(),
                description="Flashy small rivers can rise more than 10 m/h; large rivers rarely more than 1–2 m/h.",
            ),
        ],
    )


def landslides(o: DashboardOptions) -> Dashboard:
    rate_colours = ("#f2cc0c", "#ff7f00", "#a020f0")
    return Dashboard(
        uid="mimamori-landslides",
        title="Mimamori · Landslide monitor 地すべり",
        description="Extensometer displacement and rate, tilt and its rate, soil moisture on the monitored slopes.",
        variables=[Variable("slope", "Slope", q.SLOPES)],
        panels=[
            Panel(
                "timeseries",
                "Extensometer displacement",
                [Query(q.slope_series("extensometer", ("displacement",)))],
                unit="lengthmm",
                custom=_lines(),
            ),
            Panel(
                "timeseries",
                "Displacement rate",
                [Query(q.slope_rate("extensometer", "displacement", o.bucket_origin, "mm/h"))],
                unit="mm/h",
                custom=_lines(thresholdsStyle={"mode": "line+area"}),
                thresholds=_bands(o.extensometer_rate_mm_h, rate_colours),
                description="Bands: warning, evacuate, sliding (mm/h, hour to hour).",
            ),
            Panel(
                "timeseries",
                "Tilt",
                [Query(q.slope_series("tiltmeter", ("tilt_x", "tilt_y")))],
                unit="degree",
                custom=_lines(),
            ),
            Panel(
                "timeseries",
                "Tilt rate (x axis)",
                [Query(q.slope_rate("tiltmeter", "tilt_x", o.bucket_origin, "deg/h"))],
                unit="°/h",
                custom=_lines(thresholdsStyle={"mode": "line+area"}),
                thresholds=_bands(o.tilt_rate_deg_h, rate_colours[:2]),
                description="Bands: caution, warning (MEMS tilt sensors).",
            ),
            Panel(
                "timeseries",
                "Soil moisture on the slope",
                [Query(q.slope_series("soil_moisture", ("soil_moisture",)))],
                width=24,
                unit="percentunit",
                custom=_lines(),
            ),
        ],
    )


def rainfall(o: DashboardOptions) -> Dashboard:
    return Dashboard(
        uid="mimamori-rainfall",
        title="Mimamori · Rainfall 雨量",
        description="Hourly rain, accumulation, 60-minute and 24-hour totals, rain since the event began.",
        variables=[Variable("rain_gauge", "Rain gauge", q.RAIN_GAUGES)],
        panels=[
            Panel(
                "timeseries",
                "Hourly rainfall",
                [Query(q.HOURLY_RAIN)],
                unit="lengthmm",
                custom=_bars() | {"thresholdsStyle": {"mode": "line"}},
                thresholds=[(None, "transparent"), (o.rain_hourly_caution_mm, "red")],
            ),
            Panel(
                "timeseries",
                "Accumulated over the range",
                [Query(q.cumulative_rain(o.bucket_origin))],
                unit="lengthmm",
                custom=_lines(),
            ),
            Panel(
                "bargauge",
                "60 minutes and 24 hours, to the end of the range",
                [Query(q.RAIN_NOW, "table")],
                unit="lengthmm",
                thresholds=[(None, "green"), (o.rain_hourly_caution_mm, "orange"), (o.rain_event_caution_mm, "red")],
                options={"displayMode": "gradient", "orientation": "horizontal", "reduceOptions": {"values": True}},
            ),
            Panel(
                "table",
                "Rain since the event began",
                [Query(q.event_rain(o.rain_event_gap_h, o.rain_event_lookback_days), "table")],
                thresholds=[(None, "green"), (o.rain_event_caution_mm, "red")],
                overrides=[_by_name("event rainfall (mm)", ("custom.cellOptions", {"type": "color-background"}))],
                description=f"An event ends after {o.rain_event_gap_h:g} h without rain.",
            ),
            Panel(
                "timeseries",
                "Daily totals (JST days)",
                [Query(q.daily_rain(o.bucket_origin, o.timescaledb))],
                width=24,
                unit="lengthmm",
                custom=_bars(),
            ),
        ],
    )


def forestry(o: DashboardOptions) -> Dashboard:
    return Dashboard(
        uid="mimamori-forestry",
        title="Mimamori · Forestry sensors 森林",
        description="Soil moisture, weather and dendrometers in the forest stands (森林簿 sub-compartments).",
        variables=[Variable("stand", "Stand", q.STANDS)],
        time_from="now-7d",
        refresh="5m",
        panels=[
            Panel("table", "Sensors in the stand", [Query(q.STAND_SENSORS, "table")], width=24, height=6),
            Panel(
                "timeseries",
                "Soil moisture",
                [Query(q.stand_series(("soil_moisture",)))],
                unit="percentunit",
                custom=_lines(),
            ),
            Panel(
                "timeseries",
                "Stem radius change (dendrometer)",
                [Query(q.stand_series(("stem_radius_change",)))],
                unit="µm",
                custom=_lines(),
                description="Daily shrink and swell of 20–100 µm on top of seasonal growth.",
            ),
            Panel(
                "timeseries",
                "Air temperature",
                [Query(q.stand_series(("air_temperature", "soil_temperature")))],
                unit="celsius",
                custom=_lines(),
            ),
            Panel(
                "timeseries",
                "Humidity and wind",
                [Query(q.stand_series(("humidity", "wind_speed")))],
                custom=_lines(),
            ),
        ],
    )


def _markers(name: str, ref_id: str, colour: Json, size: float) -> Json:
    return {
        "type": "markers",
        "name": name,
        "config": {
            "showLegend": True,
            "style": {
                "color": colour,
                "size": {"fixed": size},
                "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                "opacity": 0.9,
            },
        },
        "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
        "filterData": {"id": "byRefId", "options": ref_id},
        "tooltip": True,
    }


def alert_map(o: DashboardOptions) -> Dashboard:
    geomap_options = {
        "view": {"id": "coords", "lat": o.map_lat, "lon": o.map_lon, "zoom": o.map_zoom},
        "controls": {"showZoom": True, "mouseWheelZoom": True, "showScale": True},
        "tooltip": {"mode": "details"},
        "basemap": {"type": "default", "name": "Base map"},
        "layers": [
            _markers("Devices", "B", {"field": "liveness", "fixed": "#808080"}, 6),
            _markers("Active alerts", "A", {"field": "level", "fixed": "red"}, 14),
        ],
    }
    liveness_colours = {
        "id": "mappings",
        "value": [
            {
                "type": "value",
                "options": {
                    "silent": {"color": "#808080", "index": 0, "text": "silent 不通"},
                    "reporting": {"color": "green", "index": 1, "text": "reporting"},
                },
            }
        ],
    }
    return Dashboard(
        uid="mimamori-alert-map",
        title="Mimamori · Alert map 警戒マップ",
        description="Active alerts by warning level and every device's liveness, on a map.",
        refresh="30s",
        panels=[
            Panel(
                "geomap",
                "Alerts and devices",
                [Query(q.ACTIVE_ALERTS, "table"), Query(q.device_states(o.silence), "table")],
                width=16,
                height=16,
                thresholds=_LEVEL_STEPS,
                options=geomap_options,
                overrides=[{"matcher": {"id": "byName", "options": "liveness"}, "properties": [liveness_colours]}],
            ),
            Panel(
                "table",
                "Active alerts",
                [Query(q.ACTIVE_ALERTS, "table")],
                width=8,
                height=16,
                thresholds=_LEVEL_STEPS,
                overrides=_level_table_overrides("level"),
            ),
            Panel("timeseries", "Alert events", [Query(q.ALERT_EVENTS)], width=24, custom=_bars()),
        ],
    )


def ingest_health(o: DashboardOptions) -> Dashboard:
    return Dashboard(
        uid="mimamori-ingest",
        title="Mimamori · Ingest health",
        description="Readings stored, delay from device to database, dead letters by reason, silent devices.",
        time_from="now-6h",
        refresh="30s",
        panels=[
            Panel(
                "stat",
                "In the range",
                [Query(q.INGEST_TOTALS, "table")],
                width=24,
                height=4,
                options={"reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""}},
            ),
            Panel("timeseries", "Readings stored", [Query(q.READINGS_STORED)], custom=_bars()),
            Panel("timeseries", "Delay from device to database", [Query(q.INGEST_DELAY)], unit="s", custom=_lines()),
            Panel("timeseries", "Dead letters by reason", [Query(q.DEAD_LETTERS_BY_REASON)], custom=_bars()),
            Panel(
                "table",
                "Silent devices",
                [Query(q.silent_devices(o.silence), "table")],
                overrides=[
                    _by_name("silent for", ("unit", "s")),
                    _by_name("expected every", ("unit", "s")),
                ],
                description=f"Active devices with nothing for {o.silence.after_intervals:g} reporting intervals"
                " (a crisis gauge below its observation-start level: a day), by the hub's one rule.",
            ),
            Panel("table", "Recent dead letters", [Query(q.RECENT_DEAD_LETTERS, "table")], width=24, height=10),
        ],
    )


BUILDERS = (rivers, landslides, rainfall, forestry, alert_map, ingest_health)


def build_dashboards(options: DashboardOptions) -> list[Json]:
    """Every dashboard's JSON model, in a stable order."""
    return [build(options).to_json(options.datasource_uid) for build in BUILDERS]
