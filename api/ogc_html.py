"""OGC API – Features' HTML representation (Part 1, conformance class /conf/html): the landing page, conformance,
collections, one collection, a page of items and one item as pages for people with a web browser.

Which representation a request gets: ``f=html`` or ``f=json`` (``geojson`` for features) when given, else HTML only
when the ``Accept`` header ranks ``text/html`` above every JSON type (a browser's ``text/html,…,*/*;q=0.8``); GIS
clients, ``curl`` (``*/*``) and no header at all keep JSON.

A browser cannot send the API key header, so an HTML request without a key is answered 401 with an HTTP Basic
challenge: the browser asks for a user name and password, and the key goes as the password (any user name), which
api.auth already accepts. Every role can reach the pages that way; nothing else about authentication changes.

Feature properties are text from devices and partners: every template is rendered with autoescaping on.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from functools import lru_cache
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import quote

import orjson
from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from starlette.exceptions import HTTPException

from api import ogc
from api.bodies import StrictJSONRoute
from api.responses import JSONResponse
from api.web import ATTRIBUTION, WEB_ROOT
from mimamori.errors import Forbidden, NotFound, ValidationError
from mimamori.settings import Settings

Page = Literal["landing", "conformance", "collections", "collection", "items", "item"]
PAGES: frozenset[str] = frozenset({"landing", "conformance", "collections", "collection", "items", "item"})
# The f values each page takes; features come as GeoJSON, which f=json names as well.
FORMATS: Mapping[str, frozenset[str]] = {
    page: frozenset({"json", "html", "geojson"} if page in ("items", "item") else {"json", "html"}) for page in PAGES
}
# For the OpenAPI document: the pages answer HTML too.
HTML_CONTENT: dict[str, Any] = {ogc.HTML: {"schema": {"type": "string"}}}
_JSON_TYPES = ("application/json", "application/geo+json", "application/schema+json")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# The browser's Basic prompt sends the key as the password; the realm names what it is for.
BASIC_CHALLENGE = 'Basic realm="Mimamori OGC API (API key as the password)", charset="UTF-8"'
VARY = "Accept, Accept-Language"
TEMPLATES = WEB_ROOT / "templates" / "ogc"


# --- negotiation (pure) ---------------------------------------------------------------------------------------


def _accepted(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their q values (a malformed q counts as 0)."""
    ranges = []
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media.lower(), q))
    return ranges


def prefers_html(accept: str | None) -> bool:
    """Whether the Accept header ranks an HTML type above every JSON type. Wildcards (``*/*``) are no vote for
    HTML: a client that takes anything gets JSON, the API's own form; a tie goes to JSON too."""
    ranges = _accepted(accept or "")
    html = max((q for media, q in ranges if media in _HTML_TYPES), default=0.0)
    json = max(
        (q for media, q in ranges if media in _JSON_TYPES or media in ("application/*", "*/*")),
        default=0.0,
    )
    return html > 0 and html > json


def wants_html(query: Mapping[str, str], accept: str | None, page: str) -> bool:
    """HTML or JSON for this request; a bad ``f`` raises ValidationError (an OGC 400)."""
    f = query.get("f")
    if f is None:
        return prefers_html(accept)
    allowed = FORMATS[page]
    if f not in allowed:
        raise ValidationError(f"f must be {' or '.join(sorted(allowed))}")
    return f == "html"


def page_language(accept_language: str | None) -> str:
    """``ja`` when the browser's first choice is Japanese, else ``en``."""
    ranges = sorted(_accepted(accept_language or ""), key=lambda r: -r[1])
    return "ja" if ranges and ranges[0][0].split("-")[0] == "ja" and ranges[0][1] > 0 else "en"


# --- rendering (pure: a document in, HTML out) ------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "site": "Mimamori OGC API",
        "home": "Home",
        "breadcrumb": "Breadcrumb",
        "landing": "Mimamori OGC API – Features",
        "conformance": "Conformance classes",
        "collections": "Collections",
        "collection": "Collection",
        "features": "Features",
        "item": "Feature",
        "as_json": "This page as JSON",
        "as_geojson": "This page as GeoJSON",
        "links": "Links",
        "id": "Identifier",
        "title": "Title",
        "description": "Description",
        "extent": "Extent (west, south, east, north; CRS84)",
        "browse": "Browse the features",
        "queryables": "Queryables (JSON Schema)",
        "schema": "Schema of the features (JSON Schema)",
        "matched": "Features matching",
        "returned": "Features on this page",
        "paging": "Pages",
        "next": "Next page",
        "prev": "Previous page",
        "properties": "Properties",
        "property": "Property",
        "value": "Value",
        "map": "Map of the features on this page",
        "map_one": "Map of this feature",
        "no_map": "The map cannot be shown in this browser (no WebGL).",
        "none": "No features match.",
        "sign_in": "Pages with data ask for your API key: give it as the password (any user name).",
        "error": "Error",
        "back": "Back to the landing page",
        "api": "API definition (OpenAPI)",
        "docs": "API documentation",
        "collection_of": "Collection",
    },
    "ja": {
        "site": "見守り OGC API",
        "home": "ホーム",
        "breadcrumb": "現在位置",
        "landing": "見守り OGC API – Features",
        "conformance": "適合クラス",
        "collections": "コレクション一覧",
        "collection": "コレクション",
        "features": "地物一覧",
        "item": "地物",
        "as_json": "このページのJSON版",
        "as_geojson": "このページのGeoJSON版",
        "links": "リンク",
        "id": "識別子",
        "title": "名称",
        "description": "説明",
        "extent": "範囲（西・南・東・北、CRS84）",
        "browse": "地物を見る",
        "queryables": "検索可能な属性（JSON Schema）",
        "schema": "地物のスキーマ（JSON Schema）",
        "matched": "該当する地物の数",
        "returned": "このページの地物の数",
        "paging": "ページ",
        "next": "次のページ",
        "prev": "前のページ",
        "properties": "属性",
        "property": "属性名",
        "value": "値",
        "map": "このページの地物の地図",
        "map_one": "この地物の地図",
        "no_map": "このブラウザでは地図を表示できません（WebGLなし）。",
        "none": "該当する地物はありません。",
        "sign_in": "データのページではAPIキーを求められます。"
        "パスワード欄にキーを入力してください（ユーザー名は任意）。",
        "error": "エラー",
        "back": "トップページへ戻る",
        "api": "API定義（OpenAPI）",
        "docs": "APIドキュメント",
        "collection_of": "コレクション",
    },
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        # Everything is escaped, .html or not: property values are hostile text.
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = cell
    env.filters["html_href"] = html_href
    env.filters["with_format"] = ogc.with_format
    return env


def cell(value: object) -> str:
    """A property value as text: strings as they are, anything else as JSON (lists, objects, numbers)."""
    if value is None or isinstance(value, Undefined):
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# The relations that lead to one of the six pages (tiles, schemas and the API definition have no HTML).
_PAGE_RELS = frozenset({"self", "data", "conformance", "collection", "items", "next", "prev"})


def html_href(link: Mapping[str, Any]) -> str:
    """Where a link of a JSON document goes in the HTML pages: another OGC page's HTML, else the link itself."""
    href = str(link["href"])
    if link.get("rel") in _PAGE_RELS and link.get("type") in (ogc.JSON, ogc.GEOJSON):
        return ogc.with_format(href, "html")
    return href


def _link(doc: Mapping[str, Any], rel: str) -> dict[str, Any] | None:
    links: list[dict[str, Any]] = doc.get("links", [])  # type: ignore[assignment]
    return next((link for link in links if link.get("rel") == rel), None)


def property_columns(features: list[Mapping[str, Any]]) -> list[str]:
    """The union of the features' property names, in the order they first appear."""
    seen: dict[str, None] = {}
    for feature in features:
        for name in feature.get("properties") or {}:
            seen.setdefault(name, None)
    return list(seen)


def render(page: Page, doc: Mapping[str, Any], *, lang: str, attribution: str, lon_lat: bool = True) -> str:
    """The HTML page of an OGC document (the JSON the API would answer, links and all). ``lon_lat``: whether the
    coordinates are CRS84 (the map is drawn only then; a page asked for in another CRS is the table alone)."""
    self_link = _link(doc, "self")
    self_href = str(self_link["href"]) if self_link else ""
    context: dict[str, Any] = {
        "doc": doc,
        "page": page,
        "lang": lang,
        "t": LABELS[lang],
        "attribution": attribution,
        "show_map": lon_lat,
        "json_href": ogc.with_format(self_href, "json") if self_href else "",
        "json_type": self_link.get("type", ogc.JSON) if self_link else ogc.JSON,
        "collection_link": _link(doc, "collection"),
        "next_link": _link(doc, "next"),
        "prev_link": _link(doc, "prev"),
    }
    collection = context["collection_link"]
    if collection is not None:
        context["collection_title"] = collection.get("title") or ""
        context["items_href"] = ogc.with_format(f"{collection['href']}/items", "html")
    if page == "items":
        features = doc.get("features", [])
        context["columns"] = property_columns(features)
        base = f"{collection['href']}/items/" if collection else ""
        context["item_hrefs"] = [ogc.with_format(base + quote(str(f.get("id")), safe=""), "html") for f in features]
        context["geojson"] = {"type": "FeatureCollection", "features": features}
    elif page == "item":
        context["geojson"] = {"type": "FeatureCollection", "features": [{k: v for k, v in doc.items() if k != "links"}]}
    return environment().get_template(f"{page}.html").render(context)


def render_error(status: int, code: str, description: str, *, lang: str) -> str:
    return (
        environment()
        .get_template("error.html")
        .render(
            {
                "status": status,
                "code": code,
                "description": description,
                "lang": lang,
                "t": LABELS[lang],
                "page": "error",
            }
        )
    )


# --- answering ------------------------------------------------------------------------------------------------


def _attribution(request: Request) -> str:
    s: Settings = request.app.state.settings
    return ATTRIBUTION if s.web_basemap is None else s.web_basemap_attribution


def respond(
    request: Request,
    doc: dict[str, Any],
    page: Page,
    *,
    media_type: str = ogc.JSON,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The document as the request negotiated it: its HTML page, or JSON as before."""
    out = {**(headers or {}), "Vary": VARY}
    if wants_html(request.query_params, request.headers.get("accept"), page):
        lang = page_language(request.headers.get("accept-language"))
        lon_lat = out.get("Content-Crs", f"<{ogc.CRS84}>") == f"<{ogc.CRS84}>"
        body = render(page, doc, lang=lang, attribution=_attribution(request), lon_lat=lon_lat)
        return HTMLResponse(body, headers=out)
    return JSONResponse(doc, media_type=media_type, headers=out)


def error_response(request: Request, status: int, code: str, description: str, headers: Mapping[str, str]) -> Response:
    lang = page_language(request.headers.get("accept-language"))
    out = {**headers, "Vary": VARY}
    if status == 401:
        out["WWW-Authenticate"] = BASIC_CHALLENGE
    return HTMLResponse(render_error(status, code, description, lang=lang), status_code=status, headers=out)


def _ogc_invalid(exc: ValidationError) -> JSONResponse:
    return JSONResponse({"code": "InvalidParameterValue", "description": str(exc)}, status_code=400)


class NegotiatedRoute(StrictJSONRoute):
    """The OGC router's route class: on its six pages a bad ``f`` is an OGC 400, and a request that negotiated HTML
    gets its errors as HTML pages too (a 401 with a Basic challenge, so that a browser can sign in)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.name not in PAGES:
            return handler
        page = self.name

        async def negotiated(request: Request) -> Response:
            try:
                html = wants_html(request.query_params, request.headers.get("accept"), page)
            except ValidationError as exc:
                if prefers_html(request.headers.get("accept")):
                    return error_response(request, 400, "InvalidParameterValue", str(exc), {})
                return _ogc_invalid(exc)
            if not html:
                return await handler(request)
            try:
                response = await handler(request)
            except HTTPException as exc:
                phrase = HTTPStatus(exc.status_code).phrase
                return error_response(request, exc.status_code, phrase, str(exc.detail), exc.headers or {})
            except NotFound as exc:
                return error_response(request, 404, HTTPStatus.NOT_FOUND.phrase, str(exc), {})
            except Forbidden as exc:
                return error_response(request, 403, HTTPStatus.FORBIDDEN.phrase, str(exc), {})
            if response.status_code >= 400 and response.media_type == ogc.JSON:
                # The route's own error (the items' OGC 400): the same words, as a page.
                body = orjson.loads(bytes(response.body))
                code = str(body.get("code") or body.get("error") or "Error")
                description = str(body.get("description") or body.get("detail") or "")
                return error_response(request, response.status_code, code, description, {})
            return response

        return negotiated
