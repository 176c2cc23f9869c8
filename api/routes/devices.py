"""Device endpoints."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field, model_validator

from api.auth import Authenticated, require
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from devices import broker_admin, latest_readings, manage
from devices.broker import DeviceCredentials
from devices.importer import read_rows
from devices.keys import Principal, Role
from devices.manage import BrokerFactory, Caller
from devices.queries import DeviceFilter
from devices.records import DeviceInfo
from devices.validation import DeviceSpec, DeviceStatus
from mimamori.db import reading
from mimamori.errors import NotFound, ValidationError

T = TypeVar("T")
IMPORT_PATH = "/v1/devices/import"  # its body limit is MIMAMORI_API_IMPORT_MAX_BYTES (api/app.py)

router = APIRouter(prefix="/v1/devices", tags=["devices"], route_class=StrictJSONRoute)


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
        with reading(pool) as conn:
            return latest_readings(conn, device_id, None if who.sees_all_tenants else who.tenant_id)

    found = await run_in_threadpool(query)
    if found is None:
        raise NotFound(f"device {device_id!r} not found")
    return LatestReadings(
        device_id=device_id, readings={m: LatestValue(time=t, value=v) for m, (t, v) in found.items()}
    )


# -- the registry ---------------------------------------------------------------------------------------------
# Reads: any role (partners confined to their tenant in the SQL). Writes: admin (any tenant) and partner (its
# own). A device of another tenant answers 404, exactly like one that does not exist.

_WRITERS = Depends(require(Role.admin, Role.partner))


class DeviceOut(BaseModel):
    id: str
    tenant_id: str
    device_type: str
    name: str
    lon: float | None
    lat: float | None
    status: str
    expected_interval_s: int
    installed_on: date | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    has_credentials: bool


class DeviceIn(BaseModel):
    id: str = Field(max_length=128)
    tenant_id: str | None = Field(None, description="Defaults to the caller's tenant.")
    device_type: str
    name: str = Field("", max_length=200)
    lon: float | None = None
    lat: float | None = None
    status: DeviceStatus = DeviceStatus.active
    expected_interval_s: int = 600
    installed_on: date | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


NULLABLE_IN_PATCH = frozenset({"lon", "lat", "installed_on"})


class DevicePatch(BaseModel):
    device_type: str | None = None
    name: str | None = Field(None, max_length=200)
    lon: float | None = None
    lat: float | None = None
    status: DeviceStatus | None = None
    expected_interval_s: int | None = None
    installed_on: date | None = None
    metadata: dict[str, Any] | None = Field(None, description="Replaces the whole object; {} clears it.")
    tenant_id: str | None = None

    @model_validator(mode="after")
    def _null_only_where_it_clears(self) -> DevicePatch:
        # null clears lon/lat and installed_on; for the other fields it is a mistake, not "leave as is"
        # (that is leaving the field out), and metadata is cleared with {}.
        nulled = sorted(f for f in self.model_fields_set - NULLABLE_IN_PATCH if getattr(self, f) is None)
        if nulled:
            raise ValueError(f"{', '.join(nulled)} cannot be null (leave a field out to keep it; metadata: {{}})")
        return self


class CredentialsOut(BaseModel):
    device_id: str
    username: str
    password: str = Field(description="Shown only in this answer; the hub keeps no copy.")
    telemetry_topic: str
    status_topic: str


class BadRowOut(BaseModel):
    row: int
    id: str
    reason: str


class ImportOut(BaseModel):
    created: int
    updated: int
    unchanged: int
    bad: list[BadRowOut]


def _out(d: DeviceInfo) -> DeviceOut:
    return DeviceOut(**d.registry_row())


def _broker(request: Request) -> BrokerFactory:
    settings = request.app.state.settings
    return lambda: broker_admin(settings)


async def _in_db(pool: ConnectionPool, work: Callable[[psycopg.Connection], T]) -> T:
    def run() -> T:
        with pool.connection() as conn:
            return work(conn)

    return await run_in_threadpool(run)


Pool = Annotated[ConnectionPool, Depends(get_pool)]


@router.get("", response_model=list[DeviceOut])
async def list_(
    who: Authenticated,
    pool: Pool,
    tenant: str | None = None,
    device_type: Annotated[str | None, Query(alias="type")] = None,
    status: DeviceStatus | None = None,
    bbox: Annotated[str | None, Query(description="min lon,min lat,max lon,max lat")] = None,
    q: Annotated[str | None, Query(max_length=100, description="Text in the id or name.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[DeviceOut]:
    """Devices, filtered; partners see only their own tenant's."""
    box: tuple[float, float, float, float] | None = None
    if bbox:
        try:
            x0, y0, x1, y1 = (float(v) for v in bbox.split(","))
        except ValueError:
            raise ValidationError("bbox must be four numbers: min lon,min lat,max lon,max lat") from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):  # float() reads nan and inf
            raise ValidationError("bbox values must be finite numbers")
        if x0 > x1 or y0 > y1:
            raise ValidationError("bbox minimum is above its maximum")
        box = (x0, y0, x1, y1)
    f = DeviceFilter(tenant, device_type, str(status) if status else None, box, q, limit, offset)
    found = await _in_db(pool, lambda conn: manage.list_devices(conn, Caller.from_principal(who), f))
    return [_out(d) for d in found]


@router.post("", response_model=DeviceOut, status_code=201)
async def create(body: DeviceIn, who: Annotated[Principal, _WRITERS], pool: Pool) -> DeviceOut:
    spec = DeviceSpec(**body.model_dump(exclude={"tenant_id"}), tenant_id=body.tenant_id or who.tenant_id)
    return _out(await _in_db(pool, lambda conn: manage.create_device(conn, Caller.from_principal(who), spec)))


@router.post(IMPORT_PATH.removeprefix("/v1/devices"), response_model=ImportOut)
async def import_(request: Request, who: Annotated[Principal, _WRITERS], pool: Pool) -> ImportOut:
    """CSV (text/csv) or GeoJSON (application/geo+json, application/json) in the body; a report per bad row.
    Rows without a tenant go to the caller's."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
    fmt = "geojson" if content_type in ("application/geo+json", "application/json") else "csv"
    body = await request.body()  # at most MIMAMORI_API_IMPORT_MAX_BYTES: BodyLimit answers 413 beyond
    try:
        rows = read_rows(body.decode("utf-8"), fmt)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"cannot read the {fmt} body: {exc}") from None
    caller = Caller.from_principal(who)
    broker = _broker(request)
    report = await _in_db(
        pool, lambda conn: manage.import_rows(conn, caller, rows, broker=broker, default_tenant=who.tenant_id)
    )
    return ImportOut(
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        bad=[BadRowOut(row=b.row, id=b.device_id, reason=b.reason) for b in report.bad],
    )


@router.get("/{device_id}", response_model=DeviceOut)
async def get(device_id: str, who: Authenticated, pool: Pool) -> DeviceOut:
    return _out(await _in_db(pool, lambda conn: manage.get_device(conn, Caller.from_principal(who), device_id)))


@router.patch("/{device_id}", response_model=DeviceOut)
async def patch(
    device_id: str, body: DevicePatch, request: Request, who: Annotated[Principal, _WRITERS], pool: Pool
) -> DeviceOut:
    changes = body.model_dump(exclude_unset=True)
    broker = _broker(request)
    return _out(
        await _in_db(
            pool, lambda conn: manage.update_device(conn, Caller.from_principal(who), device_id, changes, broker)
        )
    )


@router.post("/{device_id}/retire", response_model=DeviceOut)
async def retire(device_id: str, request: Request, who: Annotated[Principal, _WRITERS], pool: Pool) -> DeviceOut:
    """Retire the device; its broker account is deleted at once and its readings are refused."""
    broker = _broker(request)
    return _out(
        await _in_db(pool, lambda conn: manage.retire_device(conn, Caller.from_principal(who), device_id, broker))
    )


def _creds_out(c: DeviceCredentials) -> CredentialsOut:
    return CredentialsOut(
        device_id=c.device_id,
        username=c.username,
        password=c.password,
        telemetry_topic=c.telemetry_topic,
        status_topic=c.status_topic,
    )


@router.post("/{device_id}/credentials", response_model=CredentialsOut, status_code=201)
async def provision(
    device_id: str, request: Request, who: Annotated[Principal, _WRITERS], pool: Pool
) -> CredentialsOut:
    """Create the device's MQTT account; the password is in this answer only."""
    broker = _broker(request)
    creds = await _in_db(
        pool, lambda conn: manage.provision_device(conn, Caller.from_principal(who), device_id, broker)
    )
    return _creds_out(creds)


@router.post("/{device_id}/credentials/rotate", response_model=CredentialsOut)
async def rotate(device_id: str, request: Request, who: Annotated[Principal, _WRITERS], pool: Pool) -> CredentialsOut:
    """A new password, valid at once; the old one stops working and its open connection is dropped."""
    broker = _broker(request)
    creds = await _in_db(
        pool, lambda conn: manage.rotate_credentials(conn, Caller.from_principal(who), device_id, broker)
    )
    return _creds_out(creds)


@router.delete("/{device_id}/credentials", status_code=204)
async def revoke(device_id: str, request: Request, who: Annotated[Principal, _WRITERS], pool: Pool) -> Response:
    broker = _broker(request)
    await _in_db(pool, lambda conn: manage.revoke_credentials(conn, Caller.from_principal(who), device_id, broker))
    return Response(status_code=204)
