"""The web map in a real headless Chromium against a running hub (ingest, alert engine and API over real MQTT and
PostgreSQL): it loads with no failed and no outside requests, shows the devices, shows an alert raised by readings
published over MQTT within seconds, lets an operator acknowledge it with a note, and speaks Japanese."""

from __future__ import annotations

import dataclasses
import os
import shutil

import httpx
import pytest

from devices.keys import Role, create_key
from tests.alerts_helpers import add_gauges, clean_alert_tables, write_rules
from tests.services import ROOT, wait_until
from tests.web_support import ARTIFACTS, SECONDS, chromium, open_map, publish_levels, running_hub


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def hub(settings, pool, db, city, broker, tmp_path):
    clean_alert_tables(db)
    add_gauges(db, ("g1", "toyota-city", 137.179, 35.094), ("g2", "toyota-city", 137.160, 35.036))
    rules = write_rules(tmp_path / "rules")
    with running_hub(settings, pool, broker, alerts_rules_dir=str(rules)) as running:
        keys = {r: create_key(db, "toyota-city", r)[1] for r in (Role.operator, Role.viewer)}
        keys[Role.partner] = create_key(db, "acme", Role.partner)[1]
        yield running, keys


def test_the_map_loads_from_the_hub_alone_and_shows_every_device(browser, hub):
    running, keys = hub
    context, page, traffic = open_map(browser, running.url, keys[Role.viewer])
    try:
        page.wait_for_function("document.querySelector('#device-count').textContent.includes('5')")
        # the map drew the base layers and one circle per located device
        page.wait_for_function("window.mimamoriMap && window.mimamoriMap.loaded()", timeout=15 * SECONDS)
        rendered = page.evaluate(
            "() => window.mimamoriMap.queryRenderedFeatures({layers: ['devices']}).map(f => f.properties.id).sort()"
        )
        assert rendered == ["acme-soil-1", "g1", "g2", "gauge-1", "rain-1"]
        assert page.evaluate("() => window.mimamoriMap.queryRenderedFeatures({layers: ['rivers']}).length") > 0
        assert "SYNTHETIC" in page.inner_text(".maplibregl-ctrl-attrib")
        # nothing has reported yet, so every active device is marked silent
        assert "5" in page.inner_text("#silent-count")
        page.click("#tab-devices")
        assert page.locator("#device-list button.row.silent").count() == 5
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-map-devices.png"))
        assert traffic.failed == []
        assert traffic.foreign() == []
        assert traffic.console_errors == []
        assert any("/web/vendor/maplibre-gl.js" in u for u in traffic.urls)
    finally:
        context.close()


def test_an_alert_from_mqtt_readings_appears_live_and_an_operator_acknowledges_it(browser, hub, broker, db):
    running, keys = hub
    context, page, traffic = open_map(browser, running.url, keys[Role.operator])
    try:
        assert page.locator("#alert-list .alert-row").count() == 0
        # 6.2 m passes the evacuation-judgement level (6.0 m) of g1: warning level 3
        publish_levels(broker, running.settings, "g1", [3.0, 4.0, 6.2])
        row = page.locator("#alert-list .alert-row[data-level='3']")
        row.wait_for(timeout=15 * SECONDS)
        assert page.is_visible("#banner")
        assert "level 3" in page.inner_text("#banner-text").lower()
        assert page.locator("#alert-list li").first.locator(".alert-row.fresh").count() == 1  # on top, highlighted
        # on the map: the alert's point and area, and the gauge drawn at level 3
        alert_id = int(row.get_attribute("data-alert"))
        drawn = (
            "() => ['alert-points', 'alert-area-fill', 'devices'].map(layer => [...new Set("
            " window.mimamoriMap.queryRenderedFeatures({layers: [layer]})"
            " .filter(f => layer !== 'devices' || f.properties.id === 'g1')"
            " .map(f => layer === 'devices' ? f.properties.level : f.properties.id))])"
        )
        page.wait_for_function(f"() => ({drawn})()[0].length === 1")
        points, areas, device_level = page.evaluate(drawn)
        assert points == [alert_id]
        assert areas == [alert_id]
        assert device_level == [3]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-map-alert.png"))

        page.click("#banner-show")
        page.wait_for_selector("#acknowledge-button")
        page.fill("#ack-note", "Crew sent to the Takahashi gauge")
        page.click("#acknowledge-button")
        page.wait_for_selector("#alert-state.state-acknowledged", timeout=10 * SECONDS)
        assert "Crew sent to the Takahashi gauge" in page.inner_text("#alert-history")
        page.screenshot(path=str(ARTIFACTS / "web-map-acknowledged.png"))

        stored = db.execute("SELECT state FROM alerts WHERE id = %s", (alert_id,)).fetchone()
        note = db.execute(
            "SELECT note FROM alert_events WHERE alert_id = %s AND kind = 'acknowledged'", (alert_id,)
        ).fetchone()
        assert stored == ("acknowledged",)
        assert note == ("Crew sent to the Takahashi gauge",)
        assert traffic.failed == []
        assert traffic.console_errors == []
    finally:
        context.close()


def test_a_viewer_sees_the_alert_history_but_no_acknowledge_form(browser, hub, broker):
    running, keys = hub
    publish_levels(broker, running.settings, "g2", [5.0, 5.6])  # g2: caution (4.5) passed, level 2
    wait_until(
        lambda: httpx.get(running.url + "/v1/alerts", headers={"X-API-Key": keys[Role.viewer]}, timeout=5).json(),
        what="the alert to be stored",
    )
    context, page, _ = open_map(browser, running.url, keys[Role.viewer])
    try:
        page.click("#alert-list .alert-row[data-level='2']")
        page.wait_for_selector("#alert-history li[data-kind='raised']")
        assert page.locator("#acknowledge-button").count() == 0
        assert page.is_hidden("#banner")  # level 2 is below the banner level (3)
    finally:
        context.close()


def test_an_open_alert_the_lists_and_the_filters_follow_a_language_switch(browser, hub, broker):
    """The parts redraw from the one store: the open detail, the list, the filters and the live mark all change
    language together, and the level filter and the search narrow the list."""
    running, keys = hub
    publish_levels(broker, running.settings, "g2", [5.0, 5.6])  # g2: caution (4.5) passed, level 2
    alerts = wait_until(
        lambda: httpx.get(running.url + "/v1/alerts", headers={"X-API-Key": keys[Role.viewer]}, timeout=5).json(),
        what="the alert to be stored",
    )
    context, page, traffic = open_map(browser, running.url, keys[Role.viewer])
    try:
        page.click("#alert-list .alert-row[data-level='2']")
        page.wait_for_selector("#alert-history li[data-kind='raised']")
        assert page.inner_text("#detail-title") == alerts[0]["title_en"]
        assert page.locator("#alert-list .alert-row.selected").count() == 1
        page.wait_for_selector("#live[data-state='live']")
        page.click("#lang")
        page.wait_for_function(f"document.querySelector('#detail-title').textContent === {alerts[0]['title_ja']!r}")
        assert alerts[0]["title_ja"] in page.inner_text("#alert-list .alert-row.selected")
        assert page.inner_text("#filter-level option[value='0']") == "全レベル"
        assert page.inner_text("#live") == "ライブ"
        page.select_option("#filter-level", "3")
        page.wait_for_selector("#alert-list li.empty")
        page.select_option("#filter-level", "0")
        page.fill("#filter-search", "g2")
        assert page.locator("#alert-list .alert-row").count() == 1
        page.fill("#filter-search", "no-such-gauge")
        page.wait_for_selector("#alert-list li.empty")
        page.fill("#filter-search", "")
        page.keyboard.press("Escape")
        assert page.is_hidden("#detail")
        assert page.locator("#alert-list .alert-row").count() == 1
        assert page.locator("#alert-list .alert-row.selected").count() == 0
        assert traffic.failed == []
        assert traffic.console_errors == []
    finally:
        context.close()


def test_a_device_shows_its_readings_with_its_threshold_levels(browser, hub, broker):
    running, keys = hub
    publish_levels(broker, running.settings, "g1", [3.0, 3.4, 3.9, 4.1])
    wait_until(
        lambda: httpx.get(
            running.url + "/v1/devices/g1/latest", headers={"X-API-Key": keys[Role.viewer]}, timeout=5
        ).json()["readings"],
        what="the readings to be stored",
    )
    context, page, traffic = open_map(browser, running.url, keys[Role.viewer])
    try:
        page.click("#tab-devices")
        page.click("#device-list button[data-device='g1']")
        page.wait_for_selector("#detail svg.chart path.series")
        labels = page.eval_on_selector_all("#detail svg.chart .threshold text", "els => els.map(e => e.textContent)")
        assert labels == ["Standby 3.5", "Caution 4.5", "Evacuation judgement 6", "Danger 6.8"]
        assert "caution_m" in page.inner_text("#detail .facts >> nth=-1")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-map-device.png"))
        assert traffic.failed == []
    finally:
        context.close()


def test_the_map_speaks_japanese_and_works_from_the_keyboard(browser, hub):
    running, keys = hub
    context, page, _ = open_map(browser, running.url, keys[Role.viewer])
    try:
        page.click("#lang")
        assert page.inner_text("#tab-alerts").startswith("警報")
        assert page.evaluate("document.documentElement.lang") == "ja"
        assert "警戒レベル" in page.inner_text(".legend")
        # keyboard: arrow keys move between the tabs, Enter opens a device, Escape closes it
        page.focus("#tab-alerts")
        page.keyboard.press("ArrowRight")
        assert page.get_attribute("#tab-devices", "aria-selected") == "true"
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.dataset.device") is not None
        page.keyboard.press("Enter")
        page.wait_for_selector("#detail:not([hidden])")
        page.keyboard.press("Escape")
        assert page.is_hidden("#detail")
    finally:
        context.close()


def test_a_partner_map_asks_for_no_stand_tiles_and_fails_no_request(browser, hub):
    running, keys = hub
    context, page, traffic = open_map(browser, running.url, keys[Role.partner])
    try:
        page.wait_for_function("document.querySelector('#device-count').textContent.includes('1')")
        page.evaluate("() => window.mimamoriMap.zoomTo(13, {duration: 0})")
        page.wait_for_function("() => window.mimamoriMap.loaded()")
        assert not any("/v1/tiles/stands" in u for u in traffic.urls)
        assert traffic.failed == []
    finally:
        context.close()


def test_a_phone_gets_the_map_above_the_lists(browser, hub):
    running, keys = hub
    context, page, traffic = open_map(browser, running.url, keys[Role.viewer], viewport=(390, 844))
    try:
        map_box = page.locator("#map").bounding_box()
        panel_box = page.locator(".panel").bounding_box()
        assert map_box["width"] == pytest.approx(390, abs=2)
        assert panel_box["y"] >= map_box["y"] + map_box["height"] - 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-map-phone.png"))
        assert traffic.failed == []
    finally:
        context.close()


def test_a_wrong_key_is_refused_and_the_key_stays_in_the_tab(browser, hub):
    running, keys = hub
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(running.url + "/")
        page.fill("#login-key", "mk_not-a-key")
        page.click("#login-form button[type=submit]")
        page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
        assert page.evaluate("sessionStorage.length") == 0
        page.fill("#login-key", keys[Role.viewer])
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("body.ready")
        assert page.evaluate("Object.values(sessionStorage)") == [keys[Role.viewer]]
        assert keys[Role.viewer] not in page.evaluate("JSON.stringify(localStorage)")
        assert keys[Role.viewer] not in page.evaluate("document.cookie")
    finally:
        context.close()


def test_the_typhoon_scenario_on_the_map(browser, settings, pool, db, broker, tmp_path):
    """The city's simulated devices play the typhoon through the broker; the wall-screen map shows the storm.

    The screenshot goes to test-artifacts/; with MIMAMORI_DOCS_SCREENSHOTS=1 it also replaces the README's picture,
    docs/img/map-typhoon.png.
    """
    from devices.seed import seed_city
    from simulators import Credentials, Login, load_scenario, run_in_background

    clean_alert_tables(db)
    seed_city(db)
    key = create_key(db, "toyota-city", Role.operator)[1]
    with running_hub(settings, pool, broker) as running:  # the shipped rules
        context, page, traffic = open_map(browser, running.url, key)
        try:
            # the Takahashi gauge's chart stays open while the storm comes in (it redraws on its alerts)
            page.click("#tab-devices")
            page.click("#device-list button[data-device='yahagi-takahashi']")
            page.click("#tab-alerts")
            login = Credentials(default=Login(broker.username, broker.password))
            # the typhoon's first 16.5 hours (played in seconds, ending now): the Yahagi is at its crest
            storm = dataclasses.replace(load_scenario("typhoon"), duration_h=16.5)
            run = run_in_background(running.settings, storm, speed=3600, credentials=login)
            try:
                # the storm at its height: the Yahagi at Takahashi past its danger level (警戒レベル4)
                page.wait_for_function(
                    "[...document.querySelectorAll('#alert-list .alert-row[data-level=\"4\"]')]"
                    ".some(b => b.textContent.includes('高橋'))",
                    timeout=90 * SECONDS,
                )
                assert page.is_visible("#banner")
                wait_until(lambda: run.stats.messages >= 17 * 16 * 6 * 0.8, what="the storm to be played", timeout=60)
                page.evaluate("() => window.mimamoriMap.jumpTo({center: [137.29, 35.13], zoom: 9.7})")
                page.wait_for_timeout(2500)  # the last alerts and the chart
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / "map-typhoon.png"
                page.screenshot(path=str(shot))
                if os.environ.get("MIMAMORI_DOCS_SCREENSHOTS") == "1":
                    docs = ROOT / "docs" / "img"
                    docs.mkdir(parents=True, exist_ok=True)
                    shutil.copy(shot, docs / "map-typhoon.png")
                assert traffic.failed == []
                assert traffic.console_errors == []
            finally:
                run.stop()
        finally:
            context.close()
