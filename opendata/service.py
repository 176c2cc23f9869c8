"""What the open-data routes call: a dataset's table and history for anyone, and publication for the keys that
manage datasets (rules in opendata/rules.py, each change written to the audit log)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from devices.keys import audit
from devices.queries import list_tenants
from devices.series_queries import calendar_buckets
from mimamori.errors import NotFound, ValidationError
from opendata import dcat, queries, snapshot
from opendata.rules import READING_METRIC, Dataset, DatasetDraft, Kind, check_draft, check_manage, check_publish
from opendata.tables import Table, table_of

TZ = "Asia/Tokyo"
BUCKETS = ("day", "month")
# The longest history one request may ask for, per bucket: a bound on the readings one anonymous request reads.
MAX_SPAN = {"day": timedelta(days=366), "month": timedelta(days=366 * 5)}
DEFAULT_SPAN = {"day": timedelta(days=30), "month": timedelta(days=365)}

ITEM_TYPES: dict[Kind, type] = {
    Kind.river_levels: snapshot.RiverGauge,
    Kind.rainfall: snapshot.RainGauge,
    Kind.alerts: snapshot.PublicAlert,
    Kind.stand_summaries: snapshot.StandSummary,
    Kind.evacuation_sites: snapshot.EvacuationSite,
}


def dataset_items(conn: psycopg.Connection, d: Dataset, now: datetime, alert_history: timedelta) -> list[Any]:
    """The dataset's items now (alerts: active, and ended within ``alert_history``)."""
    if d.kind is Kind.river_levels:
        return snapshot.river_gauges(conn, d, now)
    if d.kind is Kind.rainfall:
        return snapshot.rain_gauges(conn, d, now)
    if d.kind is Kind.alerts:
        return snapshot.public_alerts(conn, d, now, alert_history)
    if d.kind is Kind.stand_summaries:
        return snapshot.stands(conn, d)
    return snapshot.evacuation_sites(conn, d)


def dataset_table(conn: psycopg.Connection, d: Dataset, now: datetime, alert_history: timedelta) -> Table:
    return table_of(dataset_items(conn, d, now, alert_history), ITEM_TYPES[d.kind], d)


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    bucket: str
    start: datetime
    end: datetime


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{name} is a date (2026-12-01) or an ISO 8601 time (Japan time without an offset)"
        ) from None
    # a date, or a time without an offset, is Japan's: "2026-11-01" is the first bucket of that day, as it is shown
    return value.replace(tzinfo=ZoneInfo(TZ)) if value.tzinfo is None else value


def history_request(bucket: str | None, start: str | None, end: str | None, now: datetime) -> HistoryRequest:
    """The history a query asks for; ValidationError for a bucket, time or span out of bounds. Pure."""
    bucket = bucket or "day"
    if bucket not in BUCKETS:
        raise ValidationError("bucket is day or month")
    t_end = _instant("end", end) or now
    try:
        t_start = _instant("start", start) or t_end - DEFAULT_SPAN[bucket]
    except OverflowError:  # an end at the very start of the calendar
        raise ValidationError("end is too early") from None
    if t_start >= t_end:
        raise ValidationError("start must be before end")
    if t_end - t_start > MAX_SPAN[bucket]:
        raise ValidationError(f"at most {MAX_SPAN[bucket].days} days of {bucket} buckets in one request")
    return HistoryRequest(bucket, t_start, t_end)


def history(conn: psycopg.Connection, d: Dataset, req: HistoryRequest, now: datetime) -> list[dict[str, Any]]:
    """Per device and calendar day or month (Japan time): count, min, max, mean and sum of the dataset's metric."""
    metric = READING_METRIC.get(d.kind)
    if metric is None:
        raise ValidationError(f"a {d.kind} dataset has no history: only river_levels and rainfall have")
    ids = snapshot.device_ids(conn, d, now)
    rows = calendar_buckets(conn, ids, metric, req.bucket, req.start, req.end, TZ) if ids else []
    return [
        {
            "device_id": r[0],
            "bucket_start": r[1].astimezone(ZoneInfo(TZ)),
            "count": r[2],
            "min": r[3],
            "max": r[4],
            "mean": r[5],
            "sum": r[6],
        }
        for r in rows
    ]


# -- publication -------------------------------------------------------------------------------------------------


def _tenant_kind(conn: psycopg.Connection, tenant_id: str) -> str:
    found = list_tenants(conn, tenant_id)
    if not found:
        raise ValidationError(f"no tenant {tenant_id!r}")
    return found[0].kind


def save(conn: psycopg.Connection, draft: DatasetDraft, role: str, caller_tenant: str, actor: str) -> Dataset:
    """Define or change a dataset (it stays as published or unpublished as it was; a new one is unpublished)."""
    check_manage(role, caller_tenant, draft.tenant_id)
    existing = queries.get_dataset(conn, draft.id)
    if existing is not None:
        check_manage(role, caller_tenant, existing.tenant_id)  # nobody takes over another tenant's dataset id
        if existing.published and existing.tenant_id != draft.tenant_id:
            raise ValidationError("unpublish a dataset before giving it to another tenant")
    clean = check_draft(draft, _tenant_kind(conn, draft.tenant_id))
    with conn.transaction():
        queries.save_dataset(conn, clean)
        audit(conn, actor, "open_dataset.save", clean.id, {"kind": str(clean.kind), "tenant": clean.tenant_id})
    found = queries.get_dataset(conn, clean.id)
    assert found is not None
    return found


def _managed(conn: psycopg.Connection, dataset_id: str, role: str, caller_tenant: str) -> Dataset:
    found = queries.get_dataset(conn, dataset_id)
    # a partner asking for another tenant's dataset learns nothing of it: 404 as for one that does not exist
    if found is None or (role == "partner" and found.tenant_id != caller_tenant):
        raise NotFound(f"no dataset {dataset_id!r}")
    return found


def visible(conn: psycopg.Connection, role: str, caller_tenant: str) -> list[Dataset]:
    return queries.list_datasets(conn, caller_tenant if role == "partner" else None)


def publish(
    conn: psycopg.Connection, dataset_id: str, published: bool, role: str, caller_tenant: str, actor: str
) -> Dataset:
    found = _managed(conn, dataset_id, role, caller_tenant)
    if published:
        check_publish(role, caller_tenant, found.tenant_id, _tenant_kind(conn, found.tenant_id))
    else:
        check_manage(role, caller_tenant, found.tenant_id)
    with conn.transaction():
        queries.set_published(conn, dataset_id, published, actor)
        audit(conn, actor, "open_dataset.publish" if published else "open_dataset.unpublish", dataset_id, {})
    done = queries.get_dataset(conn, dataset_id)
    assert done is not None
    return done


def remove(conn: psycopg.Connection, dataset_id: str, role: str, caller_tenant: str, actor: str) -> None:
    found = _managed(conn, dataset_id, role, caller_tenant)
    check_manage(role, caller_tenant, found.tenant_id)
    with conn.transaction():
        queries.delete_dataset(conn, dataset_id)
        audit(conn, actor, "open_dataset.delete", dataset_id, {})


PLACE_KINDS = (Kind.river_levels, Kind.rainfall, Kind.evacuation_sites)  # kinds whose items are fixed places


def dataset_extents(conn: psycopg.Connection, datasets: Sequence[Dataset], now: datetime) -> dict[str, dcat.Box]:
    """The extent of each dataset's places (its gauges, the evacuation sites), for the catalogue's dct:spatial; none
    for alerts (they come and go) or the register's summaries (no place of their own)."""
    extents: dict[str, dcat.Box] = {}
    for d in datasets:
        if d.kind not in PLACE_KINDS:
            continue
        items: Sequence[Any]
        if d.kind is Kind.river_levels:
            items = snapshot.river_gauges(conn, d, now)
        elif d.kind is Kind.rainfall:
            items = snapshot.rain_gauges(conn, d, now)
        else:
            items = snapshot.evacuation_sites(conn, d)
        box = dcat.extent((i.lon, i.lat) for i in items)
        if box is not None:
            extents[d.id] = box
    return extents


@dataclass(frozen=True, slots=True)
class CatalogInputs:
    datasets: list[Dataset]  # the published ones
    publishers: dict[str, str]  # each tenant's name by its id
    operator: tuple[str, str]  # the operator tenant's id and name, the catalogue's publisher
    extents: dict[str, dcat.Box]  # the extent of a dataset's places, by its id


def catalog_inputs(conn: psycopg.Connection, now: datetime) -> CatalogInputs:
    """What the DCAT catalogue is made of (opendata/dcat.py)."""
    tenants = list_tenants(conn, None)
    names = {t.id: t.name for t in tenants}
    operator = next(((t.id, t.name) for t in tenants if t.kind == "operator"), ("operator", "Mimamori"))
    datasets = queries.published_datasets(conn)
    return CatalogInputs(datasets, names, operator, dataset_extents(conn, datasets, now))
