"""The FastAPI application, built by a factory so tests make their own against a scratch database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool

from api.routes import devices as devices_routes
from mimamori.db import make_pool
from mimamori.errors import Forbidden, MimamoriError, NotFound, ValidationError
from mimamori.settings import Settings


def create_app(settings: Settings, pool: ConnectionPool | None = None) -> FastAPI:
    """An app serving ``settings``' database; it opens (and later closes) its own pool unless given one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = pool is None
        app.state.pool = make_pool(settings) if own else pool
        try:
            yield
        finally:
            if own:
                app.state.pool.close()

    app = FastAPI(title="Mimamori", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    if pool is not None:
        app.state.pool = pool

    @app.exception_handler(NotFound)
    async def _not_found(_r: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": "not_found", "detail": str(exc)}, status_code=404)

    @app.exception_handler(Forbidden)
    async def _forbidden(_r: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"error": "forbidden", "detail": str(exc)}, status_code=403)

    @app.exception_handler(ValidationError)
    async def _invalid(_r: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid", "detail": str(exc)}, status_code=422)

    @app.exception_handler(MimamoriError)
    async def _other(_r: Request, exc: MimamoriError) -> JSONResponse:
        return JSONResponse({"error": "unavailable", "detail": str(exc)}, status_code=503)

    app.include_router(devices_routes.router)
    return app
