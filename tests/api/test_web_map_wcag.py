"""The operator's map against WCAG 2 AA and through an alert's whole life, in a real headless Chromium against a
running hub (MQTT ingest, alert engine, API): axe-core finds no serious or critical problem on a desktop and on a
phone, in English and Japanese, with an alert's banner on screen; the banner names the highest active level when a
level-4 and a level-3 alert come from one reading; text on every level colour reaches 4.5:1; an operator
acknowledges, resolves and closes an alert from the map and the history names them; a viewer gets no controls; and
on a phone the legend folds away."""

from __future__ import annotations

import re

import pytest

from devices.keys import Role, create_key
from tests.alerts_helpers import RIVER_RULES, add_gauges, clean_alert_tables, write_rules
from tests.web_support import (
    ARTIFACTS,
    SECONDS,
    axe_problems,
    chromium,
    open_map,
    publish_levels,
    running_hub,
)

# The shipped flood rules' pair: the threshold ladder and the rapid rise (level 3), after it in the file, so one
# fast-rising reading past the danger level raises a level-4 alert and then a level-3 one.
RULES = (
    RIVER_RULES
    + """\
  - id: river-rise
    kind: rate
    hazard: flood
    title: {en: Rapid river rise, ja: 河川水位の急上昇}
    target: {device_type: river_gauge}
    metric: water_level
    window: 30m
    levels:
      - {level: 3, at: 2.0}
"""
)
OPERATOR = "Sato Hanako"
DESKTOP, PHONE = (1600, 900), (390, 844)
NATIONAL = {0: "#2f9e6b", 1: "#ffffff", 2: "#f2e700", 3: "#ff2800", 4: "#aa00aa", 5: "#0c000c"}


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def hub(settings, pool, db, city, broker, tmp_path):
    clean_alert_tables(db)
    add_gauges(db, ("g1", "toyota-city", 137.179, 35.094), ("g2", "toyota-city", 137.160, 35.036))
    rules = write_rules(tmp_path / "rules", RULES)
    with running_hub(settings, pool, broker, alerts_rules_dir=str(rules)) as running:
        keys = {
            Role.operator: create_key(db, "toyota-city", Role.operator, OPERATOR),
            Role.viewer: create_key(db, "toyota-city", Role.viewer),
        }
        yield running, keys


def _rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return r, g, b


def _hex_rgb(value: str) -> tuple[int, int, int]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio, computed here independently of the page's own arithmetic."""

    def lum(rgb: tuple[int, int, int]) -> float:
        c = [v / 255 for v in rgb]
        c = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def raise_level_4_and_3(running, broker, db, page) -> tuple[int, int]:
    """g1 jumps from 3.0 m to 6.9 m in ten minutes: past its danger level (6.8 m, level 4) and rising at 7.8 m/h over
    the rule's half hour (level 3). Returns the two alerts' ids (level 4, level 3) once both are listed on the page."""
    publish_levels(broker, running.settings, "g1", [2.8, 3.0, 6.9])
    page.locator("#alert-list .alert-row[data-level='4']").wait_for(timeout=15 * SECONDS)
    page.locator("#alert-list .alert-row[data-level='3']").wait_for(timeout=15 * SECONDS)
    rows = db.execute(
        "SELECT a.level, a.id, e.id FROM alerts a JOIN alert_events e ON e.alert_id = a.id AND e.kind = 'raised'"
        " WHERE a.subject = 'g1' AND a.state = 'open'"
    ).fetchall()
    events = {level: event_id for level, _, event_id in rows}
    # the level-3 alert was raised after the level-4 one: a banner that followed the last alert would say 3
    assert events[3] > events[4], rows
    ids = {level: alert_id for level, alert_id, _ in rows}
    return ids[4], ids[3]


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_serious_problem_with_an_alert_on_screen(browser, hub, broker, db, viewport, lang):
    running, keys = hub
    context, page, traffic = open_map(browser, running.url, keys[Role.operator][1], viewport=viewport, lang=lang)
    shots = ARTIFACTS / f"web-map-wcag-{'phone' if viewport == PHONE else 'desktop'}-{lang}"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        raise_level_4_and_3(running, broker, db, page)
        page.wait_for_selector("#banner:not([hidden])")
        page.wait_for_function("() => window.mimamoriMap.loaded()", timeout=15 * SECONDS)
        assert axe_problems(page) == []
        page.screenshot(path=f"{shots}-banner.png")
        # the alert opened: its facts, the operator's controls and its history
        page.click("#alert-list .alert-row[data-level='4']")
        page.wait_for_selector("#alert-history li[data-kind='raised']")
        page.wait_for_selector("#resolve-button")
        assert axe_problems(page) == []
        page.screenshot(path=f"{shots}-detail.png")
        if viewport == PHONE:
            page.click("#detail .close")
            page.click("#legend summary")  # the legend unfolded over the map
            page.wait_for_selector("#legend-list li >> nth=6", state="visible")
            assert axe_problems(page) == []
            page.screenshot(path=f"{shots}-legend.png")
        assert traffic.failed == [] and traffic.foreign() == [] and traffic.console_errors == []
    finally:
        context.close()


def test_the_banner_shows_the_highest_active_level_in_the_chosen_language(browser, hub, broker, db):
    running, keys = hub
    context, page, traffic = open_map(browser, running.url, keys[Role.operator][1])
    try:
        level4, _ = raise_level_4_and_3(running, broker, db, page)
        page.wait_for_selector("#banner:not([hidden])")
        page.wait_for_function("document.querySelector('#banner-text').textContent.includes('(+1 more)')")
        assert page.get_attribute("#banner", "data-level") == "4"
        assert page.get_attribute("#banner", "data-alert") == str(level4)
        english = page.inner_text("#banner-text")
        assert english.startswith("New level 4 alert: River water level — g1"), english
        assert "(+1 more)" in english
        page.click("#lang")
        japanese = page.inner_text("#banner-text")
        assert japanese.startswith("新しい警戒レベル4の警報: 河川水位 — g1"), japanese
        assert "(ほか 1 件)" in japanese and "level" not in japanese.lower()
        assert page.inner_text("#banner-show") == "表示"
        # the banner in the national level-4 purple, with text that reads on it
        background, text = page.eval_on_selector(
            "#banner", "b => [getComputedStyle(b).backgroundColor, getComputedStyle(b).color]"
        )
        assert _rgb(background) == _hex_rgb(NATIONAL[4])
        assert contrast(_rgb(background), _rgb(text)) >= 4.5
        page.click("#lang")
        assert page.inner_text("#banner-text").startswith("New level 4 alert")
        # Show opens the level-4 alert, not the last one to arrive
        page.click("#banner-show")
        page.wait_for_selector("#alert-history li[data-kind='raised']")
        assert page.inner_text("#detail-title") == "River water level"
        assert page.is_hidden("#banner")
        assert traffic.failed == [] and traffic.console_errors == []
    finally:
        context.close()


def test_text_on_every_level_colour_reads_at_aa(browser, hub):
    running, keys = hub
    context, page, _ = open_map(browser, running.url, keys[Role.viewer][1])
    try:
        # the legend carries a badge of every level 1-5; the device list a "normal" one (level 0)
        page.click("#tab-devices")
        page.wait_for_selector("#device-list .badge.level-0")
        badges = page.eval_on_selector_all(
            "#legend-list .badge, #device-list .badge.level-0",
            "els => els.map(b => [b.className, getComputedStyle(b).backgroundColor, getComputedStyle(b).color])",
        )
        seen = {}
        for cls, background, text in badges:
            level = int(re.search(r"level-(\d)", cls).group(1))
            seen[level] = (_rgb(background), _rgb(text))
        assert sorted(seen) == [0, 1, 2, 3, 4, 5]
        for level, (background, text) in seen.items():
            assert background == _hex_rgb(NATIONAL[level]), level  # the national colours are kept
            assert contrast(background, text) >= 4.5, (level, background, text)
        assert seen[3][1] == (0, 0, 0)  # dark text on the red: white was 3.78:1
        # the chart's threshold labels: each level's colour, darkened where it would not read on the chart
        labels = page.evaluate(
            """async () => {
                const m = await import('/web/levels.js');
                return [1, 2, 3, 4, 5].map(n => m.readableOn(m.LEVEL_COLORS[n], '#fbfcfd'));
            }"""
        )
        for level, label in zip([1, 2, 3, 4, 5], labels, strict=True):
            assert contrast(_hex_rgb(label), (0xFB, 0xFC, 0xFD)) >= 4.5, (level, label)
        assert labels[3] == NATIONAL[4]  # purple reads as it is
    finally:
        context.close()


def test_an_operator_resolves_and_closes_an_alert_from_the_map_and_history_names_them(browser, hub, broker, db):
    running, keys = hub
    key_id = keys[Role.operator][0]
    publish_levels(broker, running.settings, "g1", [6.2, 6.2])  # past evacuation judgement (6.0 m): level 3
    context, page, traffic = open_map(browser, running.url, keys[Role.operator][1])
    try:
        page.click("#alert-list .alert-row[data-level='3']", timeout=15 * SECONDS)
        alert_id = int(page.get_attribute("#alert-list .alert-row.selected", "data-alert"))
        page.wait_for_selector("#ack-note")
        assert page.locator("#close-button").count() == 0  # an open alert cannot be closed yet
        page.fill("#ack-note", "Crew at the Takahashi gauge")
        page.click("#acknowledge-button")
        page.wait_for_selector("#alert-state.state-acknowledged", timeout=10 * SECONDS)
        assert page.locator("#acknowledge-button").count() == 0
        page.fill("#ack-note", "Sandbags placed; level falling")
        page.click("#resolve-button")
        page.wait_for_selector("#alert-state.state-resolved", timeout=10 * SECONDS)
        # resolved: off the active list and the map, still open here to be closed
        page.wait_for_function(f"!document.querySelector('#alert-list .alert-row[data-alert=\"{alert_id}\"]')")
        page.fill("#ack-note", "Reviewed at the 18:00 meeting")
        page.click("#close-button")
        page.wait_for_selector("#alert-state.state-closed", timeout=10 * SECONDS)
        assert page.locator("#ack-note").count() == 0  # nothing more to do to a closed alert
        history = page.locator("#alert-history li")
        kinds = history.evaluate_all("els => els.map(e => e.dataset.kind)")
        assert kinds == ["closed", "resolved", "acknowledged", "raised"]
        for i in range(3):
            text = history.nth(i).inner_text()
            assert OPERATOR in text and key_id not in text, text
        assert "rule:river-level" in history.nth(3).inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-map-closed.png"))
        stored = db.execute(
            "SELECT kind, actor, actor_name, note FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,)
        ).fetchall()
        assert stored[1:] == [
            ("acknowledged", key_id, OPERATOR, "Crew at the Takahashi gauge"),
            ("resolved", key_id, OPERATOR, "Sandbags placed; level falling"),
            ("closed", key_id, OPERATOR, "Reviewed at the 18:00 meeting"),
        ]
        assert db.execute("SELECT state FROM alerts WHERE id = %s", (alert_id,)).fetchone() == ("closed",)
        # in the ended list too
        page.select_option("#filter-state", "ended")
        page.wait_for_selector(f"#alert-list .alert-row[data-alert='{alert_id}'][data-state='closed']")
        assert traffic.failed == [] and traffic.console_errors == []
    finally:
        context.close()


def test_a_viewer_gets_no_lifecycle_controls(browser, hub, broker, db):
    running, keys = hub
    publish_levels(broker, running.settings, "g2", [6.2, 6.2])
    context, page, _ = open_map(browser, running.url, keys[Role.viewer][1])
    try:
        page.click("#alert-list .alert-row[data-level='3']", timeout=15 * SECONDS)
        page.wait_for_selector("#alert-history li[data-kind='raised']")
        for control in ("#ack-note", "#acknowledge-button", "#resolve-button", "#close-button"):
            assert page.locator(control).count() == 0, control
    finally:
        context.close()


def test_on_a_phone_the_legend_folds_away_and_opens_on_demand(browser, hub):
    running, keys = hub
    context, page, _ = open_map(browser, running.url, keys[Role.viewer][1], viewport=PHONE)
    try:
        map_box = page.locator("#map").bounding_box()
        folded = page.locator("#legend").bounding_box()
        assert page.evaluate("document.querySelector('#legend').open") is False
        assert folded["width"] * folded["height"] < 0.05 * map_box["width"] * map_box["height"], folded
        page.click("#legend summary")
        page.wait_for_selector("#legend-list li >> nth=7", state="visible")
        assert "Level 4: evacuate everyone" in page.inner_text("#legend")
        page.click("#legend summary")
        assert page.is_hidden("#legend-list")
    finally:
        context.close()
    context, page, _ = open_map(browser, running.url, keys[Role.viewer][1], viewport=DESKTOP)
    try:
        assert page.evaluate("document.querySelector('#legend').open") is True
        assert page.is_visible("#legend-list li >> nth=7")
    finally:
        context.close()
