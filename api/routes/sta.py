"""OGC SensorThings API 1.1 (Sensing) at ``/sta/v1.1``: reads of every entity set with navigation and the query
options, and ``POST Observations`` for partners, through the same pipeline as MQTT and HTTP push.

Errors are STA's body (``{"code", "type": "error", "message"}``): 400 for a bad path or query option, 404 for an
entity the key's tenant has not.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from api import sta as documents
from api.auth import Authenticated, require
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.problems import Problem
from api.ratelimit import push_rate_limit
from api.responses import JSONResponse
from devices.keys import Principal, Role
from devices.sta import (
    ENTITY_SETS,
    Many,
    ObservationId,
    One,
    Options,
    StaError,
    Value,
    datastream_target,
    fetch_entity,
    format_key,
    parse_key,
    parse_options,
    parse_path,
    read,
    series_number,
)
from ingest import push
from mimamori import strict_json
from mimamori.db import reading

PREFIX = documents.VERSION_PATH


class StaProblem(BaseModel):
    """STA's error body, as FROST answers."""

    code: int
    type: str = "error"
    message: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": StaProblem, "description": "A bad resource path, query option or body."},
    # A path no route matches at all (a control character in it) is the framework's own 404 (Problem).
    404: {"model": StaProblem | Problem, "description": "No such entity, or not the caller's tenant's."},
}
router = APIRouter(prefix=PREFIX, tags=["SensorThings API"], route_class=StrictJSONRoute, responses=_ERRORS)

# Database refusals that only a request's own values can cause (a value out of a type's range, an unusable
# geometry): a 400 like any other bad input, never a 500.
_INPUT_ERRORS = (psycopg.errors.DataError, psycopg.errors.UndefinedFunction, psycopg.errors.DatatypeMismatch)


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse(documents.error(status, message), status_code=status)


def _tenant(who: Principal) -> str | None:
    return None if who.sees_all_tenants else who.tenant_id


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _query(request: Request) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in query and name.startswith("$"):
            raise StaError(f"{name} given twice")
        query[name] = value
    return query


async def _serve(request: Request, who: Principal, pool: ConnectionPool) -> JSONResponse:
    path_text = request.scope["path"].split(PREFIX + "/", 1)[-1]
    base = _base(request)
    tenant = _tenant(who)
    now = datetime.now(UTC)

    def answer() -> JSONResponse:
        query = _query(request)
        options = parse_options(query)
        path = parse_path(path_text)
        if path.ref:
            raise StaError("$ref is not served")
        with reading(pool) as conn:
            found = read(conn, path, options, tenant=tenant, now=now)
        if found is None:
            return _problem(404, f"nothing at {path_text[:200]}")
        if isinstance(found, Value):
            if path.value:
                return JSONResponse(documents.json_value(found.value))
            return JSONResponse({found.name: documents.json_value(found.value)})
        if path.value:
            raise StaError("$value follows a property")
        if isinstance(found, Many):
            url = base + "/" + path_text.strip("/")
            return JSONResponse(documents.collection(base, found, options, url, query))
        assert isinstance(found, One)
        return JSONResponse(documents.one(base, found, options))

    try:
        return await run_in_threadpool(answer)
    except StaError as exc:
        return _problem(400, str(exc))
    except _INPUT_ERRORS as exc:
        return _problem(400, f"a request value was refused: {exc.diag.message_primary or exc}")


@router.get("", summary="Service root: the entity sets and the conformance classes")
async def service_root(request: Request) -> JSONResponse:
    return JSONResponse(documents.service_root(_base(request)))


def _add_reads(name: str, singular: str) -> None:
    async def many(request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]) -> Any:
        return await _serve(request, who, pool)

    async def one(
        key: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
    ) -> Any:
        return await _serve(request, who, pool)

    router.add_api_route(
        f"/{name}",
        many,
        methods=["GET"],
        summary=f"{name}: $filter, $expand, $select, $orderby, $top, $skip, $count",
        operation_id=f"sta_list_{name}",
    )
    router.add_api_route(
        f"/{name}({{key}})",
        one,
        methods=["GET"],
        summary=f"One {singular} by its @iot.id ('quoted' for a string, bare for an integer)",
        operation_id=f"sta_get_{singular}",
    )


for _es in ENTITY_SETS.values():
    _add_reads(_es.name, _es.singular)


# ---- create: POST Observations ------------------------------------------------------------------------------


def _observation_body(raw: bytes) -> dict[str, Any]:
    try:
        body = strict_json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StaError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise StaError("an Observation is a JSON object")
    return body


def _phenomenon_time(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise StaError("phenomenonTime is an ISO 8601 instant")
    if "/" in value:
        raise StaError("phenomenonTime: only instants are stored, not intervals")
    text = value.strip()
    try:
        when = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise StaError(f"phenomenonTime {value[:60]!r} is not an ISO 8601 instant") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _datastream_id(body: dict[str, Any], from_path: int | None) -> int:
    link = body.get("Datastream")
    if from_path is not None:
        if link is not None:
            raise StaError("the Datastream is given by the path; leave it out of the body")
        return from_path
    # A reference by id; clients that send the Datastream's other properties along (FROST's) are not refused.
    if not isinstance(link, dict) or "@iot.id" not in link:
        raise StaError('an Observation names its Datastream: "Datastream": {"@iot.id": <integer>}')
    ds = link["@iot.id"]
    if isinstance(ds, bool) or not isinstance(ds, int):
        raise StaError("a Datastream's @iot.id is an integer")
    return ds


async def _create(request: Request, who: Principal, pool: ConnectionPool, from_path: int | None) -> JSONResponse:
    state = request.app.state
    base = _base(request)
    raw = await request.body()
    tenant = None if who.role is Role.admin else who.tenant_id
    now = datetime.now(UTC)

    def create() -> JSONResponse:
        body = _observation_body(raw)
        for name in ("FeatureOfInterest", "parameters", "resultQuality", "validTime"):
            body.pop(name, None)  # the feature is the device's own; the others are not kept
        unknown = set(body) - {"phenomenonTime", "resultTime", "result", "Datastream"}
        if unknown:
            raise StaError(f"an Observation has no {sorted(unknown)[0][:60]!r}")
        series_id = _datastream_id(body, from_path)
        result = body.get("result")
        if isinstance(result, bool) or not isinstance(result, int | float) or not math.isfinite(result):
            raise StaError("result is a number: Mimamori's Datastreams are measurements")
        when = _phenomenon_time(body.get("phenomenonTime"), now)
        with reading(pool) as conn:
            target = datastream_target(conn, series_id, tenant)
        if target is None:
            return _problem(404, f"no Datastream {series_id}")
        device_id, metric = target
        payload = json.dumps({"ts": when.isoformat(), "values": {metric: result}}).encode()
        outcome = push(
            state.writer,
            state.registry,
            state.pipeline_config,
            tenant_id=tenant,
            device_id=device_id,
            payload=payload,
            content_type="application/json",
            give_up_after_s=state.settings.api_push_db_wait_s,
        )
        if not outcome.received:
            first = outcome.rejected[0] if outcome.rejected else {"reason": "invalid", "detail": None}
            return _problem(400, f"the Observation was refused: {first['reason']}: {first['detail']}")
        with reading(pool) as conn:
            stored_series = series_number(conn, device_id, metric) or series_id
            oid = ObservationId(stored_series, when)
            found = fetch_entity(conn, ENTITY_SETS["Observations"], str(oid), Options(), tenant=tenant, now=now)
        location = f"{base}/Observations({format_key(str(oid))})"
        doc = (
            documents.entity(base, ENTITY_SETS["Observations"], found[0], {}, Options())
            if found
            else {"@iot.id": str(oid), "@iot.selfLink": location}
        )
        # A repeated Observation is stored once: the answer is the same entity, created the first time.
        return JSONResponse(doc, status_code=201, headers={"Location": location})

    try:
        return await run_in_threadpool(create)
    except StaError as exc:
        return _problem(400, str(exc))


_CREATE = {
    "status_code": 201,
    "openapi_extra": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
}


@router.post("/Observations", summary="Create an Observation (partners: their own tenant's Datastreams)", **_CREATE)
async def create_observation(
    request: Request,
    who: Annotated[Principal, Depends(require(Role.partner, Role.admin))],
    _rate: Annotated[Principal, Depends(push_rate_limit)],
    pool: Annotated[ConnectionPool, Depends(get_pool)],
) -> JSONResponse:
    """Validated, stored exactly once and handed to alerts like a reading over MQTT or ``POST /v1/telemetry``."""
    return await _create(request, who, pool, None)


@router.post("/Datastreams({key})/Observations", summary="Create an Observation in a Datastream", **_CREATE)
async def create_datastream_observation(
    key: str,
    request: Request,
    who: Annotated[Principal, Depends(require(Role.partner, Role.admin))],
    _rate: Annotated[Principal, Depends(push_rate_limit)],
    pool: Annotated[ConnectionPool, Depends(get_pool)],
) -> JSONResponse:
    try:
        series_id = parse_key(key)
    except ValueError as exc:
        return _problem(400, str(exc))
    if not isinstance(series_id, int):
        return _problem(404, f"no Datastream {key[:60]}")
    return await _create(request, who, pool, series_id)


@router.get("/{path:path}", summary="Navigation: Things('id')/Datastreams, Datastreams(1)/Observations, …/$value")
async def navigate(
    path: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> JSONResponse:
    return await _serve(request, who, pool)
