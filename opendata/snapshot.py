"""What the public may see now, as frozen values: the citizens' page renders from :func:`public_snapshot`, the open
API's ``/latest`` and downloads from the per-dataset readers below.

Only published datasets (``open_datasets``) are read; each item carries the :class:`Source` it came from (its
dataset, licence and attribution), so whoever shows it can credit it. Device data is read through devices/' one read
model (device states), alerts through alerts/' store, the register through geo/; nothing else of a device (its
metadata, its owner's keys) leaves here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg

import alerts
from devices import SilencePolicy, StateFilter, device_states, metric_specs
from devices.records import DeviceState
from geo import load_sites, stand_summaries
from opendata import queries
from opendata.rules import READING_METRIC, Dataset, Kind, warning_level

ACTIVE_STATES = ["open", "acknowledged"]
ENDED_STATES = ["resolved", "closed"]
MAX_DEVICES = 10_000  # per dataset: a bound on one answer, far above a city's gauges
MAX_ALERTS = 1000
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Source:
    """The published dataset an item comes from, and how to credit it."""

    dataset_id: str  # open_datasets.id, e.g. "toyota-river-levels"
    tenant_id: str  # whose data it is
    licence: str  # SPDX-style id, e.g. "CC-BY-4.0" (opendata.rules.LICENCES)
    licence_url: str  # the licence's deed, e.g. "https://creativecommons.org/licenses/by/4.0/"
    attribution: str  # the credit line to show beside the data, e.g. "豊田市 / Toyota City"


def credit(source: Source) -> dict[str, str]:
    """The licence and attribution members every answer carries."""
    return {"licence": source.licence, "licence_url": source.licence_url, "attribution": source.attribution}


def source_of(d: Dataset) -> Source:
    return Source(d.id, d.tenant_id, d.licence, d.licence_url, d.attribution)


@dataclass(frozen=True, slots=True)
class RiverGauge:
    """A river water-level gauge (水位計) of a published ``river_levels`` dataset, as it is now."""

    id: str  # device id
    name: str  # the device's name ("" when the registry has none)
    river: str | None  # site metadata "river", e.g. "矢作川"
    lon: float | None  # WGS 84 (EPSG:4326) degrees; None for a device with no location
    lat: float | None
    water_level_m: float | None  # newest water_level reading, metres above the gauge's zero point; None: none yet
    observed_at: datetime | None  # that reading's time (timezone-aware, UTC)
    warning_level: int | None  # 0-4: the national ladder step the level reached by the gauge's own thresholds
    # (standby_m 1, caution_m 2, evacuation_m 3, danger_m 4); 0: below them all; None: no reading
    warning_level_key: str | None  # the same step as the key of alerts/levels.yaml ("0"-"4": colors, "1"-"4": names)
    warning_level_ja: (
        str | None
    )  # levels.yaml's Japanese name of the step, e.g. "警戒レベル2"; None for 0 or no reading
    warning_level_en: str | None  # its English name, e.g. "Level 2: caution"
    source: Source


@dataclass(frozen=True, slots=True)
class RainGauge:
    """A rain gauge (雨量計, or a weather station: any type with a rainfall metric) of a ``rainfall`` dataset."""

    id: str
    name: str
    lon: float | None
    lat: float | None
    rainfall_mm: float | None  # the newest rainfall reading: millimetres in the device's reporting interval
    observed_at: datetime | None  # that reading's time (UTC)
    source: Source


@dataclass(frozen=True, slots=True)
class PublicAlert:
    """An alert of a published ``alerts`` dataset."""

    id: int  # the alert's id; its CAP 1.2 document is at ``cap_path``
    hazard: str  # flood, rain, landslide, sediment, equipment, other
    level: int  # 1-5, the national warning level (警戒レベル)
    level_ja: str  # levels.yaml's name of the level, e.g. "警戒レベル3 高齢者等避難"
    level_en: str  # e.g. "Level 3: evacuate the elderly"
    state: str  # open or acknowledged (active); resolved or closed (ended, in /latest's recent history only)
    title_ja: str  # may be "" when the rule gave no Japanese title
    title_en: str
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    lon: float | None  # the alert's point (the device's place), WGS 84; None for an area-only alert
    lat: float | None
    area: dict[str, Any] | None  # the affected area as a GeoJSON geometry (WGS 84), or None
    cap_path: str  # "/open/alerts/{id}/cap": the newest CAP message, served without a key
    source: Source


@dataclass(frozen=True, slots=True)
class EvacuationSite:
    """A designated evacuation site or shelter (指定緊急避難場所 / 指定避難所), table evacuation_sites."""

    id: str
    kind: str
    name: str
    name_kana: str | None
    name_en: str | None
    address: str | None
    phone: str | None
    hazards: tuple[str, ...]  # the hazards the site is designated for
    capacity: int | None
    elevation_m: float | None
    lon: float | None
    lat: float | None
    source: Source


@dataclass(frozen=True, slots=True)
class StandSummary:
    """The forest register in aggregate: one compartment (林班) and first species. No single stand's data."""

    compartment: int  # 林班
    species: str  # 樹種1 as the register writes it; "" when unknown
    stands: int
    area_ha: float
    volume_m3: float
    source: Source


@dataclass(frozen=True, slots=True)
class PublicSnapshot:
    """Everything public now, gathered in one read; each item names its source dataset.

    ``alerts`` holds active alerts only (open or acknowledged), highest level first. ``evacuation_sites`` is empty
    unless an ``evacuation_sites`` dataset is published and the table exists. Gauges are ordered by id.
    """

    generated_at: datetime  # the ``now`` passed in
    datasets: tuple[Dataset, ...]  # every published dataset, by id
    river_gauges: tuple[RiverGauge, ...]
    rain_gauges: tuple[RainGauge, ...]
    alerts: tuple[PublicAlert, ...]
    evacuation_sites: tuple[EvacuationSite, ...]


# -- readers, one per kind -------------------------------------------------------------------------------------


def _types_with(conn: psycopg.Connection, metric: str) -> list[str]:
    """The device types whose catalogue metrics include ``metric`` (the catalogue is the only source of types)."""
    return sorted(t for t, metrics in metric_specs(conn).items() if metric in metrics)


def _states(conn: psycopg.Connection, d: Dataset, now: datetime) -> list[DeviceState]:
    found: list[DeviceState] = []
    for device_type in _types_with(conn, READING_METRIC[d.kind]):
        flt = StateFilter(
            tenant_id=d.tenant_id, equals={"device_type": device_type, "status": "active"}, limit=MAX_DEVICES
        )
        found += device_states(conn, flt, SilencePolicy(), now)[0]
    return sorted(found, key=lambda s: s.device.id)


def device_ids(conn: psycopg.Connection, d: Dataset, now: datetime) -> list[str]:
    """The ids of the devices a reading dataset opens."""
    return [s.device.id for s in _states(conn, d, now)]


def _level_names(level: int | None) -> tuple[str | None, str | None]:
    names = alerts.level_table().levels.get(level) if level else None
    return (names["ja"], names["en"]) if names else (None, None)


def river_gauges(conn: psycopg.Connection, d: Dataset, now: datetime) -> list[RiverGauge]:
    out = []
    for s in _states(conn, d, now):
        latest = s.latest.get("water_level")
        value = latest[1] if latest else None
        step = warning_level(value, s.device.metadata)
        ja, en = _level_names(step)
        river = s.device.metadata.get("river")
        out.append(
            RiverGauge(
                id=s.device.id,
                name=s.device.name,
                river=river if isinstance(river, str) else None,
                lon=s.device.lon,
                lat=s.device.lat,
                water_level_m=value,
                observed_at=latest[0] if latest else None,
                warning_level=step,
                warning_level_key=None if step is None else str(step),
                warning_level_ja=ja,
                warning_level_en=en,
                source=source_of(d),
            )
        )
    return out


def rain_gauges(conn: psycopg.Connection, d: Dataset, now: datetime) -> list[RainGauge]:
    out = []
    for s in _states(conn, d, now):
        latest = s.latest.get("rainfall")
        out.append(
            RainGauge(
                id=s.device.id,
                name=s.device.name,
                lon=s.device.lon,
                lat=s.device.lat,
                rainfall_mm=latest[1] if latest else None,
                observed_at=latest[0] if latest else None,
                source=source_of(d),
            )
        )
    return out


def _public_alert(row: dict[str, Any], d: Dataset) -> PublicAlert:
    ja, en = _level_names(int(row["level"]))
    point = row.get("location") or {}
    lon, lat = (point.get("coordinates") or [None, None])[:2]
    return PublicAlert(
        id=int(row["id"]),
        hazard=row["hazard"],
        level=int(row["level"]),
        level_ja=ja or "",
        level_en=en or "",
        state=row["state"],
        title_ja=row["title_ja"] or "",
        title_en=row["title_en"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
        lon=lon,
        lat=lat,
        area=row.get("area"),
        cap_path=f"/open/alerts/{row['id']}/cap",
        source=source_of(d),
    )


def public_alerts(
    conn: psycopg.Connection, d: Dataset, now: datetime, history: timedelta = timedelta(0)
) -> list[PublicAlert]:
    """The dataset's tenant's active alerts, and (with ``history``) those that ended within it."""
    rows = alerts.list_alerts(conn, alerts.AlertFilter(states=ACTIVE_STATES, limit=MAX_ALERTS), d.tenant_id)
    if history > timedelta(0):
        cutoff = now - history
        ended = alerts.AlertFilter(states=ENDED_STATES, since=cutoff, limit=MAX_ALERTS)
        rows += [
            r
            for r in alerts.list_alerts(conn, ended, d.tenant_id)
            if r["resolved_at"] is not None and r["resolved_at"] >= cutoff
        ]
    return [_public_alert(r, d) for r in rows]


def public_alert(conn: psycopg.Connection, alert_id: int) -> dict[str, Any] | None:
    """An alert's row when a published ``alerts`` dataset of its tenant opens it, else None."""
    for d in queries.published_datasets(conn, Kind.alerts):
        row = alerts.get_alert(conn, alert_id, d.tenant_id)
        if row is not None:
            return row
    return None


def evacuation_sites(conn: psycopg.Connection, d: Dataset) -> list[EvacuationSite]:
    """The sites of table evacuation_sites (geo/'s, migration 0063), read by geo; [] where the table is not there."""
    if not queries.evacuation_sites_exist(conn):
        return []
    return [
        EvacuationSite(
            id=s.id,
            kind=s.kind,
            name=s.name,
            name_kana=s.name_kana,
            name_en=s.name_en,
            address=s.address,
            phone=s.phone,
            hazards=tuple(s.hazards),
            capacity=s.capacity,
            elevation_m=s.elevation_m,
            lon=s.lon,
            lat=s.lat,
            source=source_of(d),
        )
        for s in load_sites(conn)
    ]


def stands(conn: psycopg.Connection, d: Dataset) -> list[StandSummary]:
    return [StandSummary(*r, source=source_of(d)) for r in stand_summaries(conn)]


def active_public_alerts(conn: psycopg.Connection, now: datetime) -> list[PublicAlert]:
    """The active alerts of every published alerts dataset, highest level first, then the newest change."""
    found: list[PublicAlert] = []
    for d in queries.published_datasets(conn, Kind.alerts):
        found += public_alerts(conn, d, now)
    active = list(_first_by_id(found).values())
    active.sort(key=lambda a: (-a.level, -a.updated_at.timestamp(), -a.id))
    return active


def public_snapshot(conn: psycopg.Connection, now: datetime) -> PublicSnapshot:
    """Everything public now: the items of every published dataset (river, rain, active alerts, evacuation sites)."""
    datasets = queries.published_datasets(conn)
    river: list[RiverGauge] = []
    rain: list[RainGauge] = []
    sites: list[EvacuationSite] = []
    for d in datasets:
        if d.kind is Kind.river_levels:
            river += river_gauges(conn, d, now)
        elif d.kind is Kind.rainfall:
            rain += rain_gauges(conn, d, now)
        elif d.kind is Kind.evacuation_sites:
            sites += evacuation_sites(conn, d)
    return PublicSnapshot(
        generated_at=now,
        datasets=tuple(datasets),
        river_gauges=tuple(sorted(_first_by_id(river).values(), key=lambda g: g.id)),
        rain_gauges=tuple(sorted(_first_by_id(rain).values(), key=lambda g: g.id)),
        alerts=tuple(active_public_alerts(conn, now)),
        evacuation_sites=tuple(sorted(_first_by_id(sites).values(), key=lambda s: s.id)),
    )


def _first_by_id(items: list[_T]) -> dict[Any, _T]:
    """One item per id (two published datasets of one tenant and kind open the same items): the first dataset's."""
    out: dict[Any, _T] = {}
    for item in items:
        out.setdefault(item.id, item)  # type: ignore[attr-defined]
    return out
