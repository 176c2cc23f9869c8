"""The citizens' page in a real headless Chromium against a running hub: axe-core finds no violation at all (every
impact) in every language, with script on and off, on a phone and a desktop; the sites sort by the distance from a
position set through Chromium's DevTools protocol (the position is never sent); after one visit the page reloads
with the hub gone, showing its saved values and age under an offline banner; keyboard use; and no request leaves
127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.app import create_app
from api.public.page import haversine_km, load_translations
from devkit.api_server import ApiServer
from tests.public_support import HIGH, HIGH_PLACE, seed_public
from tests.web_support import ARTIFACTS, SECONDS, Traffic, axe_problems, chromium

LANGS = ["ja", "easy", "en", "pt-BR", "zh-CN", "vi", "tl"]
DESKTOP, PHONE, NARROW = (1280, 800), (390, 844), (320, 640)
EVERY_IMPACT = ("minor", "moderate", "serious", "critical")


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def app(settings, pool, db, city):
    seed_public(db, datetime.now(UTC))
    s = settings.model_copy(update={"open_burst": 10_000, "open_rate_per_s": 1000.0})
    return create_app(s, pool)


@pytest.fixture
def hub(app):
    with ApiServer(app) as server:
        yield server.url


def visit(browser, url: str, path: str, *, viewport=DESKTOP, script: bool = True, **options):
    """A new context on ``path``. ``script=False``: the page's own script never runs (it is answered empty and no
    service worker starts), as with script off, while axe-core, which needs the browser's timers, still can run;
    test_with_script_really_off_the_page_still_reads turns the browser's script off altogether."""
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]},
        locale="en-GB",
        service_workers="allow" if script else "block",
        **options,
    )
    page = context.new_page()
    traffic = Traffic(url)
    traffic.watch(page)
    if not script:
        page.route(
            "**/public/public.js", lambda route: route.fulfill(status=200, body="", content_type="text/javascript")
        )
    page.goto(url + path, wait_until="networkidle")
    return context, page, traffic


@pytest.mark.parametrize("script", [True, False], ids=["js", "no-js"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_violation_in_any_language(browser, hub, viewport, script):
    problems: dict[str, list[str]] = {}
    ARTIFACTS.mkdir(exist_ok=True)
    for lang in LANGS:
        context, page, traffic = visit(browser, hub, f"/public?lang={lang}", viewport=viewport, script=script)
        try:
            if script:
                page.wait_for_selector("#sort-sites:not([hidden])")  # the script ran
            else:
                assert page.is_hidden("#sort-sites")
            found = axe_problems(page, EVERY_IMPACT)
            found += [f"request left the hub: {u}" for u in traffic.foreign()]
            found += [f"failed: {u}" for u in traffic.failed] + [f"console: {m}" for m in traffic.console_errors]
            if found:
                problems[lang] = found
            if lang in ("ja", "en"):
                name = f"public-{lang}-{'phone' if viewport == PHONE else 'desktop'}-{'js' if script else 'nojs'}"
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        finally:
            context.close()
    assert problems == {}


def test_with_script_really_off_the_page_still_reads(browser, hub):
    words = load_translations(None).languages["ja"]
    context = browser.new_context(java_script_enabled=False, viewport={"width": PHONE[0], "height": PHONE[1]})
    try:
        page = context.new_page()
        page.goto(hub + "/public?lang=ja")
        main = page.inner_text("main")
        for needed in (words["levels"][4], "6.90 m", words["what_to_do"], words["sites_order"], "崇化館交流館"):
            assert needed in main
        assert page.is_hidden("#sort-sites") and page.is_hidden("#offline")
        assert page.get_attribute("html", "data-cached") is None  # no script ran
    finally:
        context.close()


def test_one_gauge_page_and_a_narrow_screen_pass_axe(browser, hub):
    for path, viewport in ((f"/public/g/{HIGH}?lang=vi", PHONE), ("/public?lang=pt-BR", NARROW)):
        context, page, traffic = visit(browser, hub, path, viewport=viewport)
        try:
            assert axe_problems(page, EVERY_IMPACT) == []
            # reflows to 320 px (and so 200 % zoom of 640 px) with no sideways scrolling
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
            assert traffic.foreign() == [] and traffic.failed == []
        finally:
            context.close()


def test_the_sites_sort_by_distance_from_a_position_that_is_never_sent(browser, hub):
    context, page, traffic = visit(browser, hub, "/public?lang=en", viewport=PHONE, permissions=["geolocation"])
    try:
        cdp = context.new_cdp_session(page)
        lon, lat = HIGH_PLACE
        cdp.send("Emulation.setGeolocationOverride", {"latitude": lat, "longitude": lon, "accuracy": 10})
        listed = page.eval_on_selector_all(
            "li.site[data-lat]", "els => els.map(e => [e.dataset.site, +e.dataset.lat, +e.dataset.lon])"
        )
        assert len(listed) >= 10
        before = list(traffic.urls)
        page.click("#sort-sites")
        page.wait_for_selector("#sites-sorted li.site")
        order = page.eval_on_selector_all("#sites-sorted li.site", "els => els.map(e => e.dataset.site)")
        expected = [s for s, *_ in sorted(listed, key=lambda r: haversine_km(lat, lon, r[1], r[2]))]
        assert order == expected
        assert order != [s for s, *_ in listed]  # the district order really changed
        first = page.inner_text("#sites-sorted li.site >> nth=0 >> .dist")
        nearest = haversine_km(lat, lon, *next(r[1:] for r in listed if r[0] == order[0]))
        assert first == f"about {nearest:.1f} km"
        assert page.is_hidden("#site-groups")
        assert page.inner_text("#sort-status") == "Sorted by distance from you."
        assert traffic.urls == before  # sorting asked nothing of anyone: the position stayed in the browser
        assert not any(f"{lat}" in u or f"{lon}" in u for u in traffic.urls)
        assert axe_problems(page, EVERY_IMPACT) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "public-sorted-phone.png"), full_page=True)
    finally:
        context.close()


def test_after_one_visit_the_page_reloads_offline_with_its_age(browser, app):
    words = load_translations(None).languages["en"]
    server = ApiServer(app)
    with server:
        context, page, traffic = visit(browser, server.url, "/public?lang=en", viewport=PHONE)
        page.wait_for_selector("html[data-cached='1']", timeout=15 * SECONDS)
        assert page.is_hidden("#offline")
    try:
        # the hub is gone: no network at all for this page now
        page.reload(wait_until="load")
        page.wait_for_selector("#offline:not([hidden])", timeout=10 * SECONDS)
        assert page.get_attribute("html", "data-offline") == "1"
        banner = page.inner_text("#offline")
        assert banner.startswith("You are offline. Showing information saved at ")
        assert words["age_now"] in banner or "min ago" in banner, banner
        assert "6.90 m" in page.inner_text(f"[data-gauge='{HIGH}']")
        assert "Level 4: everyone evacuate" in page.inner_text(f"[data-gauge='{HIGH}']")
        assert axe_problems(page, EVERY_IMPACT) == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "public-offline-phone.png"), full_page=True)
        assert traffic.foreign() == []
    finally:
        context.close()


def test_keyboard_only(browser, hub):
    context, page, _ = visit(browser, hub, "/public?lang=ja", viewport=PHONE)
    try:
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        box = page.locator(".skip").bounding_box()
        assert box and box["y"] >= 0  # shown when focused
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        # the language links come next in order from the top, then the sort button is reachable
        page.keyboard.press("Shift+Tab")
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "sort-sites":
                break
        assert page.evaluate("document.activeElement.id") == "sort-sites"
    finally:
        context.close()
