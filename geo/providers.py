"""Each feature collection's storage behind one registry: a page, one feature, its extent.

Every collection is answered by the package that owns its table: geo/ the stands and areas (``GEO_PROVIDERS``),
devices/ and alerts/ their own. The API puts the registry together (api/collections.py); the OGC router calls only
the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg

from geo import queries
from geo.crs import STORAGE, Crs
from geo.features import COLLECTIONS, Collection, Feature, FeaturePage, FeatureQuery, select_properties
from mimamori.errors import Forbidden, NotFound


def _always(_conn: psycopg.Connection) -> bool:
    return True


@dataclass(frozen=True)
class Provider:
    """One collection's storage: its pages, one feature by id (tenant-confined, in a CRS), the column its extent is
    of, and whether the collection exists yet in this database."""

    page: Callable[[psycopg.Connection, FeatureQuery], FeaturePage]
    one: Callable[[psycopg.Connection, str, str | None, Crs], Feature | None]
    table: str
    geometry: str
    available: Callable[[psycopg.Connection], bool] = _always


GEO_PROVIDERS: dict[str, Provider] = {
    "stands": Provider(
        lambda conn, q: queries.stand_features(conn, q),
        lambda conn, fid, _tenant, crs: queries.stand_feature(conn, fid, crs),
        "stands",
        "geom",
    ),
    "areas": Provider(queries.area_features, queries.area_feature, "areas", "geom"),
}


class Providers:
    """The registry: collection id → its provider, in the order of geo.features.COLLECTIONS."""

    def __init__(self, providers: Mapping[str, Provider]) -> None:
        missing = set(COLLECTIONS) - set(providers)
        if missing:
            raise ValueError(f"no provider for {', '.join(sorted(missing))}")
        self._providers = dict(providers)

    def visible_collections(self, conn: psycopg.Connection, *, partner: bool) -> list[Collection]:
        """The collections a caller may read: partners not the city's stands; each once its table exists."""
        return [
            c
            for c in COLLECTIONS.values()
            if not (partner and not c.partners) and self._providers[c.id].available(conn)
        ]

    def collection_for(self, conn: psycopg.Connection, collection_id: str, *, partner: bool) -> Collection:
        c = COLLECTIONS.get(collection_id)
        if c is None or not self._providers[c.id].available(conn):
            raise NotFound(f"no collection {collection_id!r}")
        if partner and not c.partners:
            raise Forbidden(f"partner keys may not read {collection_id}")
        return c

    def extent(self, conn: psycopg.Connection, c: Collection) -> tuple[float, float, float, float] | None:
        p = self._providers[c.id]
        return queries.layer_extent(conn, p.table, p.geometry)

    def page(self, conn: psycopg.Connection, c: Collection, q: FeatureQuery) -> FeaturePage:
        # Property selection (Part 6) on the page as fetched: the same for every collection, and only a page's.
        return select_properties(self._providers[c.id].page(conn, q), q.properties)

    def feature(
        self, conn: psycopg.Connection, c: Collection, feature_id: str, tenant_id: str | None, crs: Crs = STORAGE
    ) -> Feature:
        found = self._providers[c.id].one(conn, feature_id, tenant_id, crs)
        if found is None:
            raise NotFound(f"no feature {feature_id!r} in {c.id}")
        return found
