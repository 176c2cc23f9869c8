"""Operational endpoints: /healthz (the process is alive), /readyz (it can reach what it needs), /metrics.

None needs a key: orchestrators and Prometheus ask without one. They answer nothing about tenants or devices,
stay out of the OpenAPI document (they are for operators, not API clients), and the production proxy does not
route /metrics from outside (docs/operations.md).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.bodies import StrictJSONRoute
from api.responses import JSONResponse
from mimamori.health import check_broker, check_database, check_jobs, readiness
from mimamori.metrics import exposition

router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)
_JOBS_EVERY_S = 30.0


async def _job_warnings(request: Request) -> list[str]:
    """TimescaleDB's job warnings (and their gauges), read at most every _JOBS_EVERY_S whatever asks: load balancers
    poll /readyz every few seconds, and the job views join a history that grows."""
    state = request.app.state
    if time.monotonic() - getattr(state, "jobs_read_at", float("-inf")) > _JOBS_EVERY_S:
        state.jobs_warned = await run_in_threadpool(check_jobs, state.pool, state.settings.health_timeout_s)
        state.jobs_read_at = time.monotonic()
    return list(state.jobs_warned)


@router.get("/healthz")
async def healthz() -> JSONResponse:
    """Alive: the event loop answers. Nothing else is checked, so a database outage never restarts the API."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready: PostgreSQL answers and the broker accepts connections; 503 with the failing check otherwise.
    TimescaleDB jobs that fail or stall are listed under ``warnings`` (still 200)."""
    settings = request.app.state.settings
    timeout = settings.health_timeout_s
    checks = [
        await run_in_threadpool(check_database, request.app.state.pool, timeout),
        await run_in_threadpool(check_broker, settings.mqtt, timeout),
    ]
    warned = await _job_warnings(request) if checks[0].ok else []
    ready, body = readiness(checks, warned)
    return JSONResponse(body, status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    if not request.app.state.settings.api_metrics:
        return JSONResponse({"error": "not_found", "detail": "metrics are off (MIMAMORI_API_METRICS)"}, 404)
    await _job_warnings(request)  # refreshes the job gauges
    body, content_type = await run_in_threadpool(exposition)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
