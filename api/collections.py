"""The feature collections' registry: which package answers each (geo/ stands and areas, devices/ the devices,
alerts/ the alerts), and a device state as a GeoJSON feature."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from alerts.features import alert_feature, alert_features, alerts_table_exists
from devices.queries import StateFilter, count_device_states, device_state, device_states
from devices.records import DeviceState
from devices.silence import SilencePolicy
from geo.crs import STORAGE, Crs
from geo.feature_sql import matched_by_page, within_count_budget
from geo.features import Feature, FeaturePage, FeatureQuery
from geo.providers import GEO_PROVIDERS, Provider, Providers
from geo.reproject import point_in


def device_feature(state: DeviceState, crs: Crs = STORAGE) -> Feature:
    d = state.device
    point = None
    if d.lon is not None and d.lat is not None:
        point = {"type": "Point", "coordinates": point_in(d.lon, d.lat, crs)}  # as ST_AsGeoJSON(…, 7) in CRS84
    return Feature(d.id, point, state.properties())


def _device_provider(policy: SilencePolicy) -> Provider:
    def page(conn: psycopg.Connection, q: FeatureQuery) -> FeaturePage:
        box = (q.bbox.west, q.bbox.south, q.bbox.east, q.bbox.north) if q.bbox else None
        srid = q.bbox.crs.srid if q.bbox else STORAGE.srid
        f = StateFilter(
            q.tenant_id, box, srid, q.start, q.end, q.filters, q.limit, q.offset, order=q.sortby, cql=q.filter
        )
        states, more = device_states(conn, f, policy, datetime.now(UTC))
        matched = None
        if q.count:  # as geo.feature_sql.page counts
            matched = matched_by_page(q, len(states) + (1 if more else 0))
            if matched is None and q.offset == 0:
                matched = within_count_budget(conn, lambda: count_device_states(conn, f))
        return FeaturePage([device_feature(s, q.crs) for s in states], more, matched)

    def one(conn: psycopg.Connection, device_id: str, tenant_id: str | None, crs: Crs) -> Feature | None:
        found = device_state(conn, device_id, tenant_id, policy, datetime.now(UTC))
        return device_feature(found, crs) if found else None

    return Provider(page, one, "devices", "location")


def feature_providers(policy: SilencePolicy) -> Providers:
    return Providers(
        {
            **GEO_PROVIDERS,
            "devices": _device_provider(policy),
            "alerts": Provider(alert_features, alert_feature, "alerts", "location", alerts_table_exists),
        }
    )
