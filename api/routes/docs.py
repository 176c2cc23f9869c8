"""The API's interactive documentation, `/docs` (Swagger UI) and `/redoc`, served from the hub's own files.

FastAPI's defaults load both from a CDN (and ReDoc's web fonts from Google): offline, as a hub in a flood often
is, the pages stayed blank. The libraries are vendored in api/web/vendor (see its README) under /web/vendor.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from api.bodies import StrictJSONRoute

router = APIRouter(include_in_schema=False, route_class=StrictJSONRoute)

DOCS_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
REDOC_PATH = "/redoc"
_VENDOR = "/web/vendor"
_FAVICON = "/favicon.ico"
# No "validate this spec online" badge: it would send the spec's address to swagger.io.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


def _openapi_url(request: Request) -> str:
    return request.scope.get("root_path", "") + (request.app.openapi_url or "/openapi.json")


@router.get(DOCS_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} API",
        swagger_js_url=f"{_VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{_VENDOR}/swagger-ui.css",
        swagger_favicon_url=_FAVICON,
        oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
        swagger_ui_parameters=_SWAGGER_PARAMETERS,
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_PATH)
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} API",
        redoc_js_url=f"{_VENDOR}/redoc.standalone.js",
        redoc_favicon_url=_FAVICON,
        with_google_fonts=False,
    )
