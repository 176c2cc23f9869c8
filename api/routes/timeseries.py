"""`GET /v1/devices/{id}/readings`: a device's time series, raw or bucketed, as JSON or CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from psycopg_pool import ConnectionPool

from api.auth import Authenticated
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.params import Instant
from api.responses import JSONResponse
from devices.series import Series, read_series
from devices.series_plan import plan
from mimamori.db import reading
from mimamori.migrate import storage_mode
from mimamori.settings import Settings

router = APIRouter(prefix="/v1/devices", tags=["time series"], route_class=StrictJSONRoute)

_CSV = "text/csv"


def _storage_mode(request: Request, pool: ConnectionPool) -> str:
    # Fixed when the database was created, so it is read once per app.
    mode = getattr(request.app.state, "storage_mode", None)
    if mode is None:
        with reading(pool) as conn:
            mode = storage_mode(conn) or "plain"
        request.app.state.storage_mode = mode
    return str(mode)


@router.get(
    "/{device_id}/readings",
    responses={
        200: {"content": {"application/json": {}, _CSV: {}}, "description": "The series, by metric then time."},
        404: {"description": "No such device, or not the caller's."},
        422: {"description": "Bad parameters, or more points than one request may return."},
    },
)
async def get_readings(
    device_id: str,
    request: Request,
    who: Authenticated,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
    metric: Annotated[str | None, Query(max_length=64, description="One metric; every metric when absent.")] = None,
    start: Annotated[Instant | None, Query(description="Inclusive, with a time zone. Default: end − 24 h.")] = None,
    end: Annotated[Instant | None, Query(description="Exclusive, with a time zone. Default: now.")] = None,
    bucket: Annotated[str | None, Query(description="Bucket width: 10m, 1h, 1d …; raw readings when absent.")] = None,
    agg: Annotated[
        Literal["avg", "min", "max", "sum", "last", "count"] | None, Query(description="Per-bucket aggregate.")
    ] = None,
    format: Annotated[Literal["json", "csv"] | None, Query(description="Or ask with Accept: text/csv.")] = None,
) -> Response:
    """Buckets are aligned to JST midnight by default and the range is widened to whole buckets; the answers
    are the same on plain PostgreSQL and on TimescaleDB (served from continuous aggregates there)."""
    settings: Settings = request.app.state.settings
    req = plan(
        start=start,
        end=end,
        bucket=bucket,
        agg=agg,
        now=datetime.now(UTC),
        default_span=timedelta(hours=settings.timeseries_default_hours),
        origin=datetime.fromisoformat(settings.timeseries_bucket_origin),
        max_points=settings.timeseries_max_points,
    )

    def query() -> Series:
        mode = _storage_mode(request, pool)
        with reading(pool) as conn:
            return read_series(
                conn,
                device_id=device_id,
                tenant_id=None if who.sees_all_tenants else who.tenant_id,
                metric=metric,
                request=req,
                origin=datetime.fromisoformat(settings.timeseries_bucket_origin),
                storage_mode=mode,
                max_points=settings.timeseries_max_points,
                final_before=datetime.now(UTC) - timedelta(days=settings.ingest_max_past_days + 2),
            )

    series = await run_in_threadpool(query)
    wants_csv = format == "csv" or (format is None and _CSV in request.headers.get("accept", ""))
    if wants_csv:
        return Response(series.as_csv(), media_type="text/csv; charset=utf-8")
    return JSONResponse(series.as_json())
