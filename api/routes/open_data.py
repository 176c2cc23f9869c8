"""Open data: anonymous reads at /open (published datasets only; no key, no cookie; a rate limit per client address;
cacheable, with strong ETags), and the publication of datasets at /v1/open-datasets with the usual keys.
Thin: parse, authorise, call opendata/. docs/open-data.md."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
import psycopg
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

import alerts
from api.answer_cache import AnswerCache, Built, send
from api.auth import require
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.ratelimit import open_rate_limit
from api.responses import JSONResponse
from devices.keys import Principal, Role
from mimamori.errors import ValidationError
from mimamori.settings import Settings
from opendata import Dataset, DatasetDraft, Kind, service, snapshot
from opendata import dcat as dcat_doc
from opendata import queries as open_queries
from opendata.rules import DATASET_ID, LICENCES, READING_METRIC
from opendata.tables import MEDIA_TYPES, to_csv, to_geojson, to_parquet

router = APIRouter(tags=["open data"], route_class=StrictJSONRoute)
# The anonymous face: its own router, so every route of it takes the address's rate limit and nothing else.
_JSON_ERROR: dict[str, Any] = {"content": {"application/json": {}}}
OPEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the If-None-Match tag is the current one"},
    400: {**_JSON_ERROR, "description": "A parameter out of bounds"},
    429: {**_JSON_ERROR, "description": "Too many requests from this address; see Retry-After"},
}
public = APIRouter(
    tags=["open data"],
    route_class=StrictJSONRoute,
    dependencies=[Depends(open_rate_limit)],
    responses=OPEN_RESPONSES,
)
JSON_200: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}}, "description": "JSON"}}

Pool = Annotated[ConnectionPool, Depends(get_pool)]
Manager = Annotated[Principal, Depends(require(Role.admin, Role.partner))]
JSON_LD = "application/ld+json"
_T = TypeVar("_T")


def _now() -> datetime:
    return datetime.now(UTC)


def _invalid(detail: str) -> JSONResponse:
    return JSONResponse({"error": "invalid", "detail": detail}, status_code=400)


def _not_found(detail: str) -> JSONResponse:
    return JSONResponse({"error": "not_found", "detail": detail}, status_code=404)


def _headers(licences: Iterable[str], filename: str | None = None) -> dict[str, str]:
    """An anonymous answer's own headers: the licences as Link rel="license", readable from any origin."""
    headers = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": "ETag, Link, Content-Disposition",
        "Vary": "Accept-Encoding",
    }
    links = [f'<{url}>; rel="license"' for url in sorted(set(licences)) if url]
    if links:
        headers["Link"] = ", ".join(links)
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return headers


def _built(body: bytes, media_type: str, licences: Iterable[str], *, filename: str | None = None) -> Built:
    return Built.of(body, media_type, headers=_headers(licences, filename))


def _missing(detail: str) -> Built:
    return Built.of(orjson.dumps({"error": "not_found", "detail": detail}), "application/json", status=404)


async def _cached(request: Request, key: Hashable, build: Callable[[], Built]) -> Response:
    answers: AnswerCache = request.app.state.answers
    max_age = request.app.state.settings.open_cache_max_age_s
    return send(await answers.get(key, build), request.headers.get("if-none-match"), max_age)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def _dataset_json(d: Dataset, base: str) -> dict[str, Any]:
    page = f"{base}/open/datasets/{d.id}"
    links = [
        {"rel": "self", "href": page, "type": "application/json"},
        {"rel": "latest", "href": f"{page}/latest", "type": "application/json"},
        *({"rel": "enclosure", "href": f"{page}/download.{fmt}", "type": mt} for fmt, mt in MEDIA_TYPES.items()),
        {"rel": "license", "href": d.licence_url},
    ]
    if d.kind in READING_METRIC:
        links.insert(2, {"rel": "history", "href": f"{page}/history", "type": "application/json"})
    return {
        "id": d.id,
        "kind": str(d.kind),
        "tenant_id": d.tenant_id,
        "title": {"ja": d.title_ja, "en": d.title_en},
        "description": d.description,
        "licence": d.licence,
        "licence_url": d.licence_url,
        "attribution": d.attribution,
        "published_at": d.published_at,
        "updated_at": d.updated_at,
        "links": links,
    }


def _with_pool(pool: ConnectionPool, work: Callable[[Any], _T]) -> _T:
    with pool.connection() as conn:
        return work(conn)


def _published(conn: psycopg.Connection, dataset_id: str) -> Dataset | None:
    return open_queries.published_dataset(conn, dataset_id) if DATASET_ID.match(dataset_id) else None


def _no_dataset(dataset_id: str) -> Built:
    return _missing(f"no published dataset {dataset_id!r}")


def _item_json(item: Any) -> dict[str, Any]:
    out = {f.name: getattr(item, f.name) for f in dataclasses.fields(item) if f.name != "source"}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def _history_window(settings: Settings) -> timedelta:
    return timedelta(hours=settings.open_alert_history_hours)


# -- anonymous: /open -----------------------------------------------------------------------------------------
# Each route builds its whole answer in one database visit, kept by the answer cache (api/answer_cache.py) under
# a key naming everything the answer depends on.


@public.get("/open/datasets", response_class=Response, responses=JSON_200)
async def list_open(request: Request, pool: Pool) -> Response:
    """Every published dataset, with links to its latest values, history and downloads. No key needed."""
    base = request.app.state.settings.public_url

    def build() -> Built:
        found = _with_pool(pool, open_queries.published_datasets)
        body = _json({"datasets": [_dataset_json(d, base) for d in found]})
        return _built(body, "application/json", (d.licence_url for d in found))

    return await _cached(request, ("datasets",), build)


@public.get("/open/datasets/{dataset_id}", response_class=Response, responses=JSON_200)
async def get_open(request: Request, dataset_id: str, pool: Pool) -> Response:
    base = request.app.state.settings.public_url

    def build() -> Built:
        d = _with_pool(pool, lambda c: _published(c, dataset_id))
        if d is None:
            return _no_dataset(dataset_id)
        return _built(_json(_dataset_json(d, base)), "application/json", [d.licence_url])

    return await _cached(request, ("dataset", dataset_id), build)


@public.get("/open/datasets/{dataset_id}/latest", response_class=Response, responses=JSON_200)
async def latest(request: Request, dataset_id: str, pool: Pool) -> Response:
    """The dataset's items now: gauges with their newest reading, active (and recently ended) alerts, the register
    in aggregate, or the evacuation sites."""
    history = _history_window(request.app.state.settings)

    def build() -> Built:
        with pool.connection() as conn:
            d = _published(conn, dataset_id)
            if d is None:
                return _no_dataset(dataset_id)
            items = service.dataset_items(conn, d, _now(), history)
        body = _json(
            {
                "dataset": d.id,
                "kind": str(d.kind),
                "licence": d.licence,
                "licence_url": d.licence_url,
                "attribution": d.attribution,
                "items": [_item_json(i) for i in items],
            }
        )
        return _built(body, "application/json", [d.licence_url])

    return await _cached(request, ("latest", dataset_id), build)


@public.get("/open/datasets/{dataset_id}/history", response_class=Response, responses=JSON_200)
async def history(
    request: Request,
    dataset_id: str,
    pool: Pool,
    bucket: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Response:
    """Per device and calendar day or month (Japan time, `bucket=day|month`) in [start, end): count, min, max, mean,
    sum of the dataset's metric (water level in m, rainfall in mm). Default: the last 30 days, or 12 months."""
    now = _now()
    try:
        req = service.history_request(bucket, start, end, now)
    except ValidationError as exc:
        return _invalid(str(exc))

    def build() -> Built:
        with pool.connection() as conn:
            d = _published(conn, dataset_id)
            if d is None:
                return _no_dataset(dataset_id)
            if d.kind not in READING_METRIC:
                detail = f"a {d.kind} dataset has no history: river_levels and rainfall have"
                return Built.of(_json({"error": "invalid", "detail": detail}), "application/json", status=400)
            rows = service.history(conn, d, req, now)
        body = _json(
            {
                "dataset": d.id,
                "metric": READING_METRIC[d.kind],
                "bucket": req.bucket,
                "timezone": service.TZ,
                "start": req.start,
                "end": req.end,
                "licence": d.licence,
                "licence_url": d.licence_url,
                "attribution": d.attribution,
                "buckets": rows,
            }
        )
        return _built(body, "application/json", [d.licence_url])

    # Keyed by what was asked, not by the resolved window: a default window moves with the clock.
    return await _cached(request, ("history", dataset_id, bucket, start, end), build)


_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {mt: {} for mt in MEDIA_TYPES.values()}, "description": "The dataset's latest table"}
}


@public.get("/open/datasets/{dataset_id}/download.{fmt}", response_class=Response, responses=_DOWNLOAD_RESPONSES)
async def download(request: Request, dataset_id: str, fmt: str, pool: Pool, bom: str | None = None) -> Response:
    """The latest table as CSV (UTF-8; `bom=1` starts it with a byte-order mark for Excel), GeoJSON or Parquet.
    Every row carries licence, licence_url and attribution columns."""
    if fmt not in MEDIA_TYPES:
        return _not_found(f"no format {fmt!r}: csv, geojson or parquet")
    if bom not in (None, "", "0", "1", "true", "false"):
        return _invalid("bom is 1 (or true) or 0 (or false)")
    settings: Settings = request.app.state.settings
    with_bom = fmt == "csv" and bom in ("1", "true")

    def build() -> Built:
        with pool.connection() as conn:
            d = _published(conn, dataset_id)
            if d is None:
                return _no_dataset(dataset_id)
            table = service.dataset_table(conn, d, _now(), _history_window(settings))
        if fmt == "csv":
            body = to_csv(table, bom=with_bom)
        elif fmt == "geojson":
            links = [
                {"rel": "license", "href": d.licence_url},
                {"rel": "describedby", "href": f"{settings.public_url}/open/datasets/{d.id}"},
            ]
            body = to_geojson(table, d, links)
        else:
            body = to_parquet(table, d)
        return _built(body, MEDIA_TYPES[fmt], [d.licence_url], filename=f"{d.id}.{fmt}")

    return await _cached(request, ("download", dataset_id, fmt, with_bom), build)


@public.get("/open/alerts", response_class=Response, responses=JSON_200)
async def open_alerts(request: Request, pool: Pool) -> Response:
    """Active alerts of every published alerts dataset, highest level first, each with its CAP 1.2 document's URL."""
    base = request.app.state.settings.public_url

    def build() -> Built:
        found = _with_pool(pool, lambda c: snapshot.active_public_alerts(c, _now()))
        items = [{**_item_json(a), "cap": base + a.cap_path, **snapshot.credit(a.source)} for a in found]
        return _built(_json({"alerts": items}), "application/json", (a.source.licence_url for a in found))

    return await _cached(request, ("alerts",), build)


@public.get(
    "/open/alerts/{alert_id}/cap",
    response_class=Response,
    responses={200: {"content": {alerts.CAP_MEDIA_TYPE: {}}, "description": "A CAP 1.2 document"}},
)
async def open_cap(request: Request, alert_id: str, pool: Pool) -> Response:
    """The newest CAP 1.2 message of an alert that a published alerts dataset opens."""
    if not alert_id.isdigit() or len(alert_id) > 18:
        return _not_found(f"no public alert {alert_id!r}")
    s: Settings = request.app.state.settings

    def build() -> Built:
        with pool.connection() as conn:
            row = snapshot.public_alert(conn, int(alert_id))
            messages = alerts.cap_messages_of(conn, int(alert_id)) if row is not None else []
            licence = next(
                (
                    d.licence_url
                    for d in open_queries.published_datasets(conn, Kind.alerts)
                    if row is not None and d.tenant_id == row["tenant_id"]
                ),
                "",
            )
        if row is None or not messages:
            return _missing(f"no public alert {alert_id!r}")
        ctx = alerts.CapContext(sender=s.alerts_cap_sender, base_url=s.public_url)
        return _built(alerts.cap_document(row, messages, ctx), alerts.CAP_MEDIA_TYPE, [licence])

    return await _cached(request, ("cap", int(alert_id)), build)


@public.get("/open/catalog", response_class=Response, responses={200: {"content": {JSON_LD: {}}}})
async def catalog(request: Request, pool: Pool) -> Response:
    """The published datasets as a DCAT catalogue (JSON-LD, DCAT-AP style), for CKAN's ckanext-dcat harvester."""
    base = request.app.state.settings.public_url

    def build() -> Built:
        got = _with_pool(pool, lambda c: service.catalog_inputs(c, _now()))
        doc = dcat_doc.catalog(got.datasets, got.publishers, base, *got.operator, got.extents)
        return _built(_json(doc), JSON_LD, (d.licence_url for d in got.datasets))

    return await _cached(request, ("catalog",), build)


# -- publication: /v1/open-datasets ----------------------------------------------------------------------------


class DatasetBody(BaseModel):
    kind: Kind
    tenant_id: str | None = Field(None, description="Whose data; default the key's own tenant.")
    title_ja: str = Field(..., max_length=400)
    title_en: str = Field(..., max_length=400)
    description: str = Field("", max_length=8000)
    licence: str = Field("CC-BY-4.0", description=f"One of {', '.join(LICENCES)}.")
    attribution: str = Field(..., max_length=400, description="The credit line, e.g. 豊田市 / Toyota City.")


def _managed_json(d: Dataset, base: str) -> dict[str, Any]:
    return {**_dataset_json(d, base), "published": d.published, "published_by": d.published_by}


@router.get("/v1/open-datasets")
async def list_managed(request: Request, who: Manager, pool: Pool) -> list[dict[str, Any]]:
    """Datasets, published or not: an admin's every one, a partner's its own tenant's."""
    found = await run_in_threadpool(_with_pool, pool, lambda c: service.visible(c, who.role, who.tenant_id))
    return [_managed_json(d, request.app.state.settings.public_url) for d in found]


@router.put("/v1/open-datasets/{dataset_id}")
async def put_dataset(request: Request, dataset_id: str, body: DatasetBody, who: Manager, pool: Pool) -> dict[str, Any]:
    """Define or change a dataset. A new dataset is not public until published."""
    draft = DatasetDraft(
        id=dataset_id,
        kind=body.kind,
        tenant_id=body.tenant_id or who.tenant_id,
        title_ja=body.title_ja,
        title_en=body.title_en,
        description=body.description,
        licence=body.licence,
        attribution=body.attribution,
    )
    saved = await run_in_threadpool(
        _with_pool, pool, lambda c: service.save(c, draft, who.role, who.tenant_id, who.key_id)
    )
    request.app.state.answers.clear()
    return _managed_json(saved, request.app.state.settings.public_url)


async def _publish(request: Request, dataset_id: str, published: bool, who: Principal, pool: ConnectionPool) -> Any:
    done = await run_in_threadpool(
        _with_pool, pool, lambda c: service.publish(c, dataset_id, published, who.role, who.tenant_id, who.key_id)
    )
    request.app.state.answers.clear()
    return _managed_json(done, request.app.state.settings.public_url)


@router.post("/v1/open-datasets/{dataset_id}/publish")
async def publish(request: Request, dataset_id: str, who: Manager, pool: Pool) -> dict[str, Any]:
    """Make a dataset public at /open. A partner publishes its own tenant's; an admin the city's (the operator
    tenant's) only: a partner's data goes public by the partner's own act."""
    return await _publish(request, dataset_id, True, who, pool)  # type: ignore[no-any-return]


@router.post("/v1/open-datasets/{dataset_id}/unpublish")
async def unpublish(request: Request, dataset_id: str, who: Manager, pool: Pool) -> dict[str, Any]:
    """Take a dataset down from /open (an admin may take down any tenant's)."""
    return await _publish(request, dataset_id, False, who, pool)  # type: ignore[no-any-return]


@router.delete("/v1/open-datasets/{dataset_id}", status_code=204, response_class=Response)
async def delete_dataset(request: Request, dataset_id: str, who: Manager, pool: Pool) -> Response:
    await run_in_threadpool(
        _with_pool, pool, lambda c: service.remove(c, dataset_id, who.role, who.tenant_id, who.key_id)
    )
    request.app.state.answers.clear()
    return Response(status_code=204)
