"""Each feature collection's storage: one page, one feature, its extent. The OGC router calls only these."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from geo import queries
from geo.features import COLLECTIONS, Collection, Feature, FeaturePage, FeatureQuery
from mimamori.errors import Forbidden, NotFound

_PAGES: dict[str, Callable[[psycopg.Connection, FeatureQuery], FeaturePage]] = {
    "devices": queries.device_features,
    "stands": lambda conn, q: queries.stand_features(conn, q),
    "areas": queries.area_features,
    "alerts": queries.alert_features,
}
_ONE: dict[str, Callable[[psycopg.Connection, str, str | None], Feature | None]] = {
    "devices": queries.device_feature,
    "stands": lambda conn, fid, _tenant: queries.stand_feature(conn, fid),
    "areas": queries.area_feature,
    "alerts": queries.alert_feature,
}
_EXTENT_COLUMN = {"devices": "location", "stands": "geom", "areas": "geom", "alerts": "location"}


def visible_collections(conn: psycopg.Connection, *, partner: bool) -> list[Collection]:
    """The collections a caller may read: partners not the city's stands; alerts once their table exists."""
    found = []
    for c in COLLECTIONS.values():
        if partner and not c.partners:
            continue
        if c.id == "alerts" and not queries.alerts_table_exists(conn):
            continue
        found.append(c)
    return found


def collection_for(conn: psycopg.Connection, collection_id: str, *, partner: bool) -> Collection:
    c = COLLECTIONS.get(collection_id)
    if c is None or (c.id == "alerts" and not queries.alerts_table_exists(conn)):
        raise NotFound(f"no collection {collection_id!r}")
    if partner and not c.partners:
        raise Forbidden(f"partner keys may not read {collection_id}")
    return c


def extent(conn: psycopg.Connection, c: Collection) -> tuple[float, float, float, float] | None:
    return queries.layer_extent(conn, c.id, _EXTENT_COLUMN[c.id])


def page(conn: psycopg.Connection, c: Collection, q: FeatureQuery) -> FeaturePage:
    return _PAGES[c.id](conn, q)


def feature(conn: psycopg.Connection, c: Collection, feature_id: str, tenant_id: str | None) -> Feature:
    found = _ONE[c.id](conn, feature_id, tenant_id)
    if found is None:
        raise NotFound(f"no feature {feature_id!r} in {c.id}")
    return found
