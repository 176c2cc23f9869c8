"""Authentication and roles. Every router takes a Principal from here; tenant confinement is in the queries."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import Headers

from api.key_cache import KeyCache
from devices.keys import Principal, Role, authenticate
from mimamori.db import reading

UNAUTHORIZED = HTTPException(401, detail="missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})

# How a key may be presented, as the OpenAPI document tells clients (see document_security).
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "API key as a bearer token"},
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "API key"},
    "HTTPBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "API key as the password, any user name: for clients that offer only Basic "
        "authentication, such as QGIS before 3.26",
    },
}


CONFLICTING = HTTPException(
    401,
    detail="conflicting credentials: present one API key, in X-API-Key or in Authorization, not two different ones",
    headers={"WWW-Authenticate": "Bearer"},
)


class ConflictingCredentials(Exception):
    """Two different credentials in one request: which one the caller meant is not ours to guess."""


def presented_secret(headers: Headers) -> str | None:
    """The key in ``X-API-Key``, else in ``Authorization: Bearer …``, else as the password of
    ``Authorization: Basic …`` (the scheme's name in any case).

    Raises ConflictingCredentials when the request carries an ``Authorization`` header beside ``X-API-Key``
    that does not name the same key (or several ``X-API-Key`` headers that differ): serving the valid one would
    let a bad credential ride along unnoticed, and a proxy's check of one header be bypassed with the other.
    """
    keys = set(headers.getlist("x-api-key"))
    if len(keys) > 1:
        raise ConflictingCredentials
    key = next(iter(keys), "")
    authorization = headers.get("authorization")
    if not key:
        return _authorization_secret(authorization or "")
    if authorization is not None and _authorization_secret(authorization) != key:
        raise ConflictingCredentials
    return key


def _authorization_secret(authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    scheme, token = scheme.lower(), token.strip()
    if scheme == "bearer":
        return token or None
    if scheme == "basic" and token:
        try:
            _user, _, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None


async def principal(request: Request) -> Principal:
    # One dependency reading the headers itself: FastAPI solves every sub-dependency anew on each request, and
    # on the busiest read paths that solving cost more than the cached key check.
    try:
        secret = presented_secret(request.headers)
    except ConflictingCredentials:
        raise CONFLICTING from None
    if not secret:
        raise UNAUTHORIZED
    cache: KeyCache = request.app.state.key_cache
    found = cache.get(secret)
    if found is None:
        pool = request.app.state.pool

        def check() -> Principal | None:
            with reading(pool) as conn:
                return authenticate(conn, secret)

        found = await run_in_threadpool(check)
        if found is None:
            raise UNAUTHORIZED
        cache.put(secret, found)
    request.state.principal = found
    return found


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def document_security(app: FastAPI) -> None:
    """Name the key schemes in the OpenAPI document, on every operation that authenticates its caller."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        requirement = [{name: []} for name in SECURITY_SCHEMES]
        for route in iter_route_contexts(app.routes):  # routes of included routers too, with their prefixes
            api_route = route.original_route
            if not isinstance(api_route, APIRoute) or not api_route.include_in_schema:
                continue
            if not _depends_on(api_route.dependant, principal):
                continue
            for method in route.methods or ():
                operation = schema["paths"].get(route.path_format, {}).get(method.lower())
                if operation is not None:
                    operation["security"] = requirement
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency admitting only the given roles (403 for the others)."""

    async def dependency(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            raise HTTPException(403, detail=f"role {who.role} may not do this")
        return who

    return dependency


ANY_ROLE = tuple(Role)
Authenticated = Annotated[Principal, Depends(principal)]
