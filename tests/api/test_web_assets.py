"""The web map's pieces without a browser: the synthetic base layers (pure) and what the hub serves for the page."""

from __future__ import annotations

import json
import mimetypes
import re
from collections import deque
from pathlib import Path

import httpx
import pytest
import yaml
from shapely.geometry import Point, shape
from shapely.ops import unary_union

from api.app import create_app
from api.routes.web import JS_MEDIA_TYPE
from api.web import STATIC_DIR, synthetic_basemap
from api.web.basemap import chaikin
from devices.keys import Role, create_key

CITY_DEVICES = Path(__file__).resolve().parents[2] / "devices" / "city_devices.yaml"


def layer(name: str) -> list[dict]:
    return [f for f in synthetic_basemap()["features"] if f["properties"]["layer"] == name]


def test_every_base_feature_is_labelled_synthetic_and_valid():
    base = synthetic_basemap()
    assert "SYNTHETIC" in base["attribution"]
    for f in base["features"]:
        assert f["properties"]["synthetic"] is True
        assert f["properties"]["name"] and f["properties"]["name_ja"]
        assert shape(f["geometry"]).is_valid
    assert {f["properties"]["layer"] for f in base["features"]} == {"outline", "district", "river", "road", "place"}


def test_the_districts_tile_the_city_outline_without_overlap():
    city = shape(layer("outline")[0]["geometry"])
    cells = [shape(f["geometry"]) for f in layer("district")]
    assert len(cells) == 7
    assert unary_union(cells).symmetric_difference(city).area < city.area * 1e-6
    assert sum(c.area for c in cells) == pytest.approx(city.area, rel=1e-6)


def test_every_place_and_every_city_device_lies_inside_the_city():
    city = shape(layer("outline")[0]["geometry"])
    for place in layer("place"):
        assert city.contains(shape(place["geometry"])), place["properties"]["name"]
    for device in yaml.safe_load(CITY_DEVICES.read_text("utf-8"))["devices"]:
        assert city.contains(Point(device["lon"], device["lat"])), device["id"]


def test_each_river_gauge_of_the_city_sits_on_its_drawn_river():
    rivers = {f["properties"]["name"].split()[0]: shape(f["geometry"]) for f in layer("river")}
    for device in yaml.safe_load(CITY_DEVICES.read_text("utf-8"))["devices"]:
        if not device["type"].startswith("river_gauge"):
            continue
        river = rivers[device["metadata"]["river"]]
        # about 0.003° is 300 m at this latitude: the smoothing only rounds the corners at the gauges
        assert river.distance(Point(device["lon"], device["lat"])) < 0.003, device["id"]


def test_chaikin_keeps_the_ends_of_an_open_line_and_doubles_its_inner_points():
    line = [(0.0, 0.0), (1.0, 1.0), (2.0, 0.0)]
    once = chaikin(line, rounds=1)
    assert once[0] == line[0] and once[-1] == line[-1]
    assert len(once) == 2 * (len(line) - 1) + 2
    assert len(chaikin(line, rounds=1, closed=True)) == 2 * len(line)


def test_the_page_and_every_asset_it_names_are_served_without_a_key(settings, pool):
    import asyncio

    async def fetch_all() -> None:
        transport = httpx.ASGITransport(app=create_app(settings, pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            page = await c.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assets = re.findall(r'(?:href|src)="(/[^"]+)"', page.text)
            assert "/web/vendor/maplibre-gl.js" in assets
            modules = [p.name for p in STATIC_DIR.glob("*.js")]
            for path in assets + [f"/web/{m}" for m in modules] + ["/favicon.ico"]:
                r = await c.get(path)
                assert r.status_code == 200, path
                assert r.headers["cache-control"] == "no-cache", path
                if path.endswith(".js"):  # a module script that comes as anything else is refused by the browser
                    assert r.headers["content-type"] == JS_MEDIA_TYPE, path
            # nothing on the page or in its scripts points outside the hub
            for path in ["/", *[f"/web/{m}" for m in modules], "/web/app.css"]:
                text = (await c.get(path)).text
                assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path
            assert (await c.get("/web/../routes/web.py")).status_code == 404

    asyncio.run(fetch_all())


# `import … from "…"`, `import "…"` and `export … from "…"`; names are those between braces, if any.
_STATIC_IMPORT = re.compile(
    r"""^[ \t]*(?:import|export)\s+(?:(?P<what>[^;'"]*?)\s*from\s*)?["'](?P<spec>[^"']+)["']""", re.M
)
_EXPORTED = re.compile(r"^export\s+(?:async\s+)?(?:function\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)", re.M)
_EXPORT_LIST = re.compile(r"^export\s*\{([^}]*)\}", re.M)
_SIBLING = re.compile(r"\./[A-Za-z0-9_-]+\.js")


def _names(braces: str, *, exported: bool) -> set[str]:
    """`a, b as c` → {a, b} as imported, {a, c} as exported."""
    parts = [p.split(" as ") for p in re.sub(r"\s+", " ", braces).split(",") if p.strip()]
    return {(p[-1] if exported else p[0]).strip() for p in parts}


def _exports(text: str) -> set[str]:
    found = set(_EXPORTED.findall(text))
    for braces in _EXPORT_LIST.findall(text):
        found |= _names(braces, exported=True)
    return found


def test_every_static_script_is_a_small_es_module_reached_from_the_page_entry():
    page = (STATIC_DIR / "index.html").read_text("utf-8")
    entries = re.findall(r'<script type="module" src="/web/([^"]+)"></script>', page)
    assert entries == ["app.js"]
    # the only classic script is the vendored MapLibre: everything of ours is a module
    assert re.findall(r"<script(?![^>]*type=\"module\")[^>]*src=\"([^\"]+)\"", page) == ["/web/vendor/maplibre-gl.js"]
    # The OGC API's HTML pages (api/web/templates/ogc/) load their own small map module: a second entry.
    templates = STATIC_DIR.parent / "templates" / "ogc"
    ogc_entries = sorted(
        {
            e
            for t in templates.glob("*.html")
            for e in re.findall(r'<script type="module" src="/web/([^"]+)">', t.read_text())
        }
    )
    assert ogc_entries == ["ogc-map.js"]
    sources = {p.name: p.read_text("utf-8") for p in STATIC_DIR.glob("*.js")}
    reached: set[str] = set()
    todo = deque(entries + ogc_entries)
    while todo:
        name = todo.popleft()
        if name in reached:
            continue
        reached.add(name)
        text = sources[name]
        # a dynamic import would hide a module from this walk (and could name any URL)
        assert not re.search(r"\bimport\s*\(", text), name
        for m in _STATIC_IMPORT.finditer(text):
            spec = m["spec"]
            # a sibling of the page's own files: never a URL of another host, a bare name or a path out of /web
            assert _SIBLING.fullmatch(spec), f"{name} imports {spec!r}"
            target = spec.removeprefix("./")
            assert target in sources, f"{name} imports {spec!r}, which is not in {STATIC_DIR}"
            what = (m["what"] or "").strip()
            if what.startswith("{"):
                missing = _names(what.strip("{}"), exported=False) - _exports(sources[target])
                assert not missing, f"{name} imports {sorted(missing)} that {target} does not export"
            todo.append(target)
    assert reached == set(sources), f"not imported from an entry: {sorted(set(sources) - reached)}"
    # and each stays small enough to read in one go
    too_long = {n: t.count("\n") for n, t in sources.items() if t.count("\n") > 300}
    assert too_long == {}


def test_modules_are_served_as_javascript_whatever_the_hosts_mime_table_says(settings, pool):
    import asyncio

    async def fetch() -> None:
        transport = httpx.ASGITransport(app=create_app(settings, pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            r = await c.get("/web/state.js")
            assert r.status_code == 200
            assert r.headers["content-type"] == JS_MEDIA_TYPE
            assert "export function subscribe" in r.text

    before = mimetypes.guess_type("x.js")[0]
    mimetypes.add_type("text/plain", ".js")  # as a Windows registry can have it
    try:
        assert mimetypes.guess_type("x.js")[0] == "text/plain"
        asyncio.run(fetch())
    finally:
        mimetypes.add_type(before or "text/javascript", ".js")
    assert mimetypes.guess_type("x.js")[0] == before


def test_the_base_layers_and_browser_settings_are_served(settings, pool, tmp_path):
    import asyncio

    own = tmp_path / "city.geojson"
    own.write_text(json.dumps({"type": "FeatureCollection", "features": []}), "utf-8")

    async def fetch() -> None:
        transport = httpx.ASGITransport(app=create_app(settings, pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            base = await c.get("/web/basemap.geojson")
            assert base.headers["content-type"] == "application/geo+json"
            assert base.json() == synthetic_basemap()
            config = (await c.get("/web/config.json")).json()
            assert "silent_factor" not in config  # silence is judged by the hub, served on each device feature
            assert config["banner_level"] == 3
            assert "SYNTHETIC" in config["attribution"]
            # the national colours and names, from the level table (the map chooses readable text on each)
            levels = config["levels"]
            assert {n: v["color"] for n, v in levels.items()} == {
                "0": "#2f9e6b",
                "1": "#ffffff",
                "2": "#f2e700",
                "3": "#ff2800",
                "4": "#aa00aa",
                "5": "#0c000c",
            }
            assert levels["4"]["ja"] == "警戒レベル4 避難指示" and "en" not in levels["0"]
        configured = settings.model_copy(update={"web_basemap": str(own), "web_basemap_attribution": "GSI"})
        transport = httpx.ASGITransport(app=create_app(configured, pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            assert (await c.get("/web/basemap.geojson")).json()["features"] == []
            assert (await c.get("/web/config.json")).json()["attribution"] == "GSI"

    asyncio.run(fetch())


def test_me_names_the_keys_tenant_and_role_and_needs_a_key(settings, pool, db, city):
    import asyncio

    partner = create_key(db, "acme", Role.partner)[1]

    async def fetch() -> None:
        transport = httpx.ASGITransport(app=create_app(settings, pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            assert (await c.get("/v1/me")).status_code == 401
            me = (await c.get("/v1/me", headers={"X-API-Key": partner})).json()
            assert me == {"tenant_id": "acme", "role": "partner", "sees_all_tenants": False}

    asyncio.run(fetch())
