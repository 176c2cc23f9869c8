"""Authentication and roles. Every router takes a Principal from here; tenant confinement is in the queries."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from api.deps import get_pool
from api.key_cache import KeyCache
from devices.keys import Principal, Role, authenticate

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")

UNAUTHORIZED = HTTPException(401, detail="missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})


async def principal(
    request: Request,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Principal:
    secret = header or (bearer.credentials if bearer else None)
    if not secret:
        raise UNAUTHORIZED
    cache: KeyCache = request.app.state.key_cache
    found = cache.get(secret)
    if found is None:

        def check() -> Principal | None:
            with pool.connection() as conn:
                return authenticate(conn, secret)

        found = await run_in_threadpool(check)
        if found is None:
            raise UNAUTHORIZED
        cache.put(secret, found)
    request.state.principal = found
    return found


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency admitting only the given roles (403 for the others)."""

    async def dependency(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            raise HTTPException(403, detail=f"role {who.role} may not do this")
        return who

    return dependency


ANY_ROLE = tuple(Role)
Authenticated = Annotated[Principal, Depends(principal)]
