"""The citizens' page as pure functions: the translations file, language negotiation, the view of a snapshot and
its HTML. No database, no clock read: the route passes the snapshot and ``now`` in."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
import yaml
from markupsafe import Markup, escape

from api.public import PUBLIC_DIR, TRANSLATIONS
from api.web.levels import map_levels
from mimamori.errors import ConfigError
from opendata import EvacuationSite, PublicAlert, PublicSnapshot, RiverGauge, Source

TZ = ZoneInfo("Asia/Tokyo")
# The languages' ?lang= keys and Accept-Language tags beyond their own codes (lower case).
ALIASES = {"ja-x-easy": "easy", "pt": "pt-BR", "zh": "zh-CN", "zh-hans": "zh-CN", "fil": "tl"}
# Each level's shape, so a level never rests on colour alone: SVG drawn in a 16x16 box.
SHAPES = {
    0: '<circle cx="8" cy="8" r="6.5"/>',  # normal: a circle
    1: '<path d="M8 .5l7.5 7.5-7.5 7.5L.5 8z"/>',  # a diamond
    2: '<path d="M8 1l7.5 14H.5z"/>',  # a triangle
    3: '<path d="M1.5 1.5h13v13h-13z"/>',  # a square
    4: '<path d="M1 4l3-3 4 4 4-4 3 3-4 4 4 4-3 3-4-4-4 4-3-3 4-4z"/>',  # a cross
    5: '<path d="M5 .5h6l4.5 4.5v6L11 15.5H5L.5 11V5z"/>',  # an octagon (a stop sign)
}


@dataclass(frozen=True, slots=True)
class Translations:
    default: str
    languages: dict[str, dict[str, Any]]  # key (ja, easy, en, pt-BR, ...) -> its strings
    advice_from: dict[str, str]  # hazard -> the hazard whose advice it takes


def _keys(d: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        name = f"{prefix}{k}"
        out |= _keys(v, f"{name}.") if isinstance(v, dict) else {name}
    return out


def parse_translations(doc: Any, where: str) -> Translations:
    """The file's content checked: every language has every key of the default language (advice may be shorter:
    it falls back to ``advice.default``), levels 0-5 and advice.default 1-5."""
    if not isinstance(doc, dict) or not isinstance(doc.get("languages"), dict) or not doc["languages"]:
        raise ConfigError(f"{where}: needs a `languages` mapping")
    langs: dict[str, dict[str, Any]] = doc["languages"]
    default = str(doc.get("default", "ja"))
    if default not in langs:
        raise ConfigError(f"{where}: default language {default!r} is not in languages")
    wanted = _keys({k: v for k, v in langs[default].items() if k != "advice"})
    checked: dict[str, dict[str, Any]] = {}
    for code, given in langs.items():
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: languages.{code} must be a mapping")
        strings = checked[str(code)] = dict(given)  # a copy: the caller's document is left as it was
        missing = wanted - _keys({k: v for k, v in strings.items() if k != "advice"})
        if missing:
            raise ConfigError(f"{where}: languages.{code} lacks {', '.join(sorted(missing))}")
        levels = strings["levels"]
        if sorted(int(k) for k in levels) != list(range(6)):
            raise ConfigError(f"{where}: languages.{code}.levels must name levels 0-5")
        strings["levels"] = {int(k): str(v) for k, v in levels.items()}
        advice = strings.get("advice") or {}
        if sorted(int(k) for k in (advice.get("default") or {})) != list(range(1, 6)):
            raise ConfigError(f"{where}: languages.{code}.advice.default must advise levels 1-5")
        strings["advice"] = {h: {str(k): str(v) for k, v in a.items()} for h, a in advice.items()}
    return Translations(default, checked, {str(k): str(v) for k, v in (doc.get("advice_from") or {}).items()})


@cache
def load_translations(path: str | None) -> Translations:
    """The translations file (``path``, or the packaged one), parsed and checked once per path."""
    source = Path(path) if path else TRANSLATIONS
    try:
        doc = yaml.safe_load(source.read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"the citizens' page translations {source} cannot be read: {exc}") from None
    return parse_translations(doc, str(source))


def _match(tag: str, codes: dict[str, str]) -> str | None:
    tag = tag.strip().lower()
    if tag in codes:
        return codes[tag]
    if tag in ALIASES:
        return ALIASES[tag]
    primary = tag.split("-")[0]
    if primary in codes:
        return codes[primary]
    return ALIASES.get(primary)


def negotiate(query: str | None, accept_language: str | None, tr: Translations) -> str:
    """The page's language: ``?lang=`` when it names one, else the best of Accept-Language, else the default."""
    codes = {c.lower(): c for c in tr.languages}
    if query:
        found = _match(query, codes)
        if found in tr.languages:
            return found
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")[:32]):
        tag, _, params = part.partition(";")
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        if tag.strip() and tag.strip() != "*" and q > 0:
            ranked.append((-q, i, tag))
    for _q, _i, tag in sorted(ranked):
        found = _match(tag, codes)
        if found in tr.languages:
            return found
    return tr.default


def local_time(t: datetime) -> str:
    return t.astimezone(TZ).strftime("%Y-%m-%d %H:%M JST")


def age_text(strings: dict[str, Any], t: datetime, now: datetime) -> str:
    minutes = max(0, int((now - t).total_seconds() // 60))
    if minutes < 1:
        return str(strings["age_now"])
    if minutes < 60:
        return str(strings["age_min"]).replace("{n}", str(minutes))
    if minutes < 48 * 60:
        return str(strings["age_hour"]).replace("{n}", str(minutes // 60))
    return str(strings["age_day"]).replace("{n}", str(minutes // (24 * 60)))


def _luminance(hex_colour: str) -> float:
    c = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    c = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def text_on(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (WCAG contrast)."""
    lum = _luminance(background)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def advice(tr: Translations, lang: str, hazard: str, level: int) -> str:
    """What to do, per hazard and level: the hazard's own advice for the level, its `any`, else the default's."""
    table = tr.languages[lang]["advice"]
    for h in (hazard, tr.advice_from.get(hazard)):
        if h and h in table:
            if str(level) in table[h]:
                return table[h][str(level)]
            if "any" in table[h]:
                return table[h]["any"]
    return table["default"][str(min(max(level, 1), 5))]


_PREFECTURE = re.compile(r"^(東京都|北海道|京都府|大阪府|.{2,3}県)")
_CITY = re.compile(r"^.+?市")
_BLOCK = re.compile(r"[0-9０-９]|[一二三四五六七八九十]+丁目")


def district(address: str | None) -> str:
    """The town (町字) of a Japanese address: after the prefecture and the city, before the block numbers."""
    rest = _PREFECTURE.sub("", (address or "").strip(), count=1)
    rest = _CITY.sub("", rest, count=1)
    return _BLOCK.split(rest, maxsplit=1)[0].strip()


@dataclass(frozen=True, slots=True)
class Credit:
    title: str
    licence: str
    licence_url: str
    attribution: str


def _credits(snapshot: PublicSnapshot, lang: str, used: set[str]) -> list[Credit]:
    out = []
    for d in snapshot.datasets:
        if d.id in used:
            title = d.title_ja if lang in ("ja", "easy") else d.title_en
            out.append(Credit(title, d.licence, d.licence_url, d.attribution))
    return out


def _sources(items: Any) -> set[str]:
    return {item.source.dataset_id for item in items if isinstance(item.source, Source)}


def _site_key(s: EvacuationSite) -> tuple[str, str, str]:
    return (district(s.address) or "\uffff", s.name_kana or s.name, s.id)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (the page's script does the same sum in the browser; this one is for tests)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0088 * 2 * math.asin(math.sqrt(a))


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PUBLIC_DIR),
        autoescape=True,  # every name comes from a device registry, a CSV or a rule file: text, never markup
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fill"] = _fill
    return env


def _fill(template: str, **values: Any) -> Markup:
    """A translated sentence with its ``{name}`` places filled: the sentence and plain values escaped, markup
    (a <time> element) kept."""
    out = str(escape(template))
    for k, v in values.items():
        out = out.replace("{" + k + "}", str(escape(v)))
    return Markup(out)  # noqa: S704 - every piece was escaped above


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no "</script>" or "<!--" can close or bend it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(
    snapshot: PublicSnapshot,
    tr: Translations,
    lang: str,
    now: datetime,
    *,
    gauge: RiverGauge | None = None,
    single: bool = False,
    script_path: str = "/public/public.js",
) -> str:
    """The page in ``lang``: every published gauge (or just ``gauge``), active alerts, evacuation sites, credits."""
    strings = tr.languages[lang]
    colours = {int(k): v["color"] for k, v in map_levels().items()}
    single = single or gauge is not None  # one gauge's page (its gauge None: not published)
    gauges = (gauge,) if gauge is not None else () if single else snapshot.river_gauges
    sites = sorted(snapshot.evacuation_sites, key=_site_key)
    groups: list[tuple[str, list[EvacuationSite]]] = []
    for s in sites:
        name = district(s.address)
        if not groups or groups[-1][0] != name:
            groups.append((name, []))
        groups[-1][1].append(s)
    shown: list[Any] = [*gauges, *snapshot.rain_gauges, *snapshot.alerts, *sites]
    page_lang = strings["html_lang"]
    return (
        _environment()
        .get_template("page.html.j2")
        .render(
            t=strings,
            lang=lang,
            html_lang=page_lang,
            place_lang=None if page_lang == "ja" else "ja",  # names of places are Japanese
            languages=[(code, s["label"], s["html_lang"]) for code, s in tr.languages.items()],
            now=now,
            generated=local_time(now),
            generated_iso=now.isoformat(),
            gauges=gauges,
            single=single,
            rain=() if single else snapshot.rain_gauges,
            alerts=snapshot.alerts,
            groups=groups,
            credits=_credits(snapshot, lang, _sources(shown)),
            colours=colours,
            ink={n: text_on(c) for n, c in colours.items()},
            shapes=SHAPES,
            local_time=local_time,
            age=lambda t: age_text(strings, t, now),
            advice=lambda a: advice(tr, lang, a.hazard, a.level),
            alert_title=lambda a: _alert_title(a, lang),
            fmt_m=lambda v: f"{v:.2f}",
            script_path=script_path,
            i18n=Markup(_script_json(_script_strings(strings))),  # noqa: S704 - JSON made inert for <script>
        )
    )


def _script_strings(strings: dict[str, Any]) -> dict[str, str]:
    keys = ("age_now", "age_min", "age_hour", "age_day", "distance", "sorted", "location_failed")
    return {k: str(strings[k]) for k in keys}


def _alert_title(a: PublicAlert, lang: str) -> str:
    """The rule's own title: Japanese for ja and easy, English otherwise (rules carry only those two)."""
    if lang in ("ja", "easy") and a.title_ja:
        return a.title_ja
    return a.title_en
