"""The built-in web map at `/`: its page, static assets, base layers and browser settings; and `/v1/me`.

The page and its assets are public (they hold no data; the browser asks for an API key and sends it with every
data request). Everything is served from the package: the map works with no internet connection.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from api.auth import Authenticated
from api.bodies import StrictJSONRoute
from api.responses import JSONResponse
from api.web import ATTRIBUTION, STATIC_DIR, VENDOR_DIR, synthetic_basemap
from api.web.levels import map_levels
from mimamori.errors import ConfigError
from mimamori.settings import Settings

router = APIRouter(tags=["web map"], route_class=StrictJSONRoute)

# Assets revalidate on every load (ETag, 304): after an upgrade a wall screen picks up the new map on reload.
_REVALIDATE = {"Cache-Control": "no-cache"}
JS_MEDIA_TYPE = "text/javascript; charset=utf-8"


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=_REVALIDATE)


@router.get("/map", include_in_schema=False)
async def map_alias() -> RedirectResponse:
    return RedirectResponse("/")


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml", headers=_REVALIDATE)


@lru_cache(maxsize=4)
def _basemap_bytes(path: str | None) -> bytes:
    if path is None:
        data: dict[str, Any] = synthetic_basemap()
    else:
        try:
            data = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"MIMAMORI_WEB_BASEMAP cannot be read as GeoJSON: {exc}") from None
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


@router.get(
    "/web/basemap.geojson",
    summary="The map's base layers (synthetic unless configured)",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}, "description": "GeoJSON"}},
)
async def basemap(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await run_in_threadpool(_basemap_bytes, settings.web_basemap)
    return Response(body, media_type="application/geo+json", headers=_REVALIDATE)


@router.get("/web/config.json", summary="The map's settings (no secrets)")
async def web_config(request: Request) -> JSONResponse:
    s: Settings = request.app.state.settings
    return JSONResponse(
        {
            "refresh_s": s.web_refresh_s,
            "banner_level": s.web_banner_level,
            "history_hours": s.web_history_hours,
            "attribution": ATTRIBUTION if s.web_basemap is None else s.web_basemap_attribution,
            "levels": map_levels(),
        },
        headers=_REVALIDATE,
    )


@router.get("/v1/me", tags=["keys"], summary="Who the API key belongs to: tenant and role")
async def me(who: Authenticated) -> dict[str, Any]:
    """What a client needs to shape itself to the key (the map hides what the role may not do)."""
    return {"tenant_id": who.tenant_id, "role": str(who.role), "sees_all_tenants": who.sees_all_tenants}


class _Assets(StaticFiles):
    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(_REVALIDATE)
        if str(full_path).endswith(".js") and "content-type" in response.headers:
            # Browsers run a module script only when it comes as JavaScript: not left to the host's MIME table
            # (Windows' registry can say text/plain). UTF-8, as every file here is (i18n.js holds Japanese).
            response.headers["content-type"] = JS_MEDIA_TYPE
        return response


# Mounted after the routes above, so /web/basemap.geojson and /web/config.json are not looked up as files.
router.mount("/web/vendor", _Assets(directory=VENDOR_DIR), name="web-vendor")
router.mount("/web", _Assets(directory=STATIC_DIR), name="web")
