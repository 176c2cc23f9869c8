"""The citizens' page: /public (and /public/g/{gauge_id}, one gauge), its script and its service worker.

Anonymous like /open: no key, no cookie, the open-data rate limit per address, and cacheable (Cache-Control public
with a short max-age, a strong ETag and 304) so a proxy or CDN in front carries the load in an emergency. Thin:
read the snapshot, render with api/public/page.py. docs/citizens-page.md."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from psycopg_pool import ConnectionPool

from api.answer_cache import AnswerCache, Built, send
from api.bodies import StrictJSONRoute
from api.public import PUBLIC_DIR
from api.public.page import Translations, load_translations, negotiate, render
from api.ratelimit import open_rate_limit
from mimamori.settings import Settings
from opendata import public_snapshot

router = APIRouter(tags=["citizens' page"], route_class=StrictJSONRoute)
HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"


def check_translations(settings: Settings) -> None:
    """Read and check the translations file now: a city's broken edit stops the hub at start, naming the key,
    rather than failing the page in an emergency (ConfigError)."""
    load_translations(settings.public_translations)


def _send(request: Request, built: Built) -> Response:
    settings: Settings = request.app.state.settings
    return send(built, request.headers.get("if-none-match"), settings.public_cache_max_age_s)


def _build_page(pool: ConnectionPool, tr: Translations, chosen: str, gauge_id: str | None) -> Built:
    # To the minute: the page (its ages) stays byte-identical, so its ETag too, within the minute.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with pool.connection() as conn:
        snapshot = public_snapshot(conn, now)
    gauge = None
    if gauge_id is not None:
        gauge = next((g for g in snapshot.river_gauges if g.id == gauge_id), None)
    body = render(snapshot, tr, chosen, now, gauge=gauge, single=gauge_id is not None).encode()
    # The page differs by Accept-Language when no ?lang= is given: caches must keep one copy per language.
    headers = {"Vary": "Accept-Language, Accept-Encoding", "Content-Language": tr.languages[chosen]["html_lang"]}
    status = 404 if gauge_id is not None and gauge is None else 200
    return Built.of(body, HTML, status=status, headers=headers)


async def _page(request: Request, lang: str | None, gauge_id: str | None) -> Response:
    settings: Settings = request.app.state.settings
    tr = load_translations(settings.public_translations)
    chosen = negotiate(lang, request.headers.get("accept-language"), tr)
    answers: AnswerCache = request.app.state.answers
    pool: ConnectionPool = request.app.state.pool
    built = await answers.get(("page", chosen, gauge_id), lambda: _build_page(pool, tr, chosen, gauge_id))
    return _send(request, built)


@router.get("/public", include_in_schema=False, dependencies=[Depends(open_rate_limit)])
async def public_page(request: Request, lang: str | None = None) -> Response:
    return await _page(request, lang, None)


@router.get("/public/g/{gauge_id}", include_in_schema=False, dependencies=[Depends(open_rate_limit)])
async def public_gauge(request: Request, gauge_id: str, lang: str | None = None) -> Response:
    return await _page(request, lang, gauge_id)


@cache
def _asset(name: str, media_type: str) -> Built:
    return Built.of((PUBLIC_DIR / name).read_bytes(), media_type)


@router.get("/public/public.js", include_in_schema=False)
async def script(request: Request) -> Response:
    return _send(request, _asset("public.js", JS))


@router.get("/public/sw.js", include_in_schema=False)
async def service_worker(request: Request) -> Response:
    # Served under /public/ but governing /public itself too: the header widens its scope by that one path.
    response = _send(request, _asset("sw.js", JS))
    response.headers["Service-Worker-Allowed"] = "/public"
    return response
