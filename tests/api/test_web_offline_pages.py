"""Every page the hub serves to a browser works offline: a real headless Chromium against a running hub visits each
one (found from the app's routes and static mounts, so a new page cannot be left out) and no request leaves the hub
or fails. /docs (Swagger UI) and /redoc must also draw the API's operations, not just load."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api.app import create_app
from tests.alerts_helpers import clean_alert_tables, write_rules
from tests.web_support import CHROMIUM, CHROMIUM_ARGS, Traffic, require_chromium, running_hub

SECONDS = 1000  # Playwright waits in milliseconds
# Swagger UI's OAuth2 popup page reads window.opener, which exists only when Swagger UI opened it.
_POPUP_ONLY = {"/docs/oauth2-redirect"}
# What Chromium sends for a page: a route that answers browsers with HTML (content negotiation) is a page too.
_BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def browser():
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def hub(settings, pool, db, city, broker, tmp_path):
    clean_alert_tables(db)
    with running_hub(settings, pool, broker, alerts_rules_dir=str(write_rules(tmp_path / "rules"))) as running:
        yield running


def candidate_paths(routes) -> list[str]:
    """Every GET route without path parameters, and every .html file under a static mount, of every router."""
    paths: list[str] = []
    for context in iter_route_contexts(routes):  # included routers' routes too, with their full paths
        route = context.original_route
        if isinstance(route, Route) and "GET" in (route.methods or ()) and "{" not in context.path:
            paths.append(context.path)
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles) and route.app.directory:
            root = Path(route.app.directory)
            paths += [f"{context.path}/{f.relative_to(root).as_posix()}" for f in sorted(root.rglob("*.html"))]
    return paths


def html_pages(url: str, app) -> list[str]:
    """The candidates that answer with an HTML page (redirects are followed by the browser, not listed twice)."""
    pages = []
    with httpx.Client(base_url=url, timeout=10, headers={"Accept": _BROWSER_ACCEPT}) as client:
        for path in candidate_paths(app.routes):
            answer = client.get(path)
            if answer.status_code == 200 and answer.headers.get("content-type", "").startswith("text/html"):
                pages.append(path)
    return pages


def operations(url: str) -> list[tuple[str, str, str]]:
    """(method, path, operationId) of every operation, once per tag: both UIs list an operation under each tag."""
    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    verbs = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return [
        (verb.upper(), path, op["operationId"])
        for path, item in schema["paths"].items()
        for verb, op in item.items()
        if verb in verbs
        for _tag in op.get("tags") or [None]
    ]


def visit(browser, url: str, path: str, ready: str | None = None):
    context = browser.new_context(locale="en-GB")
    page = context.new_page()
    traffic = Traffic(url)
    traffic.watch(page)
    page.goto(url + path, wait_until="networkidle")
    if ready:
        page.wait_for_selector(ready, timeout=20 * SECONDS)
    return context, page, traffic


def test_the_pages_found_include_the_map_and_both_api_docs(hub, settings):
    pages = html_pages(hub.url, create_app(settings))
    assert {"/", "/docs", "/redoc", "/docs/oauth2-redirect", "/web/index.html"} <= set(pages)
    assert "/openapi.json" not in pages and "/web/config.json" not in pages  # JSON, not pages


def test_every_page_the_hub_serves_loads_with_no_outside_and_no_failed_request(browser, hub, settings):
    pages = html_pages(hub.url, create_app(settings))
    problems: dict[str, dict[str, list[str]]] = {}
    for path in pages:
        context, _page, traffic = visit(browser, hub.url, path)
        try:
            found = {"foreign": traffic.foreign(), "failed": traffic.failed}
            if path not in _POPUP_ONLY:
                found["console errors"] = traffic.console_errors
            if any(found.values()):
                problems[path] = found
            assert traffic.urls and traffic.urls[0] == hub.url + path  # the browser really asked the hub
        finally:
            context.close()
    assert problems == {}
    assert len(pages) >= 5


def test_swagger_ui_at_docs_draws_every_operation_from_the_hubs_own_files(browser, hub):
    expected = operations(hub.url)
    context, page, traffic = visit(browser, hub.url, "/docs", ready=".opblock")
    try:
        page.wait_for_function(f"document.querySelectorAll('.opblock').length === {len(expected)}")
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('.opblock-summary')].map(s => ["
            " s.querySelector('.opblock-summary-method').textContent,"
            " s.querySelector('.opblock-summary-path').dataset.path])"
        )
        assert sorted(map(tuple, drawn)) == sorted((method, path) for method, path, _id in expected)
        assert "Mimamori" in page.inner_text(".info .title")
        assert f"{hub.url}/web/vendor/swagger-ui-bundle.js" in traffic.urls
        assert f"{hub.url}/openapi.json" in traffic.urls
        assert traffic.foreign() == [] and traffic.failed == [] and traffic.console_errors == []
    finally:
        context.close()


def test_redoc_draws_every_operation_without_web_fonts(browser, hub):
    expected = operations(hub.url)
    wanted = "[data-section-id^='tag/'][data-section-id*='/operation/']"
    context, page, traffic = visit(browser, hub.url, "/redoc", ready=wanted)
    try:
        page.wait_for_function(f'document.querySelectorAll("{wanted}").length === {len(expected)}')
        drawn = page.evaluate(
            f"() => [...document.querySelectorAll(\"{wanted}\")].map(e => e.dataset.sectionId.split('/operation/')[1])"
        )
        assert sorted(drawn) == sorted(op_id for _m, _p, op_id in expected)
        assert f"{hub.url}/web/vendor/redoc.standalone.js" in traffic.urls
        assert not any("font" in u for u in traffic.urls)
        assert traffic.foreign() == [] and traffic.failed == [] and traffic.console_errors == []
    finally:
        context.close()
