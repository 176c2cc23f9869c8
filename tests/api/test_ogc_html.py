"""OGC API – Features' HTML pages (Part 1 /conf/html): negotiation by f and Accept, what each page says, escaping of
hostile feature properties, OGC errors as pages, a browser signing in with HTTP Basic, and axe-core in Chromium."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import pytest
from shapely.geometry import box

from api import ogc_html
from geo import upsert_area
from tests.geo_support import api_client, role_keys, served
from tests.web_support import ARTIFACTS, SECONDS, Traffic, axe_problems, chromium

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
HOSTILE = '<script>alert("pwned")</script>'
HOSTILE_NOTE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def world(db, city):
    db.execute("TRUNCATE stands, areas")
    for i in range(5):
        upsert_area(
            db,
            area_id=f"area-{i}",
            kind="slope",
            name=f"足助 slope {i}",
            geometry=box(137.30 + 0.01 * i, 35.13, 137.305 + 0.01 * i, 35.135),
        )
    upsert_area(
        db,
        area_id="zz-hostile",
        kind="district",
        name=HOSTILE,
        geometry=box(137.40, 35.10, 137.41, 35.11),
        properties={"note": HOSTILE_NOTE},
    )


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, world):
    with api_client(database_url) as c:
        yield c


class _Page(HTMLParser):
    """What a test asks of a page: its html lang, its alternate links, its anchors (href, rel, text), the text of
    its table cells and any script element's text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.lang: str | None = None
        self.alternates: list[dict[str, str | None]] = []
        self.anchors: list[dict[str, str | None]] = []
        self.cells: list[str] = []
        self.scripts: list[str] = []
        self.h1 = ""
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if tag in ("link", "a") and a.get("rel") == "alternate":
            self.alternates.append(a)
        if tag == "a":
            self.anchors.append({**a, "text": ""})
        if tag in ("td", "th", "a", "script", "h1"):
            self._in.append(tag)
            if tag in ("td", "th"):
                self.cells.append("")
            if tag == "script":
                self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        for tag in self._in:
            if tag in ("td", "th"):
                self.cells[-1] += data
            elif tag == "a":
                self.anchors[-1]["text"] = (self.anchors[-1]["text"] or "") + data
            elif tag == "script":
                self.scripts[-1] += data
            elif tag == "h1":
                self.h1 += data

    def link(self, rel: str) -> dict[str, str | None]:
        return next(a for a in self.anchors if a.get("rel") == rel)


def _query(href: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(href).query))


def _html(r) -> _Page:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    return _Page(r.text)


# --- negotiation, pure ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.5, application/geo+json", False),
        ("application/json, text/html", False),  # a tie: JSON, the API's own form
        ("*/*", False),  # curl
        ("application/geo+json, application/json", False),  # GDAL
        ("", False),
        (None, False),
        ("text/html;q=0", False),
        ("text/html;q=oops, application/json;q=0.1", False),
    ],
)
def test_accept_header_decides_only_when_html_outranks_json(accept, html):
    assert ogc_html.prefers_html(accept) is html


def test_f_overrides_the_accept_header_and_a_bad_f_is_refused():
    assert ogc_html.wants_html({"f": "json"}, BROWSER_ACCEPT, "collections") is False
    assert ogc_html.wants_html({"f": "html"}, "application/json", "collections") is True
    assert ogc_html.wants_html({"f": "geojson"}, BROWSER_ACCEPT, "items") is False
    with pytest.raises(ogc_html.ValidationError, match="f must be html or json"):
        ogc_html.wants_html({"f": "geojson"}, None, "landing")
    with pytest.raises(ogc_html.ValidationError):
        ogc_html.wants_html({"f": "xml"}, None, "items")


def test_the_page_language_follows_the_browser_s_first_choice():
    assert ogc_html.page_language("ja,en-US;q=0.9,en;q=0.8") == "ja"
    assert ogc_html.page_language("ja-JP") == "ja"
    assert ogc_html.page_language("en-GB,ja;q=0.5") == "en"
    assert ogc_html.page_language(None) == "en"


def test_hostile_names_ids_and_values_are_text_everywhere_on_a_rendered_page():
    """Property names are hostile too (a device's metric names come from the device), and so are feature ids."""
    evil = "</script><script>alert(1)</script>"
    feature = {"type": "Feature", "id": evil, "geometry": {"type": "Point", "coordinates": [137.1, 35.1]}}
    doc = {
        "type": "FeatureCollection",
        "numberReturned": 1,
        "features": [feature | {"properties": {evil: evil, "nested": {"k": evil}}}],
        "links": [
            {"rel": "self", "type": "application/geo+json", "href": "http://h/ogc/collections/devices/items"},
            {
                "rel": "collection",
                "type": "application/json",
                "title": evil,
                "href": "http://h/ogc/collections/devices",
            },
        ],
    }
    for page in ("items", "item"):
        one = doc if page == "items" else doc["features"][0] | {"links": doc["links"]}
        html = ogc_html.render(page, one, lang="en", attribution=evil)
        assert "<script>alert" not in html and "</script><script>" not in html, page
        parsed = _Page(html)
        assert evil in parsed.cells, page  # shown, as text
        (data,) = [s for s in parsed.scripts if "FeatureCollection" in s]
        assert json.loads(data)["features"][0]["id"] == evil  # the map's data intact, and inert in its element
    assert "/items/%3C%2Fscript%3E" in ogc_html.render("items", doc, lang="en", attribution="")


# --- over HTTP ------------------------------------------------------------------------------------------------


def test_f_html_and_a_browser_s_accept_get_the_landing_page_and_json_stays_json(client):
    by_f = _html(client.get("/ogc", params={"f": "html"}))
    by_accept = _html(client.get("/ogc", headers={"Accept": BROWSER_ACCEPT}))
    for page in (by_f, by_accept):
        assert page.lang == "en"
        assert "Mimamori" in page.h1
        hrefs = {a["data-rel"]: a["href"] for a in page.anchors if a.get("data-rel")}
        assert hrefs["data"].endswith("/ogc/collections?f=html")
        assert hrefs["conformance"].endswith("/ogc/conformance?f=html")
        assert hrefs["service-desc"].endswith("/openapi.json")
        assert {(a["type"], a["href"].rsplit("/", 1)[-1]) for a in page.alternates} == {
            ("application/json", "ogc?f=json")
        }
    for params, headers in (({}, {}), ({"f": "json"}, {"Accept": BROWSER_ACCEPT}), ({}, {"Accept": "*/*"})):
        r = client.get("/ogc", params=params, headers=headers)
        assert r.headers["content-type"] == "application/json"
        assert "Accept" in r.headers["vary"]
        links = {link["rel"]: link for link in r.json()["links"]}
        assert links["alternate"]["type"] == "text/html"
        assert links["alternate"]["href"].endswith("/ogc?f=html")
    # and the HTML it points to is HTML
    assert client.get(links["alternate"]["href"]).headers["content-type"].startswith("text/html")


def test_conformance_page_lists_the_classes_html_among_them(client):
    page = client.get("/ogc/conformance", params={"f": "html"})
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html" in page.text
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in page.text
    body = client.get("/ogc/conformance").json()
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html" in body["conformsTo"]
    assert any(link["rel"] == "alternate" and link["type"] == "text/html" for link in body["links"])


def test_collections_page_names_each_collection_and_links_its_html_pages(client, keys):
    page = _html(client.get("/ogc/collections", params={"f": "html"}, headers=keys["viewer"]))
    titles = {a["text"]: a["href"] for a in page.anchors}
    json_doc = client.get("/ogc/collections", headers=keys["viewer"]).json()
    for c in json_doc["collections"]:
        assert titles[c["title"]].endswith(f"/ogc/collections/{c['id']}?f=html"), c["title"]
        assert any(a["href"].endswith(f"/ogc/collections/{c['id']}/items?f=html") for a in page.anchors)
        assert any(link["rel"] == "alternate" and link["type"] == "text/html" for link in c["links"])
    # in the head (<link>) and in the footer (<a>)
    assert [a["href"].rsplit("/", 1)[-1] for a in page.alternates] == ["collections?f=json"] * 2
    # a partner's list is a partner's
    partner = _html(client.get("/ogc/collections", params={"f": "html"}, headers=keys["partner"]))
    assert not any(a["href"].endswith("/ogc/collections/stands?f=html") for a in partner.anchors)


def test_one_collection_page(client, keys):
    page = _html(client.get("/ogc/collections/areas", params={"f": "html"}, headers=keys["viewer"]))
    title = client.get("/ogc/collections/areas", headers=keys["viewer"]).json()["title"]
    assert page.h1 == title
    assert any(a["href"].endswith("/ogc/collections/areas/items?f=html") for a in page.anchors)
    assert any(a["href"].endswith("/ogc/collections/areas/queryables") for a in page.anchors)
    assert "areas" in page.cells


def test_items_page_lists_features_pages_like_json_and_escapes_hostile_properties(client, keys):
    params = {"f": "html", "limit": "2", "offset": "2", "kind": "slope"}
    r = client.get("/ogc/collections/areas/items", params=params, headers=keys["viewer"])
    page = _html(r)
    assert "queryables" in r.headers["link"]
    title = client.get("/ogc/collections/areas", headers=keys["viewer"]).json()["title"]
    assert page.h1 == f"{title}: Features"
    assert "area-2" in page.cells  # feature ids are row headers, each a link to the feature
    ids = [a["text"] for a in page.anchors if "/items/" in (a["href"] or "")]
    assert ids == ["area-2", "area-3"]
    assert next(a for a in page.anchors if a["text"] == "area-2")["href"].endswith("/items/area-2?f=html")
    json_doc = client.get("/ogc/collections/areas/items", params={**params, "f": "json"}, headers=keys["viewer"])
    assert json_doc.headers["content-type"] == "application/geo+json"
    json_links = {link["rel"]: link["href"] for link in json_doc.json()["links"]}
    nxt, prev = page.link("next")["href"], page.link("prev")["href"]
    # the JSON's next and prev pages, as HTML
    assert _query(nxt) == {**_query(json_links["next"]), "f": "html"} == {**params, "offset": "4"}
    assert _query(prev) == {**_query(json_links["prev"]), "f": "html"} == {**params, "offset": "0"}
    assert json_links["alternate"].endswith("f=html")
    assert [a["type"] for a in page.alternates] == ["application/geo+json", "application/geo+json"]
    assert "f=json" in page.alternates[0]["href"] and "offset=2" in page.alternates[0]["href"]
    assert "足助 slope 2" in page.cells
    # the map's data: the page's features, as JSON that cannot end its script element
    (data,) = [s for s in page.scripts if "FeatureCollection" in s]
    assert '"area-2"' in data and "</" not in data

    hostile = client.get("/ogc/collections/areas/items", params={"f": "html"}, headers=keys["viewer"])
    assert HOSTILE in _Page(hostile.text).cells and HOSTILE_NOTE in _Page(hostile.text).cells  # shown as text…
    assert HOSTILE not in hostile.text and HOSTILE_NOTE not in hostile.text  # …never as markup
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in hostile.text
    assert hostile.text.count("<script") == 3  # MapLibre, the map module and the features' JSON: no more


def test_other_parameters_ride_along_and_another_crs_gets_the_table_without_a_map(client, keys):
    params = {"f": "html", "limit": "2", "sortby": "-name", "properties": "name"}
    page = _html(client.get("/ogc/collections/areas/items", params=params, headers=keys["viewer"]))
    assert [a["text"] for a in page.anchors if "/items/" in (a["href"] or "")] == ["area-4", "area-3"]
    assert _query(page.link("next")["href"]) == {**params, "offset": "2"}
    assert "kind" not in page.cells and "name" in page.cells
    assert any("FeatureCollection" in s for s in page.scripts)
    r = client.get(
        "/ogc/collections/areas/items",
        params={"f": "html", "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"},
        headers=keys["viewer"],
    )
    projected = _html(r)
    assert r.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/3857>"
    assert "area-1" in projected.cells and not any("FeatureCollection" in s for s in projected.scripts)
    one = client.get(
        "/ogc/collections/areas/items/area-1",
        params={"f": "html", "crs": "http://www.opengis.net/def/crs/EPSG/0/3857"},
        headers=keys["viewer"],
    )
    assert 'id="map"' not in one.text and "足助 slope 1" in _html(one).cells


def test_links_without_an_html_page_stay_as_they_are(client, keys):
    landing = _html(client.get("/ogc", params={"f": "html"}))
    collection = _html(client.get("/ogc/collections/stands", params={"f": "html"}, headers=keys["viewer"]))
    for page in (landing, collection):
        others = [a["href"] for a in page.anchors if a.get("data-rel") not in ("data", "conformance", "items", None)]
        assert others and all("f=html" not in href for href in others), others


def test_item_page_has_its_properties_escaped_and_its_links(client, keys):
    page = _html(client.get("/ogc/collections/areas/items/zz-hostile", params={"f": "html"}, headers=keys["viewer"]))
    assert "zz-hostile" in page.h1
    cells = page.cells
    assert cells[cells.index("name") + 1] == HOSTILE and cells[cells.index("note") + 1] == HOSTILE_NOTE
    assert any(a["href"].endswith("/ogc/collections/areas?f=html") for a in page.anchors)
    assert page.alternates[0]["href"].endswith("/items/zz-hostile?f=json")
    r = client.get("/ogc/collections/areas/items/zz-hostile", headers=keys["viewer"])
    assert r.headers["content-type"] == "application/geo+json"
    assert r.json()["properties"]["name"] == HOSTILE
    alternate = next(link for link in r.json()["links"] if link["rel"] == "alternate")
    assert alternate["type"] == "text/html" and alternate["href"].endswith("/items/zz-hostile?f=html")


def test_japanese_pages_for_a_japanese_browser(client, keys):
    page = _html(
        client.get("/ogc/collections", headers={**keys["viewer"], "Accept": BROWSER_ACCEPT, "Accept-Language": "ja"})
    )
    assert page.lang == "ja" and page.h1 == "コレクション一覧"


def test_bad_parameters_are_an_ogc_400_as_html_for_a_browser_and_json_otherwise(client, keys):
    url = "/ogc/collections/areas/items"
    as_html = client.get(url, params={"f": "html", "limit": "0"}, headers=keys["viewer"])
    assert as_html.status_code == 400 and as_html.headers["content-type"].startswith("text/html")
    page = _Page(as_html.text)
    assert "InvalidParameterValue" in page.h1 and "limit must be at least 1" in as_html.text
    by_accept = client.get(url, params={"<b>x</b>": "1"}, headers={**keys["viewer"], "Accept": BROWSER_ACCEPT})
    assert by_accept.status_code == 400 and "&lt;b&gt;" in by_accept.text and "<b>x" not in by_accept.text
    as_json = client.get(url, params={"f": "json", "limit": "0"}, headers=keys["viewer"])
    assert as_json.status_code == 400
    assert as_json.json()["code"] == "InvalidParameterValue"
    # a bad f: JSON for a client, a page for a browser; on every page, not only the items
    for path in ("/ogc", "/ogc/collections", url, f"{url}/area-1"):
        bad = client.get(path, params={"f": "xml"}, headers=keys["viewer"])
        assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameterValue", path
        bad = client.get(path, params={"f": "xml"}, headers={**keys["viewer"], "Accept": BROWSER_ACCEPT})
        assert bad.status_code == 400 and "InvalidParameterValue" in _Page(bad.text).h1, path


def test_a_browser_without_a_key_is_asked_for_one_by_basic_and_other_errors_are_pages(client, keys):
    r = client.get("/ogc/collections", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert r.headers["www-authenticate"].startswith("Basic realm=")
    assert "password" in r.text and "Unauthorized" in _Page(r.text).h1
    assert client.get("/ogc/collections").headers["www-authenticate"] == "Bearer"  # clients: as before
    secret = keys["viewer"]["X-API-Key"]
    basic = "Basic " + base64.b64encode(f"anyone:{secret}".encode()).decode()
    signed_in = client.get("/ogc/collections", headers={"Accept": BROWSER_ACCEPT, "Authorization": basic})
    assert signed_in.status_code == 200 and "<table" in signed_in.text
    missing = client.get("/ogc/collections/areas/items/nope", params={"f": "html"}, headers=keys["viewer"])
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "Not Found" in _Page(missing.text).h1
    forbidden = client.get("/ogc/collections/stands", params={"f": "html"}, headers=keys["partner"])
    assert forbidden.status_code == 403 and forbidden.headers["content-type"].startswith("text/html")
    assert client.get("/ogc/collections/stands", headers=keys["partner"]).json()["error"] == "forbidden"


def test_the_openapi_document_says_the_pages_answer_html(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/ogc",
        "/ogc/conformance",
        "/ogc/collections",
        "/ogc/collections/{collection_id}",
        "/ogc/collections/{collection_id}/items",
        "/ogc/collections/{collection_id}/items/{feature_id}",
    ):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert "text/html" in content, path
        assert "application/json" in content or "application/geo+json" in content, path


# --- in a real browser: axe-core, the map, nothing from outside ---------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def site(database_url, world):
    with served(database_url) as url:
        yield url


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_axe_finds_no_serious_problem_on_the_pages(browser, site, keys, lang):
    secret = keys["viewer"]["X-API-Key"]
    # The browser signs in as a person would: the page's Basic challenge answered with the key as the password.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        locale="ja-JP" if lang == "ja" else "en-GB",
        extra_http_headers={"Accept-Language": lang},
        http_credentials={"username": "browser", "password": secret},
    )
    page = context.new_page()
    traffic = Traffic(site)
    traffic.watch(page)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        for name, path, needs_map in (
            ("landing", "/ogc", False),
            ("conformance", "/ogc/conformance", False),
            ("collections", "/ogc/collections", False),
            ("collection", "/ogc/collections/areas", False),
            ("items", "/ogc/collections/areas/items?limit=3&offset=1", True),
            ("item", "/ogc/collections/areas/items/zz-hostile", True),
        ):
            page.goto(site + path)  # no f: the browser's own Accept header asks for HTML
            assert page.evaluate("document.documentElement.lang") == lang, name
            if needs_map:
                page.wait_for_selector("#map[data-loaded='true']", timeout=20 * SECONDS)
            assert axe_problems(page) == [], name
            page.screenshot(path=str(ARTIFACTS / f"ogc-html-{name}-{lang}.png"), full_page=True)
        # the hostile name ran nothing: it is text in a cell
        assert dialogs == []
        assert HOSTILE in page.inner_text("#properties")
        # paging by the links, as a person would
        page.goto(site + "/ogc/collections/areas/items?limit=2")
        page.wait_for_selector("#map[data-loaded='true']", timeout=20 * SECONDS)  # not cut off mid-load
        page.click("a[rel=next]")
        page.wait_for_url("**offset=2**")
        page.wait_for_selector("#map[data-loaded='true']", timeout=20 * SECONDS)
        assert page.locator("#feature-table tbody tr").count() == 2
        assert traffic.foreign() == [] and traffic.console_errors == []
        # the only refusal: the first, keyless request of a data page, which the browser answered by signing in
        assert [f for f in traffic.failed if not f.endswith("HTTP 401")] == []
    finally:
        context.close()
