"""The citizens' page: /public (and /public/g/{gauge_id}, one gauge), its script and its service worker.

Anonymous like /open: no key, no cookie, the open-data rate limit per address, and cacheable (Cache-Control public
with a short max-age, a strong ETag and 304) so a proxy or CDN in front carries the load in an emergency. Thin:
read the snapshot, render with api/public/page.py. docs/citizens-page.md."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from psycopg_pool import ConnectionPool

from api.bodies import StrictJSONRoute
from api.public import PUBLIC_DIR
from api.public.page import load_translations, negotiate, render
from api.ratelimit import open_rate_limit
from mimamori.settings import Settings
from opendata import PublicSnapshot, public_snapshot

router = APIRouter(tags=["citizens' page"], route_class=StrictJSONRoute)
HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"


def check_translations(settings: Settings) -> None:
    """Read and check the translations file now: a city's broken edit stops the hub at start, naming the key,
    rather than failing the page in an emergency (ConfigError)."""
    load_translations(settings.public_translations)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _fresh(request: Request, etag: str) -> bool:
    """If-None-Match names this body (weak comparison, RFC 9110 13.1.2)."""
    header = request.headers.get("if-none-match") or ""
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _cacheable(request: Request, body: bytes, media_type: str, headers: dict[str, str]) -> Response:
    etag = _etag(body)
    settings: Settings = request.app.state.settings
    out = {"ETag": etag, "Cache-Control": f"public, max-age={settings.public_cache_max_age_s}", **headers}
    if _fresh(request, etag):
        return Response(status_code=304, headers=out)
    return Response(body, media_type=media_type, headers=out)


def _snapshot(pool: ConnectionPool, now: datetime) -> PublicSnapshot:
    with pool.connection() as conn:
        return public_snapshot(conn, now)


async def _page(request: Request, lang: str | None, gauge_id: str | None) -> Response:
    settings: Settings = request.app.state.settings
    tr = load_translations(settings.public_translations)
    chosen = negotiate(lang, request.headers.get("accept-language"), tr)
    # To the minute: the page (its ages) stays byte-identical, so its ETag too, within the minute.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    snapshot = await run_in_threadpool(_snapshot, request.app.state.pool, now)
    gauge = None
    if gauge_id is not None:
        gauge = next((g for g in snapshot.river_gauges if g.id == gauge_id), None)
    body = render(snapshot, tr, chosen, now, gauge=gauge, single=gauge_id is not None).encode()
    # The page differs by Accept-Language when no ?lang= is given: caches must keep one copy per language.
    headers = {"Vary": "Accept-Language, Accept-Encoding", "Content-Language": tr.languages[chosen]["html_lang"]}
    if gauge_id is not None and gauge is None:
        return Response(body, status_code=404, media_type=HTML, headers=headers)
    return _cacheable(request, body, HTML, headers)


@router.get("/public", include_in_schema=False, dependencies=[Depends(open_rate_limit)])
async def public_page(request: Request, lang: str | None = None) -> Response:
    return await _page(request, lang, None)


@router.get("/public/g/{gauge_id}", include_in_schema=False, dependencies=[Depends(open_rate_limit)])
async def public_gauge(request: Request, gauge_id: str, lang: str | None = None) -> Response:
    return await _page(request, lang, gauge_id)


@cache
def _asset(name: str) -> bytes:
    return (PUBLIC_DIR / name).read_bytes()


@router.get("/public/public.js", include_in_schema=False)
async def script(request: Request) -> Response:
    return _cacheable(request, _asset("public.js"), JS, {})


@router.get("/public/sw.js", include_in_schema=False)
async def service_worker(request: Request) -> Response:
    # Served under /public/ but governing /public itself too: the header widens its scope by that one path.
    return _cacheable(request, _asset("sw.js"), JS, {"Service-Worker-Allowed": "/public"})
