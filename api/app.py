"""The FastAPI application, built by a factory so tests make their own against a scratch database."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg import DataError
from psycopg_pool import ConnectionPool, PoolTimeout

from alerts import WebhookDestinations
from alerts.feed import start_forwarding
from api.answer_cache import AnswerCache
from api.auth import document_security
from api.bodies import BodyLimit
from api.collections import feature_providers
from api.key_cache import KeyCache
from api.observability import RequestObservability
from api.problems import ERROR_RESPONSES, bad_value_handler, too_large_handler, validation_problem_handler
from api.responses import JSONResponse
from api.routes import alerts as alerts_routes
from api.routes import devices as devices_routes
from api.routes import docs as docs_routes
from api.routes import health as health_routes
from api.routes import ngsi_ld as ngsi_ld_routes
from api.routes import ogc as ogc_routes
from api.routes import ogc_tiles as ogc_tiles_routes
from api.routes import open_data as open_data_routes
from api.routes import public as public_routes
from api.routes import registry as registry_routes
from api.routes import sta as sta_routes
from api.routes import stands as stands_routes
from api.routes import telemetry as telemetry_routes
from api.routes import tiles as tiles_routes
from api.routes import timeseries as timeseries_routes
from api.routes import web as web_routes
from devices.silence import SilencePolicy
from ingest import CommittedReadings, RegistryCache, batch_writer, pipeline_config
from mimamori.db import make_pool
from mimamori.errors import Forbidden, MimamoriError, NotFound, ValidationError
from mimamori.settings import Settings


def create_app(
    settings: Settings,
    pool: ConnectionPool | None = None,
    committed: CommittedReadings | None = None,
    *,
    forward_to_evaluator: bool = False,
) -> FastAPI:
    """An app serving ``settings``' database; it opens (and later closes) its own pool unless given one.

    ``committed`` receives readings pushed over HTTP once stored (`mimamori up`'s alert engine listens there).
    With ``forward_to_evaluator`` (a `mimamori api` process of its own) they are forwarded instead to the
    `mimamori alerts run` process, as `mimamori ingest` forwards what it stores.
    """
    forwarding = forward_to_evaluator and settings.alerts_enabled
    if forwarding and committed is None:
        committed = CommittedReadings()

    def attach(app: FastAPI, the_pool: ConnectionPool) -> None:
        app.state.pool = the_pool
        app.state.writer = batch_writer(settings, the_pool, committed)
        app.state.registry = RegistryCache(the_pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = pool is None
        if own:
            attach(app, make_pool(settings))
        stop = threading.Event()
        if forwarding and committed is not None:
            start_forwarding(app.state.pool, committed, stop)
        try:
            yield
        finally:
            stop.set()
            if own:
                app.state.pool.close()

    # The docs pages are our own (api/routes/docs.py): FastAPI's load their scripts from a CDN.
    app = FastAPI(
        title="Mimamori",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.silence = SilencePolicy.from_settings(settings)
    app.state.feature_providers = feature_providers(app.state.silence)
    app.state.key_cache = KeyCache(settings.api_key_cache_s)
    app.state.answers = AnswerCache(settings.open_fresh_s, settings.open_cache_mb * 1024 * 1024)
    app.state.pipeline_config = pipeline_config(settings)
    app.state.webhook_destinations = WebhookDestinations.from_settings(settings)
    if pool is not None:
        attach(app, pool)

    @app.exception_handler(NotFound)
    async def _not_found(_r: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": "not_found", "detail": str(exc)}, status_code=404)

    @app.exception_handler(Forbidden)
    async def _forbidden(_r: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"error": "forbidden", "detail": str(exc)}, status_code=403)

    @app.exception_handler(ValidationError)
    async def _invalid(_r: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid", "detail": str(exc)}, status_code=422)

    async def _database_down(_r: Request, _exc: Exception) -> JSONResponse:
        # The database is away (restart, failover): say so plainly, and when to try again, instead of a 500.
        return JSONResponse(
            {"error": "unavailable", "detail": "the database is not answering; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for down in (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError):
        app.add_exception_handler(down, _database_down)

    app.add_exception_handler(DataError, bad_value_handler)
    app.add_exception_handler(RequestValidationError, validation_problem_handler)
    app.add_exception_handler(413, too_large_handler)

    @app.exception_handler(MimamoriError)
    async def _other(_r: Request, exc: MimamoriError) -> JSONResponse:
        return JSONResponse({"error": "unavailable", "detail": str(exc)}, status_code=503)

    # Inside the observability middleware, so a refused body is still logged and counted.
    app.add_middleware(
        BodyLimit,
        default=settings.api_max_body_bytes,
        limits={devices_routes.IMPORT_PATH: settings.api_import_max_bytes},
    )
    app.add_middleware(RequestObservability)
    # Routes are matched in this order, one by one: the busiest read paths first. In a typhoon those are the
    # citizens' (the open data and their page: a tenth of the cost of a request, measured, was matching the
    # routes in front of them), then the map's and GIS clients'.
    public_routes.check_translations(settings)
    app.include_router(open_data_routes.public)
    app.include_router(public_routes.router)
    app.include_router(tiles_routes.router)
    app.include_router(ogc_routes.router)
    app.include_router(ogc_tiles_routes.router)
    app.include_router(timeseries_routes.router)
    app.include_router(stands_routes.router)
    app.include_router(sta_routes.router)
    app.include_router(devices_routes.router)
    app.include_router(alerts_routes.router)
    app.include_router(ngsi_ld_routes.router)
    app.include_router(telemetry_routes.router)
    app.include_router(health_routes.router)
    app.include_router(registry_routes.router)
    app.include_router(open_data_routes.router)
    app.include_router(docs_routes.router)
    app.include_router(web_routes.router)  # last: it mounts /web
    document_security(app)
    return app
