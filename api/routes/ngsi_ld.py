"""NGSI-LD (ETSI GS CIM 009) at /ngsi-ld/v1: entities, one entity, the temporal API and the hub's @context.

Thin: parameters are parsed by api/ngsi_ld (pure), entities read through the feature providers (the store the OGC
API reads, tenant-confined by its owners) and series through devices/series.py (the native API's buckets). Every
refusal is a ProblemDetails with NGSI-LD's error type URI.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

import psycopg
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from psycopg_pool import ConnectionPool
from starlette.exceptions import HTTPException

import alerts
from api.auth import Authenticated, require
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.ngsi_ld import geoquery, model, qlang, subscriptions, temporal
from api.ngsi_ld.problems import (
    FORBIDDEN,
    NOT_ACCEPTABLE,
    TOO_MANY_RESULTS,
    UNAUTHORIZED,
    NgsiLdError,
    bad_request,
    not_found,
    not_supported,
)
from api.responses import JSONResponse
from devices import LATEST_PREFIX, metric_specs
from devices.keys import Principal, Role
from devices.series import read_series
from devices.series_plan import plan
from geo import FeatureQuery
from geo.providers import Providers
from mimamori.db import reading
from mimamori.errors import Forbidden, NotFound, ValidationError
from mimamori.migrate import storage_mode
from mimamori.settings import Settings

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
MAX_WINDOW = 10_000  # offset + limit over several types, which are read from the start and merged
MAX_TEMPORAL_ENTITIES = 100
MAX_IDS = 100


def _problem(exc: NgsiLdError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=dict(headers or {}))


class NgsiLdRoute(StrictJSONRoute):
    """Every answer of the router's routes, the refusals of the key check and of parameter validation among them,
    as NGSI-LD's ProblemDetails; bodies parsed strictly, as on every route (api/bodies.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except NgsiLdError as exc:
                return _problem(exc)
            except RequestValidationError as exc:
                where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
                return _problem(bad_request(where or "bad parameters"))
            except ValidationError as exc:
                return _problem(bad_request(str(exc)))
            except NotFound as exc:
                return _problem(not_found(str(exc)))
            except Forbidden as exc:
                return _problem(NgsiLdError(403, FORBIDDEN, str(exc)))
            except HTTPException as exc:
                kind = {401: UNAUTHORIZED, 403: FORBIDDEN}.get(exc.status_code, model.SDM)
                if kind == model.SDM:
                    raise
                return _problem(NgsiLdError(exc.status_code, kind, str(exc.detail)), exc.headers)

        return answer


BASE_PATH = "/ngsi-ld/v1"
router = APIRouter(prefix=BASE_PATH, tags=["NGSI-LD"], route_class=NgsiLdRoute)

_ENTITY_CONTENT = {model.JSON: {}, model.JSONLD: {}, model.GEOJSON: {}}
_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "ProblemDetails (BadRequestData): a malformed q, geo-query, attrs or type"},
    404: {"description": "ProblemDetails (ResourceNotFound)"},
    406: {"description": "ProblemDetails: none of the Accept header's media types is served"},
}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _context_url(request: Request) -> str:
    return _base(request) + model.CONTEXT_PATH


def _link(request: Request) -> str:
    return f'<{_context_url(request)}>; rel="{model.CONTEXT_REL}"; type="{model.JSONLD}"'


def negotiate(accept: str | None, *, geo: bool) -> str:
    """The media type to answer: application/json unless the Accept header prefers ld+json (or geo+json)."""
    offered = [model.JSON, model.JSONLD, *([model.GEOJSON] if geo else [])]
    if not accept or not accept.strip():
        return model.JSON
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        weight = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    weight = float(p[2:])
                except ValueError:
                    weight = 0.0
        ranked.append((-weight, position, media.lower()))
    for neg_weight, _, media in sorted(ranked):
        if neg_weight >= 0:
            continue
        if media in offered:
            return media
        if media in ("*/*", "application/*"):
            return model.JSON
    raise NgsiLdError(406, NOT_ACCEPTABLE, f"this resource is served as {', '.join(offered)}")


def _respond(request: Request, media: str, body: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    out = dict(headers or {})
    if media in (model.JSON, model.GEOJSON):  # JSON-LD carries its @context in the body
        out["Link"] = _link(request)
    return JSONResponse(body, media_type=media, headers=out)


def _with_context(request: Request, media: str, entity: dict[str, Any]) -> dict[str, Any]:
    if media == model.JSONLD:
        return {**entity, "@context": [_context_url(request)]}
    return entity


def _tenant(request: Request, who: Principal) -> str | None:
    """The tenant the caller's answers are confined to; NGSILD-Tenant may name the caller's own, or (for the city's
    roles, which see every tenant) any one of them."""
    named = request.headers.get("NGSILD-Tenant")
    if who.sees_all_tenants:
        return named or None
    if named and named != who.tenant_id:
        raise NgsiLdError(403, FORBIDDEN, f"this key reads tenant {who.tenant_id} only")
    return who.tenant_id


def _providers(request: Request) -> Providers:
    providers: Providers = request.app.state.feature_providers
    return providers


def _units(conn: psycopg.Connection) -> dict[str, dict[str, str]]:
    return {t: {m: spec.unit for m, spec in metrics.items()} for t, metrics in metric_specs(conn).items()}


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.strip().isdigit():
        raise bad_request(f"{name} must be a whole number of at least 0")
    return int(text)


def _geo_params(params: Mapping[str, str]) -> dict[str, str]:
    """georel, geometry, coordinates and geoproperty, given each as itself or together in one geoQ (as some clients
    send them)."""
    out = {k: params[k] for k in geoquery.GEO_PARAMETERS if k in params}
    if "geoQ" in params:
        inner = dict(parse_qsl(params["geoQ"], keep_blank_values=True))
        unknown = set(inner) - set(geoquery.GEO_PARAMETERS)
        if unknown:
            raise bad_request(f"geoQ takes {', '.join(geoquery.GEO_PARAMETERS)}, not {', '.join(sorted(unknown))}")
        out.update(inner)
    return out


@dataclass(frozen=True)
class _Query:
    types: list[model.EntityType]
    ids: list[str]
    q: qlang.Query | None
    geo: dict[str, Any] | None  # cql2-json
    attrs: list[str] | None
    selection_key_values: bool
    limit: int
    offset: int
    count: bool


def _parse_query(params: Mapping[str, str], *, needs_selector: bool = True) -> _Query:
    ids = [i.strip() for i in params["id"].split(",") if i.strip()] if "id" in params else []
    if len(ids) > MAX_IDS:
        raise bad_request(f"at most {MAX_IDS} ids a request")
    if "idPattern" in params:
        raise not_supported("idPattern is not supported")
    for unsupported in ("csf", "scopeQ", "pick", "omit", "lang"):
        if unsupported in params:
            raise not_supported(f"{unsupported} is not supported")
    if "type" in params:
        types = model.parse_types(params["type"])
    elif ids:
        types = []
        for urn in ids:
            t, _ = model.split_urn(urn)
            if t not in types:
                types.append(t)
    elif needs_selector:
        raise bad_request("give type (Device, Alert, ForestStand) or id")
    else:
        types = list(model.TYPES.values())
    for urn in ids:
        t, _ = model.split_urn(urn)
        if t not in types:
            raise bad_request(f"{urn} is not of the requested type(s)")
    q = qlang.parse_q(params["q"]) if "q" in params else None
    geo = geoquery.parse_geoq(_geo_params(params))
    if ids and (q is not None or geo is not None):
        raise not_supported("id goes without q and geo-queries here: ask for the ids, or query by type")
    attrs = [a.strip() for a in params["attrs"].split(",") if a.strip()] if "attrs" in params else None
    options = {o.strip() for o in params.get("options", "").split(",") if o.strip()}
    key_values = "keyValues" in options or params.get("format") == "keyValues"
    limit = _int(params, "limit", DEFAULT_LIMIT)
    offset = _int(params, "offset", 0)
    count = params.get("count", "false") == "true" or "count" in options
    if limit > MAX_LIMIT:
        raise NgsiLdError(403, TOO_MANY_RESULTS, f"limit must be at most {MAX_LIMIT}")
    if limit == 0 and not count:
        raise bad_request("limit=0 goes with count=true")
    if offset + limit > MAX_WINDOW and len(types) > 1:
        raise NgsiLdError(403, TOO_MANY_RESULTS, f"over several types, offset + limit must be at most {MAX_WINDOW}")
    return _Query(types, ids, q, geo, attrs, key_values, limit, offset, count)


def _queryable(t: model.EntityType, metrics: set[str]) -> Mapping[str, qlang.Attribute]:
    """What q may name of a type: its attributes, and a Device's measurements (their latest values)."""
    if t is not model.DEVICE:
        return t.attributes
    return {**{m: qlang.Attribute(LATEST_PREFIX + m, "number") for m in sorted(metrics)}, **t.attributes}


def _filters(query: _Query, metrics: set[str]) -> dict[str, dict[str, Any] | None]:
    """Per type name, the cql2-json filter of q and the geo-query; a type lacking an attribute q names is left out
    (none of its entities match) unless it is the only one asked for: then q is a 400."""
    filters: dict[str, dict[str, Any] | None] = {}
    problem: NgsiLdError | None = None
    for t in query.types:
        parts: list[Any] = []
        if query.q is not None:
            try:
                parts.append(qlang.to_cql2(query.q, _queryable(t, metrics), t.name))
            except NgsiLdError as exc:
                if len(query.types) == 1 or exc.status != 400:
                    raise
                problem = problem or exc
                continue
        if query.geo is not None:
            parts.append(query.geo)
        filters[t.name] = None if not parts else parts[0] if len(parts) == 1 else {"op": "and", "args": parts}
    if not filters and problem is not None:
        raise problem
    return filters


def _fetch(
    request: Request, who: Principal, conn: psycopg.Connection, query: _Query, metrics: set[str]
) -> tuple[list[tuple[model.EntityType, dict[str, Any]]], int | None]:
    """The page of features the query asks for, with each one's type, and how many match (when asked)."""
    providers = _providers(request)
    tenant = _tenant(request, who)
    partner = who.role is Role.partner
    if query.ids:
        found: list[tuple[model.EntityType, dict[str, Any]]] = []
        for urn in query.ids:
            t, local = model.split_urn(urn)
            c = providers.collection_for(conn, t.collection, partner=partner)
            try:
                feature = providers.feature(conn, c, local, tenant)
            except NotFound:
                continue
            found.append((t, feature.as_geojson()))
        window = found[query.offset : query.offset + query.limit]
        return window, len(found) if query.count else None
    filters = _filters(query, metrics)
    single = len(filters) == 1
    rows: list[tuple[model.EntityType, dict[str, Any]]] = []
    total: int | None = 0
    for t in query.types:
        if t.name not in filters:
            continue
        c = providers.collection_for(conn, t.collection, partner=partner)
        fq = FeatureQuery(
            limit=max(query.limit, 1) if single else query.offset + query.limit,
            offset=query.offset if single else 0,
            tenant_id=tenant,
            count=query.count,
            filter=filters[t.name],
        )
        try:
            page = providers.page(conn, c, fq)
        except psycopg.errors.DataError as exc:
            raise bad_request(f"the query cannot be evaluated: {exc.diag.message_primary}") from None
        rows += [(t, f.as_geojson()) for f in page.features]
        if total is not None:
            total = None if page.matched is None else total + page.matched
    if not single:
        rows = rows[query.offset : query.offset + query.limit]
    elif query.limit == 0:
        rows = []
    return rows, total if query.count else None


@router.get(
    "/entities",
    summary="Query entities (Device, Alert, ForestStand) by type, id, q, geo-query and attrs",
    description="Parameters: type (Device, Alert, ForestStand; comma-separated for several), id (URNs), attrs, q"
    " (NGSI-LD query language), georel (near;maxDistance==<m>, near;minDistance==<m>, within, contains,"
    " intersects, equals, disjoint, overlaps) with geometry and coordinates (or all in geoQ), limit (default 20,"
    " at most 1000), offset, count=true (NGSILD-Results-Count), options=keyValues. Answers application/json with"
    " the @context in a Link header, application/ld+json with it in the body, or application/geo+json.",
    responses={200: {"content": _ENTITY_CONTENT}, **_PROBLEMS},
)
async def query_entities(
    request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    media = negotiate(request.headers.get("accept"), geo=True)
    params = dict(request.query_params)
    query = _parse_query(params)

    def run() -> tuple[list[dict[str, Any]], int | None]:
        with reading(pool) as conn:
            units = _units(conn)
            selection = model.Selection(
                model.check_attrs(query.attrs, query.types, _metrics(units)) if query.attrs is not None else None,
                query.selection_key_values,
            )
            rows, total = _fetch(request, who, conn, query, _metrics(units))
        return [model.render(t, f, selection, units) for t, f in rows], total

    entities, total = await run_in_threadpool(run)
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    if media == model.GEOJSON:
        body: Any = {
            "type": "FeatureCollection",
            "features": [model.geojson_feature(e, None) for e in entities],
            "@context": _context_url(request),
        }
    else:
        body = [_with_context(request, media, e) for e in entities]
    return _respond(request, media, body, headers)


def _metrics(units: Mapping[str, Mapping[str, str]]) -> set[str]:
    return {m for metrics in units.values() for m in metrics}


@router.get(
    "/entities/{entity_id}",
    summary="One entity by its URN (urn:ngsi-ld:Device:<id>, urn:ngsi-ld:Alert:<id>, urn:ngsi-ld:ForestStand:<id>)",
    description="Parameters: attrs, options=keyValues. Media types as for /entities.",
    responses={200: {"content": _ENTITY_CONTENT}, **_PROBLEMS},
)
async def retrieve_entity(
    entity_id: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    media = negotiate(request.headers.get("accept"), geo=True)
    params = dict(request.query_params)
    t, local = model.split_urn(entity_id)
    options = {o.strip() for o in params.get("options", "").split(",") if o.strip()}

    def run() -> dict[str, Any]:
        with reading(pool) as conn:
            units = _units(conn)
            attrs = None
            if "attrs" in params:
                names = params["attrs"].split(",")
                attrs = model.check_attrs(names, [t], _metrics(units))
            providers = _providers(request)
            c = providers.collection_for(conn, t.collection, partner=who.role is Role.partner)
            try:
                feature = providers.feature(conn, c, local, _tenant(request, who))
            except NotFound:
                raise not_found(f"no entity {entity_id}") from None
        selection = model.Selection(attrs, "keyValues" in options or params.get("format") == "keyValues")
        return model.render(t, feature.as_geojson(), selection, units)

    entity = await run_in_threadpool(run)
    if media == model.GEOJSON:
        return _respond(request, media, model.geojson_feature(entity, _context_url(request)))
    return _respond(request, media, _with_context(request, media, entity))


@router.get(
    "/jsonldContexts/mimamori.jsonld",
    summary="The hub's @context (served by the hub itself: nothing to fetch from elsewhere)",
    responses={200: {"content": {model.JSONLD: {}}}},
)
async def context(request: Request) -> Response:
    return JSONResponse(
        model.context_document(_base(request)),
        media_type=model.JSONLD,
        headers={"Cache-Control": "public, max-age=86400"},
    )


# -- the temporal API ------------------------------------------------------------------------------------------------


def _storage_mode(request: Request, conn: psycopg.Connection) -> str:
    mode = getattr(request.app.state, "storage_mode", None)
    if mode is None:
        mode = storage_mode(conn) or "plain"
        request.app.state.storage_mode = mode
    return str(mode)


def _temporal_entity(
    request: Request,
    conn: psycopg.Connection,
    tenant: str | None,
    device_id: str,
    device_type: str,
    tq: temporal.TemporalQuery,
    attrs: frozenset[str] | None,
    units: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    origin = datetime.fromisoformat(settings.timeseries_bucket_origin)
    now = datetime.now(UTC)
    mode = _storage_mode(request, conn)
    metric = next(iter(attrs)) if attrs is not None and len(attrs) == 1 else None

    def series(agg: str | None) -> list[tuple[datetime, str, float]]:
        req = plan(
            start=tq.start,
            end=tq.end,
            bucket=tq.bucket if agg else None,
            agg=agg,
            now=now,
            default_span=timedelta(hours=settings.timeseries_default_hours),
            origin=origin,
            max_points=settings.timeseries_max_points,
        )
        try:
            got = read_series(
                conn,
                device_id=device_id,
                tenant_id=tenant,
                metric=metric,
                request=req,
                origin=origin,
                storage_mode=mode,
                max_points=settings.timeseries_max_points,
                final_before=now - timedelta(days=settings.ingest_max_past_days + 2),
            )
        except ValidationError as exc:
            raise NgsiLdError(403, TOO_MANY_RESULTS, str(exc)) from None
        return got.points

    entity: dict[str, Any] = {"id": model.DEVICE.urn(device_id), "type": model.DEVICE.name}
    if not tq.aggregates:
        entity |= temporal.temporal_attributes(series(None), units.get(device_type, {}), tq, attrs)
        return entity
    per_method = {m: series(temporal.AGGREGATES[m]) for m in tq.aggregates}
    width = timedelta(minutes=temporal.duration_minutes(f"PT{tq.bucket[:-1]}M" if tq.bucket else "PT0M"))
    entity |= temporal.aggregated_attributes(per_method, width, attrs)
    return entity


def _temporal_types(query: _Query) -> None:
    if any(t is not model.DEVICE for t in query.types):
        raise bad_request("only Device entities have temporal values (their measurements)")


@router.get(
    "/temporal/entities",
    summary="The temporal representation of devices: their measurements over time, raw or aggregated",
    description="Parameters: type=Device (or id), attrs (metrics), q and geo-query (as for /entities, choosing the"
    " devices), timerel (before, after, between) with timeAt and endTimeAt, lastN, options=temporalValues, and the"
    " aggregated representation: options=aggregatedValues with aggrMethods (totalCount, sum, avg, min, max) and"
    " aggrPeriodDuration (e.g. PT1H: the native API's buckets, aligned to the hub's bucket origin). limit (at most"
    f" {MAX_TEMPORAL_ENTITIES} devices) and offset page the devices. Without timerel: the last"
    " MIMAMORI_TIMESERIES_DEFAULT_HOURS.",
    responses={200: {"content": {model.JSON: {}, model.JSONLD: {}}}, **_PROBLEMS},
)
async def query_temporal(
    request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    media = negotiate(request.headers.get("accept"), geo=False)
    params = dict(request.query_params)
    query = _parse_query({"type": "Device", **params} if "id" not in params else params)
    _temporal_types(query)
    if query.limit > MAX_TEMPORAL_ENTITIES:
        raise NgsiLdError(403, TOO_MANY_RESULTS, f"limit must be at most {MAX_TEMPORAL_ENTITIES} for temporal queries")
    tq = temporal.parse_temporal(params)

    def run() -> tuple[list[dict[str, Any]], int | None]:
        with reading(pool) as conn:
            units = _units(conn)
            attrs = model.check_attrs(query.attrs, query.types, _metrics(units)) if query.attrs is not None else None
            rows, total = _fetch(request, who, conn, query, _metrics(units))
            tenant = _tenant(request, who)
            out = [
                _temporal_entity(
                    request, conn, tenant, str(f["id"]), str(f["properties"]["device_type"]), tq, attrs, units
                )
                for _t, f in rows
            ]
        return out, total

    entities, total = await run_in_threadpool(run)
    headers = {"NGSILD-Results-Count": str(total)} if total is not None else {}
    return _respond(request, media, [_with_context(request, media, e) for e in entities], headers)


@router.get(
    "/temporal/entities/{entity_id}",
    summary="The temporal representation of one device",
    description="Parameters as for /temporal/entities: attrs, timerel, timeAt, endTimeAt, lastN, options.",
    responses={200: {"content": {model.JSON: {}, model.JSONLD: {}}}, **_PROBLEMS},
)
async def retrieve_temporal(
    entity_id: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    media = negotiate(request.headers.get("accept"), geo=False)
    params = dict(request.query_params)
    t, local = model.split_urn(entity_id)
    if t is not model.DEVICE:
        raise bad_request("only Device entities have temporal values (their measurements)")
    tq = temporal.parse_temporal(params)

    def run() -> dict[str, Any]:
        with reading(pool) as conn:
            units = _units(conn)
            attrs = None
            if "attrs" in params:
                attrs = model.check_attrs(params["attrs"].split(","), [t], _metrics(units))
            providers = _providers(request)
            tenant = _tenant(request, who)
            c = providers.collection_for(conn, t.collection, partner=who.role is Role.partner)
            try:
                feature = providers.feature(conn, c, local, tenant)
            except NotFound:
                raise not_found(f"no entity {entity_id}") from None
            device_type = str(feature.properties["device_type"])
            return _temporal_entity(request, conn, tenant, local, device_type, tq, attrs, units)

    entity = await run_in_threadpool(run)
    return _respond(request, media, _with_context(request, media, entity))


# -- subscriptions (on Alert entities, delivered by the alert webhooks) ---------------------------------------------

Subscriber = Annotated[Principal, Depends(require(Role.operator, Role.admin, Role.partner))]


def _webhook_tenant(who: Principal) -> str | None:
    return None if who.sees_all_tenants else who.tenant_id


def _subscriptions_of(conn: psycopg.Connection, who: Principal) -> list[dict[str, Any]]:
    return [w for w in alerts.list_webhooks(conn, _webhook_tenant(who)) if w.get("format") == subscriptions.FORMAT]


@router.post(
    "/subscriptions",
    status_code=201,
    summary="Subscribe an endpoint to changes of Alert entities (NGSI-LD Notifications over the alert webhooks)",
    description='The body is an NGSI-LD Subscription: entities [{"type": "Alert"}], optionally q'
    ' (warningLevel>=N; category=="flood"), watchedAttributes, and notification {endpoint {uri, accept},'
    " attributes, format}. The endpoint must pass the webhooks' address rules (public addresses, or"
    " MIMAMORI_ALERTS_WEBHOOK_ALLOW); every delivery is signed as the webhooks' are: the secret is in the"
    " X-Mimamori-Webhook-Secret header of this answer only.",
    responses={201: {"description": "Created; Location names the subscription"}, **_PROBLEMS},
)
async def create_subscription(
    request: Request, who: Subscriber, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("the body is not JSON") from None
    spec = subscriptions.parse_subscription(body)
    destinations: alerts.WebhookDestinations = request.app.state.webhook_destinations
    document = {**spec.document, "_context": _context_url(request)}

    def create() -> tuple[int, str]:
        with pool.connection() as conn:
            return alerts.subscribe_webhook(
                conn,
                who,
                url=spec.url,
                min_level=spec.min_level,
                hazards=spec.hazards,
                all_tenants=who.sees_all_tenants,
                destinations=destinations,
                format=subscriptions.FORMAT,
                subscription=document,
            )

    webhook_id, secret = await run_in_threadpool(create)
    location = f"{BASE_PATH}/subscriptions/{subscriptions.subscription_id(webhook_id)}"
    return Response(
        status_code=201,
        headers={"Location": location, "X-Mimamori-Webhook-Secret": secret, "Cache-Control": "no-store"},
    )


@router.get("/subscriptions", summary="The caller's NGSI-LD subscriptions", responses=_PROBLEMS)
async def list_subscriptions(
    request: Request, who: Subscriber, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    media = negotiate(request.headers.get("accept"), geo=False)
    context = _context_url(request) if media == model.JSONLD else None

    def query() -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return [subscriptions.subscription_document(w, context) for w in _subscriptions_of(conn, who)]

    return _respond(request, media, await run_in_threadpool(query))


@router.get("/subscriptions/{subscription_id}", summary="One NGSI-LD subscription", responses=_PROBLEMS)
async def retrieve_subscription(
    subscription_id: str, request: Request, who: Subscriber, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    media = negotiate(request.headers.get("accept"), geo=False)
    wanted = subscriptions.webhook_id_of(subscription_id)
    context = _context_url(request) if media == model.JSONLD else None

    def query() -> dict[str, Any]:
        with pool.connection() as conn:
            for w in _subscriptions_of(conn, who):
                if w["id"] == wanted:
                    return subscriptions.subscription_document(w, context)
        raise not_found(f"no subscription {subscription_id}")

    return _respond(request, media, await run_in_threadpool(query))


@router.delete(
    "/subscriptions/{subscription_id}", status_code=204, summary="Delete an NGSI-LD subscription", responses=_PROBLEMS
)
async def delete_subscription(
    subscription_id: str, who: Subscriber, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> Response:
    wanted = subscriptions.webhook_id_of(subscription_id)

    def delete() -> bool:
        with pool.connection() as conn:
            if not any(w["id"] == wanted for w in _subscriptions_of(conn, who)):
                return False
            return alerts.delete_webhook(conn, wanted, _webhook_tenant(who))

    if not await run_in_threadpool(delete):
        raise not_found(f"no subscription {subscription_id}")
    return Response(status_code=204)
