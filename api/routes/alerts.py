"""Alert endpoints: list, detail with events, acknowledge / resolve / close, the live stream (SSE), CAP 1.2 and
the Atom feed, rules and webhook subscriptions. Thin: parse, authorise, call the alerts package."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

import alerts
from api.auth import Authenticated, require
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.params import Instant
from devices.keys import Principal, Role
from mimamori.errors import NotFound, ValidationError

router = APIRouter(tags=["alerts"], route_class=StrictJSONRoute)

Pool = Annotated[ConnectionPool, Depends(get_pool)]
Operator = Annotated[Principal, Depends(require(Role.operator, Role.admin))]
Admin = Annotated[Principal, Depends(require(Role.admin))]
Subscriber = Annotated[Principal, Depends(require(Role.operator, Role.admin, Role.partner))]


def _tenant(who: Principal) -> str | None:
    return None if who.sees_all_tenants else who.tenant_id


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        x0, y0, x1, y1 = (float(p) for p in text.split(","))
    except ValueError:
        raise ValidationError("bbox is min_lon,min_lat,max_lon,max_lat") from None
    if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
        raise ValidationError("bbox is min_lon,min_lat,max_lon,max_lat in degrees, min before max")
    return x0, y0, x1, y1


def _csv(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _names_for(who: Principal, found: dict[str, Any]) -> dict[str, Any]:
    """The names of the city's staff in an alert's history are for the city's roles: a partner sees key ids."""
    if not who.sees_all_tenants:
        found["events"] = [{**e, "actor_name": None} for e in found["events"]]
    return found


def _cap_context(request: Request) -> alerts.CapContext:
    s = request.app.state.settings
    return alerts.CapContext(sender=s.alerts_cap_sender, base_url=s.public_url)


class Note(BaseModel):
    note: str | None = Field(None, max_length=2000, description="What was done or seen (kept in the event).")


# -- the live stream (declared before /{alert_id}) -------------------------------------------------


@router.get("/v1/alerts/stream", response_class=StreamingResponse)
async def stream(
    request: Request,
    who: Authenticated,
    pool: Pool,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    min_level: Annotated[int | None, Query(ge=1, le=5)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    since_id: Annotated[int | None, Query(ge=0, description="Resume after this event id (as Last-Event-ID).")] = None,
) -> StreamingResponse:
    """Server-sent events of alert changes. Reconnect with Last-Event-ID to get every change missed meanwhile."""
    settings = request.app.state.settings
    flt = alerts.StreamFilter(_tenant(who), min_level, _bbox(bbox))
    resume = last_event_id if last_event_id is not None else (str(since_id) if since_id is not None else None)
    after = await run_in_threadpool(alerts.start_after, pool, resume)
    body = alerts.sse_events(
        pool,
        flt,
        after,
        poll_s=settings.alerts_stream_poll_ms / 1000,
        keepalive_s=settings.alerts_stream_keepalive_s,
        disconnected=request.is_disconnected,
        sleep=asyncio.sleep,
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


@router.get(
    "/v1/alerts/feed.atom",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}, "description": "An Atom feed"}},
)
async def atom_feed(request: Request, who: Authenticated, pool: Pool) -> Response:
    """Atom feed: the newest CAP 1.2 message of each active alert, and the all-clear of each alert that ended
    within ALERTS_FEED_ENDED_HOURS (so an aggregator polling the feed learns that an alert is over)."""
    now = datetime.now(UTC)
    ended_hours = request.app.state.settings.alerts_feed_ended_hours

    def build() -> bytes:
        tenant = _tenant(who)
        with pool.connection() as conn:
            rows = alerts.list_alerts(conn, alerts.AlertFilter(states=["open", "acknowledged"], limit=1000), tenant)
            if ended_hours > 0:
                cutoff = now - timedelta(hours=ended_hours)
                ended = alerts.AlertFilter(states=["resolved", "closed"], since=cutoff, limit=1000)
                rows += [r for r in alerts.list_alerts(conn, ended, tenant) if r["resolved_at"] >= cutoff]
            messages = alerts.cap_messages_of_alerts(conn, [r["id"] for r in rows])
        entries = [(r, messages.get(r["id"], [])) for r in rows]
        return alerts.atom_feed(entries, _cap_context(request), now=now, title="Mimamori alerts")

    return Response(await run_in_threadpool(build), media_type="application/atom+xml")


# -- list and detail ---------------------------------------------------------------------------------


@router.get("/v1/alerts")
async def list_alerts(
    who: Authenticated,
    pool: Pool,
    state: Annotated[str | None, Query(description="open,acknowledged,resolved,closed (comma-separated)")] = None,
    min_level: Annotated[int | None, Query(ge=1, le=5)] = None,
    hazard: Annotated[str | None, Query(description="flood,landslide,rain,sediment,equipment,other")] = None,
    kind: Annotated[str | None, Query(description="Rule kinds: threshold,rate,accumulation,...")] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    since: Annotated[Instant | None, Query(description="Changed at or after.")] = None,
    until: Annotated[Instant | None, Query(description="Opened before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Alerts, highest level and most recent first."""
    states = _csv(state)
    if states and not set(states) <= {"open", "acknowledged", "resolved", "closed"}:
        raise ValidationError("state is one or more of open, acknowledged, resolved, closed")
    flt = alerts.AlertFilter(states, min_level, _csv(hazard), _csv(kind), _bbox(bbox), since, until, limit, offset)

    def query() -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return alerts.list_alerts(conn, flt, _tenant(who))

    return await run_in_threadpool(query)


@router.get("/v1/alerts/{alert_id}")
async def get_alert(alert_id: int, who: Authenticated, pool: Pool) -> dict[str, Any]:
    """One alert with every event of its life: who acted (`actor`: a rule or a key id; `actor_name`: the key's name
    at the time, for the city's roles) and their notes."""

    def query() -> dict[str, Any] | None:
        with pool.connection() as conn:
            return alerts.alert_with_events(conn, alert_id, _tenant(who))

    found = await run_in_threadpool(query)
    if found is None:
        raise NotFound(f"alert {alert_id} not found")
    return _names_for(who, found)


def _cap(request: Request, pool: ConnectionPool, alert_id: int, who: Principal, seq: int | None) -> bytes:
    with pool.connection() as conn:
        row = alerts.get_alert(conn, alert_id, _tenant(who))
        messages = alerts.cap_messages_of(conn, alert_id) if row is not None else []
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    if seq is not None and not any(m.seq == seq for m in messages):
        raise NotFound(f"alert {alert_id} has no CAP message {seq}")
    if not messages:  # every alert has its first message from the moment it is stored
        raise NotFound(f"alert {alert_id} has no CAP message")
    return alerts.cap_document(row, messages, _cap_context(request), seq=seq)


_CAP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {alerts.CAP_MEDIA_TYPE: {}}, "description": "A CAP 1.2 document"}
}


@router.get("/v1/alerts/{alert_id}/cap", response_class=Response, responses=_CAP_RESPONSES)
async def get_cap(request: Request, alert_id: int, who: Authenticated, pool: Pool) -> Response:
    """The alert's newest CAP 1.2 message (Japanese and English); it references every earlier one."""
    body = await run_in_threadpool(_cap, request, pool, alert_id, who, None)
    return Response(body, media_type=alerts.CAP_MEDIA_TYPE)


@router.get("/v1/alerts/{alert_id}/cap/{seq}", response_class=Response, responses=_CAP_RESPONSES)
async def get_cap_message(
    request: Request,
    alert_id: int,
    who: Authenticated,
    pool: Pool,
    seq: Annotated[int, PathParam(ge=1, le=2**31 - 1, description="1: the Alert; then each Update, in order.")],
) -> Response:
    """One CAP 1.2 message of the alert, the same every time it is fetched (its identifier and sent included)."""
    body = await run_in_threadpool(_cap, request, pool, alert_id, who, seq)
    return Response(body, media_type=alerts.CAP_MEDIA_TYPE)


# -- lifecycle -----------------------------------------------------------------------------------------


def _change(
    pool: ConnectionPool, action: alerts.Action, alert_id: int, who: Principal, note: str | None
) -> dict[str, Any]:
    with pool.connection() as conn:
        alerts.act(conn, alert_id, action, who.key_id, note, _tenant(who))
        found = alerts.alert_with_events(conn, alert_id, _tenant(who))
    assert found is not None
    return _names_for(who, found)


@router.post("/v1/alerts/{alert_id}/acknowledge")
async def acknowledge(alert_id: int, who: Operator, pool: Pool, body: Note | None = None) -> dict[str, Any]:
    """An operator is on it (open -> acknowledged), with a note."""
    return await run_in_threadpool(_change, pool, alerts.Action.acknowledge, alert_id, who, body.note if body else None)


@router.post("/v1/alerts/{alert_id}/resolve")
async def resolve(alert_id: int, who: Operator, pool: Pool, body: Note | None = None) -> dict[str, Any]:
    """Resolve by hand (rules resolve their alerts when the clear condition holds)."""
    return await run_in_threadpool(_change, pool, alerts.Action.resolve, alert_id, who, body.note if body else None)


@router.post("/v1/alerts/{alert_id}/close")
async def close(alert_id: int, who: Operator, pool: Pool, body: Note | None = None) -> dict[str, Any]:
    """File a resolved alert away."""
    return await run_in_threadpool(_change, pool, alerts.Action.close, alert_id, who, body.note if body else None)


# -- rules ---------------------------------------------------------------------------------------------


@router.get("/v1/alert-rules")
async def list_rules(request: Request, who: Authenticated, pool: Pool) -> list[dict[str, Any]]:
    """The rules in force: the rule folder's files and the rules saved through the API."""

    def query() -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return alerts.rules_in_force(request.app.state.settings, conn)

    return await run_in_threadpool(query)


@router.put("/v1/alert-rules/{rule_id}")
async def put_rule(rule_id: str, body: dict[str, Any], who: Admin, pool: Pool) -> dict[str, Any]:
    """Create or replace a rule (same fields as in the YAML files); it applies within one engine tick."""

    def save() -> dict[str, Any]:
        with pool.connection() as conn:
            return alerts.save_rule(conn, rule_id, body, who)

    return await run_in_threadpool(save)


@router.delete("/v1/alert-rules/{rule_id}", status_code=204)
async def delete_rule(rule_id: str, who: Admin, pool: Pool) -> Response:
    def delete() -> None:
        with pool.connection() as conn:
            alerts.delete_rule(conn, rule_id, who)

    await run_in_threadpool(delete)
    return Response(status_code=204)


# -- webhooks ------------------------------------------------------------------------------------------


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000)
    min_level: int = Field(1, ge=1, le=5)
    hazards: list[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    all_tenants: bool = Field(False, description="The city's subscriptions may cover every tenant.")


@router.post("/v1/alert-webhooks", status_code=201)
async def create_webhook(body: WebhookIn, who: Subscriber, pool: Pool, request: Request) -> dict[str, Any]:
    """Subscribe an endpoint. The signing secret is in this answer only.

    The URL's host must resolve to public addresses only (no loopback, private, link-local or metadata
    address) unless the administrator allows it (MIMAMORI_ALERTS_WEBHOOK_ALLOW); deliveries check again."""
    destinations: alerts.WebhookDestinations = request.app.state.webhook_destinations

    def create() -> tuple[int, str]:
        with pool.connection() as conn:
            return alerts.subscribe_webhook(
                conn,
                who,
                url=body.url,
                min_level=body.min_level,
                hazards=body.hazards,
                bbox=_bbox(",".join(str(v) for v in body.bbox)) if body.bbox else None,
                all_tenants=body.all_tenants,
                destinations=destinations,
            )

    webhook_id, secret = await run_in_threadpool(create)
    return {"id": webhook_id, "secret": secret, "signature_header": alerts.SIGNATURE_HEADER}


@router.get("/v1/alert-webhooks")
async def list_webhooks(who: Subscriber, pool: Pool) -> list[dict[str, Any]]:
    def query() -> list[dict[str, Any]]:
        with pool.connection() as conn:
            return alerts.list_webhooks(conn, _tenant(who))

    return await run_in_threadpool(query)


@router.get("/v1/alert-webhooks/{webhook_id}/deliveries")
async def webhook_deliveries(
    webhook_id: int, who: Subscriber, pool: Pool, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    """The delivery log: each attempt's outcome, newest first."""

    def query() -> list[dict[str, Any]] | None:
        with pool.connection() as conn:
            return alerts.deliveries_of(conn, webhook_id, _tenant(who), limit)

    found = await run_in_threadpool(query)
    if found is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return found


@router.delete("/v1/alert-webhooks/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: int, who: Subscriber, pool: Pool) -> Response:
    def delete() -> bool:
        with pool.connection() as conn:
            return alerts.delete_webhook(conn, webhook_id, _tenant(who))

    if not await run_in_threadpool(delete):
        raise NotFound(f"webhook {webhook_id} not found")
    return Response(status_code=204)
