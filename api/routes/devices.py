"""Device endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from api.auth import Authenticated
from api.deps import get_pool
from devices import latest_readings
from mimamori.errors import NotFound

router = APIRouter(prefix="/v1/devices", tags=["devices"])


class LatestValue(BaseModel):
    time: datetime
    value: float


class LatestReadings(BaseModel):
    device_id: str
    readings: dict[str, LatestValue]


@router.get("/{device_id}/latest", response_model=LatestReadings)
async def get_latest(
    device_id: str, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> LatestReadings:
    """The newest stored value of each of the device's metrics."""

    def query() -> dict[str, tuple[datetime, float]] | None:
        with pool.connection() as conn:
            return latest_readings(conn, device_id, None if who.sees_all_tenants else who.tenant_id)

    found = await run_in_threadpool(query)
    if found is None:
        raise NotFound(f"device {device_id!r} not found")
    return LatestReadings(
        device_id=device_id, readings={m: LatestValue(time=t, value=v) for m, (t, v) in found.items()}
    )
