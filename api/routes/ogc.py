"""OGC API – Features at /ogc: landing page, conformance, collections, their queryables and schemas, items and
single features.

Readable by GDAL's OAPIF driver and QGIS (send the API key as an X-API-Key or Authorization: Bearer header), and
by people in a web browser: the pages answer HTML to ``f=html`` or a browser's Accept header (api/ogc_html.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool

from api import ogc, ogc_html
from api.auth import Authenticated
from api.deps import get_pool
from api.responses import JSONResponse
from devices.keys import Role
from geo import Collection
from geo.crs import Crs
from geo.features import select_feature_properties
from geo.providers import Providers
from mimamori.db import reading
from mimamori.errors import ValidationError
from mimamori.settings import Settings

router = APIRouter(prefix="/ogc", tags=["OGC API Features"], route_class=ogc_html.NegotiatedRoute)


def _providers(request: Request) -> Providers:
    providers: Providers = request.app.state.feature_providers
    return providers


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _invalid(exc: ValidationError) -> JSONResponse:
    # OGC API exception body; Part 1 wants 400 for bad parameters.
    return JSONResponse({"code": "InvalidParameterValue", "description": str(exc)}, status_code=400)


# Each page answers JSON or, negotiated (f=html, a browser's Accept), HTML.
_JSON_OR_HTML: dict[int | str, dict[str, Any]] = {200: {"content": {ogc.JSON: {}, **ogc_html.HTML_CONTENT}}}


@router.get("", summary="Landing page", responses=_JSON_OR_HTML)
async def landing(request: Request) -> Response:
    return ogc_html.respond(request, ogc.landing(_base(request)), "landing")


@router.get("/conformance", summary="Conformance classes", responses=_JSON_OR_HTML)
async def conformance(request: Request) -> Response:
    return ogc_html.respond(request, ogc.conformance_document(_base(request)), "conformance")


@router.get("/collections", summary="The feature collections the caller may read", responses=_JSON_OR_HTML)
async def collections(
    request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    providers = _providers(request)

    def query() -> list[dict[str, object]]:
        with reading(pool) as conn:
            found = providers.visible_collections(conn, partner=who.role is Role.partner)
            return [ogc.collection_document(_base(request), c, providers.extent(conn, c)) for c in found]

    doc = ogc.collections_document(_base(request), await run_in_threadpool(query))
    return ogc_html.respond(request, doc, "collections")


@router.get("/collections/{collection_id}", summary="One collection", responses=_JSON_OR_HTML)
async def collection(
    collection_id: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    providers = _providers(request)

    def query() -> dict[str, object]:
        with reading(pool) as conn:
            c = providers.collection_for(conn, collection_id, partner=who.role is Role.partner)
            return ogc.collection_document(_base(request), c, providers.extent(conn, c))

    return ogc_html.respond(request, await run_in_threadpool(query), "collection")


def _collection_schema(
    summary: str, build: Callable[[str, Collection], dict[str, object]], path: str
) -> Callable[..., Coroutine[Any, Any, JSONResponse]]:
    """A route answering one of a collection's JSON Schemas (application/schema+json)."""

    @router.get(
        f"/collections/{{collection_id}}/{path}",
        summary=summary,
        responses={200: {"content": {ogc.SCHEMA_JSON: {}}}},
        name=f"collection_{path.replace('-', '_')}",
    )
    async def schema(
        collection_id: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
    ) -> JSONResponse:
        providers = _providers(request)

        def query() -> dict[str, object]:
            with reading(pool) as conn:
                c = providers.collection_for(conn, collection_id, partner=who.role is Role.partner)
            return build(_base(request), c)

        return JSONResponse(await run_in_threadpool(query), media_type=ogc.SCHEMA_JSON)

    return schema


queryables = _collection_schema(
    "The collection's queryables (OGC API – Features Part 3): its geometry and the properties its items take as"
    " parameters, as a JSON Schema",
    ogc.queryables_document,
    "queryables",
)
collection_schema = _collection_schema(
    "The schema of the collection's features (OGC API – Features Part 5 style): every property with its type",
    ogc.schema_document,
    "schema",
)
sortables = _collection_schema(
    "The collection's sortables (OGC API – Features Part 8, draft): the properties its items take in sortby, as a"
    " JSON Schema",
    ogc.sortables_document,
    "sortables",
)
feature_schema = _collection_schema(
    "JSON Schema of one GeoJSON feature of the collection (its `describedBy` link, which GDAL types fields from)",
    ogc.feature_schema_document,
    "feature-schema",
)


@router.get(
    "/collections/{collection_id}/items",
    summary="Features, filtered by bbox, datetime and the collection's queryable properties",
    description="Parameters: bbox=minlon,minlat,maxlon,maxlat; limit; offset; datetime (instant or a/b, ../b, a/..);"
    " crs (the CRS of the answer: CRS84, EPSG:4326, 6668, 3857 or a JGD2011 plane zone 6669–6687, as"
    " http://www.opengis.net/def/crs/EPSG/0/<code>; the body's CRS is in the Content-Crs header) and bbox-crs (the"
    " CRS bbox is given in, in that CRS's axis order); and per collection: devices device_type, status, tenant_id;"
    " stands species_1, forest_type, ownership, rinpan, age_class, density; areas kind; alerts status…"
    " (see /ogc/collections). Paging follows the `next` link."
    " sortby=name,-name2 sorts by the collection's sortables (`/sortables`; `-` descending, nulls last ascending and"
    " first descending, ties by the collection's own order and id); properties=a,b returns only those properties"
    " (id and geometry always; a device's metrics and an area's own properties may be named too).",
    responses={
        200: {"content": {ogc.GEOJSON: {}, **ogc_html.HTML_CONTENT}},
        400: {"description": "A bad parameter"},
    },
)
async def items(
    collection_id: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    settings: Settings = request.app.state.settings
    params = dict(request.query_params)
    tenant = None if who.sees_all_tenants else who.tenant_id
    providers = _providers(request)

    def query() -> tuple[dict[str, Any], Crs]:
        with reading(pool) as conn:
            c = providers.collection_for(conn, collection_id, partner=who.role is Role.partner)
            q = ogc.parse_items_query(
                params,
                c,
                default_limit=settings.ogc_default_limit,
                max_limit=settings.ogc_max_limit,
                tenant_id=tenant,
            )
            page = providers.page(conn, c, q)
        return ogc.items_document(_base(request), c, q, page, params, datetime.now(UTC)), q.crs

    try:
        body, crs = await run_in_threadpool(query)
    except ValidationError as exc:
        return _invalid(exc)
    # Part 3 (/req/queryables/queryables-link): the filterable resource names its queryables in a Link header.
    queryables_href = f"{_base(request)}/ogc/collections/{collection_id}/queryables"
    link = f'<{queryables_href}>; rel="{ogc.REL_QUERYABLES}"; type="{ogc.SCHEMA_JSON}"'
    headers = {"Link": link, **ogc.content_crs(crs)}
    return ogc_html.respond(request, body, "items", media_type=ogc.GEOJSON, headers=headers)


@router.get(
    "/collections/{collection_id}/items/{feature_id}",
    summary="One feature",
    description="Parameters: crs, the CRS of the answer (as for items; the Content-Crs header names it), and"
    " properties=a,b, only those properties (as for items).",
    responses={
        200: {"content": {ogc.GEOJSON: {}, **ogc_html.HTML_CONTENT}},
        404: {"description": "No such feature (or not the caller's)"},
    },
)
async def item(
    collection_id: str,
    feature_id: str,
    request: Request,
    who: Authenticated,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
) -> Response:
    tenant = None if who.sees_all_tenants else who.tenant_id
    providers = _providers(request)
    params = dict(request.query_params)

    def query() -> tuple[dict[str, object], Crs]:
        with reading(pool) as conn:
            c = providers.collection_for(conn, collection_id, partner=who.role is Role.partner)
            crs, properties = ogc.parse_item_query(params, c)
            found = select_feature_properties(providers.feature(conn, c, feature_id, tenant, crs), properties)
        return ogc.item_document(_base(request), c, found.as_geojson(), feature_id), crs

    try:
        body, crs = await run_in_threadpool(query)
    except ValidationError as exc:
        return _invalid(exc)
    return ogc_html.respond(request, body, "item", media_type=ogc.GEOJSON, headers=ogc.content_crs(crs))
