"""Catalogue, tenants, API keys and the audit log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from api.auth import Authenticated, require
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from devices import keys, manage
from devices.keys import Principal, Role
from devices.manage import Caller
from devices.queries import catalogue_from_db, list_audit, tenant_exists
from mimamori.errors import NotFound, ValidationError

router = APIRouter(tags=["registry"], route_class=StrictJSONRoute)
T = TypeVar("T")
Pool = Annotated[ConnectionPool, Depends(get_pool)]
Admin = Annotated[Principal, Depends(require(Role.admin))]


async def _in_db(pool: ConnectionPool, work: Callable[[psycopg.Connection], T]) -> T:
    def run() -> T:
        with pool.connection() as conn:
            return work(conn)

    return await run_in_threadpool(run)


class MetricOut(BaseModel):
    metric: str
    unit: str
    min: float | None
    max: float | None
    alt_units: dict[str, float]


class DeviceTypeOut(BaseModel):
    id: str
    name: str
    name_ja: str | None
    description: str | None
    site_schema: dict[str, str]
    metrics: list[MetricOut]


@router.get("/v1/device-types", response_model=list[DeviceTypeOut])
async def device_types(_who: Authenticated, pool: Pool) -> list[DeviceTypeOut]:
    """The catalogue: each type's metrics (canonical unit, valid range, accepted units) and site metadata."""
    catalogue = await _in_db(pool, catalogue_from_db)
    return [
        DeviceTypeOut(
            id=t.id,
            name=t.name,
            name_ja=t.name_ja,
            description=t.description,
            site_schema=t.site_schema,
            metrics=[
                MetricOut(metric=m.metric, unit=m.unit, min=m.min_value, max=m.max_value, alt_units=m.alt_units)
                for m in t.metrics.values()
            ],
        )
        for t in catalogue.values()
    ]


class TenantOut(BaseModel):
    id: str
    name: str
    kind: str
    created_at: datetime
    devices: int


class TenantIn(BaseModel):
    id: str
    name: str = ""
    kind: str = "partner"


@router.get("/v1/tenants", response_model=list[TenantOut])
async def tenants(who: Authenticated, pool: Pool) -> list[TenantOut]:
    """Tenants; a partner sees only its own."""
    found = await _in_db(pool, lambda conn: manage.list_tenants(conn, Caller.from_principal(who)))
    return [TenantOut(**t.__dict__) for t in found]


@router.post("/v1/tenants", status_code=201, response_model=TenantOut)
async def save_tenant(body: TenantIn, who: Admin, pool: Pool) -> TenantOut:
    def work(conn: psycopg.Connection) -> TenantOut:
        manage.create_tenant(conn, Caller.from_principal(who), body.id, body.name, body.kind)
        return next(TenantOut(**t.__dict__) for t in manage.list_tenants(conn, Caller(who.key_id, body.id)))

    return await _in_db(pool, work)


class KeyOut(BaseModel):
    id: str
    tenant_id: str
    role: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyIn(BaseModel):
    tenant_id: str
    role: Role
    name: str = Field(
        "",
        max_length=200,
        description="The person who holds the key (required for admin, operator and forestry keys), or what it is for.",
    )


class NewKeyOut(BaseModel):
    id: str
    secret: str = Field(description="Shown only in this answer; the hub stores a hash.")


@router.get("/v1/keys", response_model=list[KeyOut])
async def list_keys(_who: Admin, pool: Pool, tenant: str | None = None) -> list[KeyOut]:
    found = await _in_db(pool, lambda conn: keys.list_keys(conn, tenant))
    return [KeyOut(**{f: getattr(k, f) for f in KeyOut.model_fields}) for k in found]


@router.post("/v1/keys", status_code=201, response_model=NewKeyOut)
async def create_key(body: KeyIn, who: Admin, pool: Pool) -> NewKeyOut:
    def work(conn: psycopg.Connection) -> NewKeyOut:
        if not tenant_exists(conn, body.tenant_id):
            raise ValidationError(f"unknown tenant {body.tenant_id!r}")
        name = keys.key_name(body.role, body.name)
        key_id, secret = keys.create_key(conn, body.tenant_id, body.role, name)
        keys.audit(conn, who.key_id, "key.create", key_id, {"tenant": body.tenant_id, "role": str(body.role)})
        return NewKeyOut(id=key_id, secret=secret)

    return await _in_db(pool, work)


@router.delete("/v1/keys/{key_id}", status_code=204)
async def revoke_key(key_id: str, who: Admin, pool: Pool, request: Request) -> Response:
    def work(conn: psycopg.Connection) -> None:
        if not keys.revoke_key(conn, key_id):
            raise NotFound(f"no active key {key_id!r}")
        keys.audit(conn, who.key_id, "key.revoke", key_id, {})

    await _in_db(pool, work)
    request.app.state.key_cache.forget_key(key_id)  # refused here at once; elsewhere within the cache's age
    return Response(status_code=204)


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]


@router.get("/v1/audit", response_model=list[AuditOut])
async def audit_log(
    _who: Admin,
    pool: Pool,
    action: Annotated[str | None, Query(max_length=100, description="Actions starting with this.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditOut]:
    """Administrative actions, newest first: who (key id or cli:user), what, when."""
    found = await _in_db(pool, lambda conn: list_audit(conn, limit, action))
    return [AuditOut(**e.__dict__) for e in found]
