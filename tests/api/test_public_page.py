"""The citizens' page over HTTP: what it shows in every language from the seeded database (published data only),
hostile names as text, a page that reads with no script, its size budget, caching (ETag, 304, no cookie), language
negotiation, and the translations file's checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.public import TRANSLATIONS
from api.public.page import district, load_translations, negotiate, parse_translations
from mimamori.errors import ConfigError
from tests.public_support import HIGH, HOSTILE_ATTRIBUTION, HOSTILE_GAUGE, HOSTILE_SITE, SECRET, seed_public

LANGS = ["ja", "easy", "en", "pt-BR", "zh-CN", "vi", "tl"]
HTML_LANG = {"ja": "ja", "easy": "ja", "en": "en", "pt-BR": "pt-BR", "zh-CN": "zh-CN", "vi": "vi", "tl": "tl"}
BUDGET = 100 * 1024


@pytest.fixture
def client(settings, pool, db, city):
    seed_public(db, datetime.now(UTC))
    s = settings.model_copy(update={"open_burst": 10_000, "open_rate_per_s": 1000.0, "public_cache_max_age_s": 45})
    with TestClient(create_app(s, pool)) as api:
        yield api


class Page(HTMLParser):
    """The page's elements, scripts and visible text, parsed as a browser would (hostile markup shows as tags)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all_text(self) -> str:
        return " ".join(self.text)


@pytest.mark.parametrize("lang", LANGS)
def test_each_language_shows_published_data_in_its_words(client, lang):
    tr = load_translations(None).languages[lang]
    answer = client.get("/public", params={"lang": lang})
    assert answer.status_code == 200, answer.text
    html = answer.text
    page = Page(html)
    assert page.tags[0] == (
        "html",
        {
            "lang": HTML_LANG[lang],
            "data-lang": lang,
            "data-offline": "0",
            "data-generated": page.tags[0][1]["data-generated"],
        },
    )
    assert answer.headers["content-language"] == HTML_LANG[lang]
    text = page.all_text()
    # the level-4 gauge: value, level in words, colour and shape; its time and age
    gauge = html[html.index(f'data-gauge="{HIGH}"') :]
    gauge = gauge[: gauge.index("</li>")]
    assert "6.90 m" in gauge and tr["levels"][4] in gauge and 'class="lv lv4"' in gauge and "<svg" in gauge
    assert re.search(r'<time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d JST</time>', gauge)
    minutes = tr["age_min"].replace("{n}", "12")
    assert minutes in gauge or tr["age_min"].replace("{n}", "11") in gauge
    assert tr["levels"][0] in text  # the hostile gauge at 1.25 m: normal
    assert tr["no_reading"] in text  # gauge-1 never reported
    # the active alert: level and hazard in words, what to do
    assert tr["alerts_h"] in text and tr["hazards"]["flood"] in text
    assert tr["advice"]["flood"]["4"] in text
    alert = html[html.index('<li class="alert"') :]
    alert = alert[: alert.index("</li>")]
    assert tr["levels"][4] in alert and "<svg" in alert and 'class="age"' in alert and "<time" in alert
    # evacuation sites by district, with their kinds; credits of each dataset shown
    assert "崇化館交流館" in text and tr["kinds"]["shelter"] in text and tr["sites_order"] in text
    assert "PDL-1.0" in text and "豊田市 防災対策課" in text and "CC-BY-4.0" in text
    # a link to every language, each marked with its own language
    links = [a for tag, a in page.tags if tag == "a" and (a.get("href") or "").startswith("?lang=")]
    assert [a["href"] for a in links] == [f"?lang={code}" for code in LANGS]
    assert [a["lang"] for a in links] == [HTML_LANG[code] for code in LANGS]
    assert [a["href"] for a in links if a.get("aria-current") == "page"] == [f"?lang={lang}"]


def test_unpublished_data_never_appears(client):
    for lang in LANGS:
        html = client.get("/public", params={"lang": lang}).text
        assert SECRET not in html
        assert "acme" not in html.lower() and "7.77" not in html  # the partner's gauge and reading
        assert "12.5 mm" not in html and "rain-1" not in html  # the rainfall dataset is a draft
    assert client.get("/public/g/acme-river").status_code == 404
    assert SECRET not in client.get("/public/g/acme-river").text


def test_hostile_names_are_text(client):
    html = client.get("/public", params={"lang": "en"}).text
    page = Page(html)
    scripts = [a for tag, a in page.tags if tag == "script"]
    assert scripts == [{"src": "/public/public.js", "defer": None}, {"type": "application/json", "id": "i18n"}]
    assert not [a for tag, a in page.tags if tag in ("img", "b")]
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    text = page.all_text()
    assert HOSTILE_GAUGE in text and HOSTILE_SITE in text and HOSTILE_ATTRIBUTION in text
    assert "&lt;script&gt;alert(&#34;gauge&#34;)&lt;/script&gt;&amp;amp;" in html


def test_one_gauge_page(client):
    answer = client.get(f"/public/g/{HIGH}", params={"lang": "en"})
    assert answer.status_code == 200
    html = answer.text
    assert f'data-gauge="{HIGH}"' in html and 'data-gauge="hostile-gauge"' not in html
    assert 'href="/public?lang=en"' in html and "See all information" in html
    missing = client.get("/public/g/no-such-gauge", params={"lang": "en"})
    assert missing.status_code == 404 and "This gauge is not published." in missing.text


def test_reads_without_script(client):
    """Everything that matters is in the HTML itself; the script only improves it (sorting, ages, offline)."""
    html = client.get("/public", params={"lang": "en"}).text
    without_scripts = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    for needed in ("Level 4: everyone evacuate", "6.90 m", "What to do", "Evacuation sites", "Skip to main content"):
        assert needed in without_scripts
    assert 'id="sort-sites" hidden' in html  # the button that needs the script is hidden without it
    page = Page(html)
    landmarks = [tag for tag, _ in page.tags if tag in ("header", "nav", "main", "footer")]
    assert landmarks == ["header", "nav", "main", "footer"]
    assert [tag for tag, _ in page.tags if tag == "h1"] == ["h1"]


def test_first_view_fits_the_budget(client):
    total = 0
    for lang in LANGS:
        page = client.get("/public", params={"lang": lang})
        script = client.get("/public/public.js")
        size = len(page.content) + len(script.content)
        assert size < BUDGET, (lang, size)
        total = max(total, size)
        assert not re.search(r"<link[^>]+stylesheet|@font-face|@import", page.text)  # no other CSS, no fonts
    assert total > 5000  # a real page was measured


def test_cache_headers_etag_and_304(client):
    first = client.get("/public", params={"lang": "ja"})
    assert first.headers["cache-control"] == "public, max-age=45"
    assert "set-cookie" not in first.headers
    assert "Accept-Language" in first.headers["vary"]
    etag = first.headers["etag"]
    again = client.get("/public", params={"lang": "ja"}, headers={"If-None-Match": etag})
    if again.status_code == 200:  # a minute turned between the two: the ages changed, so did the tag
        etag = again.headers["etag"]
        again = client.get("/public", params={"lang": "ja"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get("/public", params={"lang": "ja"}, headers={"If-None-Match": '"other"'}).status_code == 200
    for asset in ("/public/public.js", "/public/sw.js"):
        answer = client.get(asset)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/javascript")
        assert client.get(asset, headers={"If-None-Match": answer.headers["etag"]}).status_code == 304
    assert client.get("/public/sw.js").headers["service-worker-allowed"] == "/public"


@pytest.mark.parametrize(
    ("query", "accept", "expected"),
    [
        (None, None, "ja"),
        (None, "pt-BR,pt;q=0.9,en;q=0.8", "pt-BR"),
        (None, "pt-PT", "pt-BR"),
        (None, "fr;q=1, vi;q=0.5", "vi"),
        (None, "zh-TW,zh;q=0.9", "zh-CN"),
        (None, "fil-PH", "tl"),
        (None, "ja-x-easy, ja;q=0.9", "easy"),
        (None, "en;q=0.1, tl;q=0.9", "tl"),
        (None, "de, *;q=0.5", "ja"),
        ("easy", "en", "easy"),
        ("ja-x-easy", None, "easy"),
        ("PT-br", None, "pt-BR"),
        ("klingon", "en", "en"),
        ("", "vi", "vi"),
    ],
)
def test_language_negotiation(query, accept, expected):
    assert negotiate(query, accept, load_translations(None)) == expected


def test_accept_language_picks_the_page_language(client):
    answer = client.get("/public", headers={"Accept-Language": "vi-VN,vi;q=0.9"})
    assert '<html lang="vi"' in answer.text


def test_the_packaged_file_is_complete_and_says_it_needs_review():
    tr = load_translations(None)
    assert list(tr.languages) == LANGS
    header = TRANSLATIONS.read_text("utf-8").split("\ndefault:")[0]
    assert "native speaker" in header and "REVIEW" in header


def test_a_city_file_is_checked_and_used(tmp_path, settings, pool, db, city):
    doc = yaml.safe_load(TRANSLATIONS.read_text("utf-8"))
    del doc["languages"]["vi"]["sort_button"]
    with pytest.raises(ConfigError, match="vi lacks sort_button"):
        parse_translations(doc, "test")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    with pytest.raises(ConfigError, match="vi lacks sort_button"):  # the hub does not start with it
        create_app(settings.model_copy(update={"public_translations": str(broken)}), pool)
    doc = yaml.safe_load(TRANSLATIONS.read_text("utf-8"))
    doc["languages"]["en"]["title"] = "Toyota City <river> watch"
    edited = tmp_path / "city.yaml"
    edited.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    seed_public(db, datetime.now(UTC))
    with TestClient(create_app(settings.model_copy(update={"public_translations": str(edited)}), pool)) as api:
        assert "<title>Toyota City &lt;river&gt; watch</title>" in api.get("/public?lang=en").text


def test_district_of_an_address():
    assert district("愛知県豊田市元城町") == "元城町"
    assert district("愛知県豊田市小坂本町1丁目25") == "小坂本町"
    assert district("豊田市西町三丁目60") == "西町"
    assert district(None) == ""
