"""CAP 1.2 (OASIS Common Alerting Protocol) documents and the Atom feed. Pure: rows in, XML out.

One document per stored CAP message (alerts/cap_messages.py: which changes are messages, and why): its own
identifier and sent time, msgType Alert for the first and Update after, ``references`` to every earlier message of
the alert. Each is told in Japanese and English (one ``info`` per language) with the place's names as stored with
the message. Severity, urgency and response come from the level table (``levels.yaml``); the area is the alert's
polygon in CAP's "lat,lon" order (GeoJSON is [lon, lat]: converted explicitly, ring closed), or a circle around
the device when no area is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from importlib import resources
from typing import Any
from xml.etree import ElementTree as ET

import yaml

from alerts.cap_messages import CapMessage

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
JST = timezone(timedelta(hours=9), "JST")

ET.register_namespace("", CAP_NS)


@dataclass(frozen=True, slots=True)
class LevelTable:
    levels: dict[int, dict[str, str]]
    all_clear: dict[str, str]
    categories: dict[str, str]
    certainty: str


@cache
def level_table() -> LevelTable:
    doc = yaml.safe_load(resources.files("alerts").joinpath("levels.yaml").read_text("utf-8"))
    levels = {int(k): v for k, v in doc["levels"].items()}
    return LevelTable(levels, doc["all_clear"], doc["categories"], doc["certainty"])


@dataclass(frozen=True, slots=True)
class CapContext:
    sender: str
    base_url: str  # the hub's public URL (settings.public_url), for <web> and the feed's links
    tz: timezone = JST
    sender_name: str = "Mimamori 見守り"


def cap_time(value: datetime, tz: timezone = JST) -> str:
    """CAP's dateTime: seconds, explicit offset, never 'Z' (UTC is written -00:00)."""
    text = value.astimezone(tz).replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def incident_id(alert_id: int) -> str:
    # every message of one alert names the same incident, so consumers can group them
    return f"mimamori.alert.{alert_id}"


def references(ctx: CapContext, earlier: Iterable[CapMessage]) -> str:
    """CAP 1.2 <references>: the earlier messages as space-separated 'sender,identifier,sent' triples."""
    return " ".join(f"{ctx.sender},{m.identifier},{cap_time(m.sent, ctx.tz)}" for m in earlier)


def cap_polygons(area: dict[str, Any] | None) -> list[str]:
    """GeoJSON (Multi)Polygon outer rings as CAP polygons: 'lat,lon' pairs, closed, at least 4 pairs."""
    if not area:
        return []
    if area.get("type") == "Polygon":
        rings = [area["coordinates"][0]]
    elif area.get("type") == "MultiPolygon":
        rings = [poly[0] for poly in area["coordinates"]]
    else:
        return []
    out = []
    for ring in rings:
        pairs = [(float(p[1]), float(p[0])) for p in ring]
        if pairs and pairs[0] != pairs[-1]:
            pairs.append(pairs[0])
        if len(pairs) >= 4:
            out.append(" ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in pairs))
    return out


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _chosen(messages: Sequence[CapMessage], seq: int | None) -> int:
    """Index of message ``seq`` (the newest when None) in the alert's messages."""
    if not messages:
        raise ValueError("an alert without CAP messages cannot be rendered")
    if seq is None:
        return len(messages) - 1
    for i, m in enumerate(messages):
        if m.seq == seq:
            return i
    raise KeyError(seq)


def cap_alert(
    alert: dict[str, Any], messages: Sequence[CapMessage], ctx: CapContext, *, seq: int | None = None
) -> ET.Element:
    """The CAP ``alert`` element of one message of an alert (the newest when ``seq`` is None).

    ``alert`` is the row ``alerts.store.get_alert`` returns; only what never changes after the alert opened is
    read from it (rule, hazard, titles, place). Everything that changes comes from the stored message and its
    event, so a message renders the same however often it is fetched; only <web> follows the public URL setting.
    """
    table = level_table()
    index = _chosen(messages, seq)
    message = messages[index]
    chain = messages[: index + 1]
    peak = max(m.level for m in chain)
    level = message.level if not message.all_clear else (message.previous_level or peak)
    spec = table.levels[level] if not message.all_clear else {**table.levels[level], **table.all_clear}
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", message.identifier)
    _sub(root, "sender", ctx.sender)
    _sub(root, "sent", cap_time(message.sent, ctx.tz))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", message.msg_type)
    _sub(root, "scope", "Public")
    _sub(root, "code", f"hazard:{alert['hazard']}")
    if index > 0:
        _sub(root, "references", references(ctx, messages[:index]))
    _sub(root, "incidents", incident_id(int(alert["id"])))
    what = {"ja": alert["title_ja"] or alert["title_en"], "en": alert["title_en"]}
    where = {"ja": message.area_ja, "en": message.area_en}
    for lang, language in (("ja", "ja-JP"), ("en", "en-US")):
        info = _sub(root, "info")
        _sub(info, "language", language)
        _sub(info, "category", table.categories.get(alert["hazard"], "Other"))
        _sub(info, "event", what[lang])
        _sub(info, "responseType", spec["response"])
        _sub(info, "urgency", spec["urgency"])
        _sub(info, "severity", spec["severity"])
        _sub(info, "certainty", table.certainty)
        code = _sub(info, "eventCode")
        _sub(code, "valueName", "mimamori:rule")
        _sub(code, "value", alert["rule_id"])
        _sub(info, "effective", cap_time(message.sent, ctx.tz))
        _sub(info, "senderName", ctx.sender_name)
        _sub(info, "headline", _headline(lang, what[lang], where[lang], message, table))
        _sub(info, "description", _description(lang, message, peak, table))
        _sub(info, "web", f"{ctx.base_url.rstrip('/')}/v1/alerts/{alert['id']}")
        for name, val in (
            ("warningLevel", str(message.level)),
            ("peakWarningLevel", str(peak)),
            ("state", message.state),
        ):
            param = _sub(info, "parameter")
            _sub(param, "valueName", name)
            _sub(param, "value", val)
        area = _sub(info, "area")
        _sub(area, "areaDesc", where[lang])
        polygons = cap_polygons(alert.get("area"))
        for polygon in polygons:
            _sub(area, "polygon", polygon)
        point = alert.get("location")
        if not polygons and point and point.get("type") == "Point":
            lon, lat = point["coordinates"]
            _sub(area, "circle", f"{lat:.6f},{lon:.6f} 0.5")
    return root


def _headline(lang: str, what: str, where: str, message: CapMessage, table: LevelTable) -> str:
    state = table.all_clear[lang] if message.all_clear else table.levels[message.level][lang]
    return f"{what}：{state}（{where}）" if lang == "ja" else f"{what}: {state} at {where}"


def _description(lang: str, message: CapMessage, peak: int, table: LevelTable) -> str:
    """What changed, in words: the level reached (from which), or the all clear with the highest level seen."""
    names = {n: spec[lang] for n, spec in table.levels.items()}
    if message.all_clear:
        text = (
            f"{table.all_clear[lang]}（最高 {names[peak]}）"
            if lang == "ja"
            else f"{table.all_clear[lang]} (peak: {names[peak]})"
        )
    elif message.kind == "raised":
        text = f"{names[message.level]} 発令" if lang == "ja" else f"{names[message.level]} (issued)"
    else:
        before = names.get(message.previous_level or 0, "")
        if lang == "ja":
            text = f"{before} → {names[message.level]}（{'引き上げ' if message.kind == 'escalated' else '引き下げ'}）"
        else:
            text = f"{before} -> {names[message.level]} ({'escalated' if message.kind == 'escalated' else 'lowered'})"
    if message.value is not None:
        text += f"; 観測値 {message.value:.3f}" if lang == "ja" else f"; observed value {message.value:.3f}"
    return text


def cap_document(
    alert: dict[str, Any], messages: Sequence[CapMessage], ctx: CapContext, *, seq: int | None = None
) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        cap_alert(alert, messages, ctx, seq=seq), encoding="utf-8", xml_declaration=False
    )


def message_url(ctx: CapContext, message: CapMessage) -> str:
    return f"{ctx.base_url.rstrip('/')}/v1/alerts/{message.alert_id}/cap/{message.seq}"


def atom_feed(
    alerts: Iterable[tuple[dict[str, Any], Sequence[CapMessage]]], ctx: CapContext, *, now: datetime, title: str
) -> bytes:
    """An Atom feed with each alert's newest CAP message (as alert hubs and aggregators expect): an entry per
    message, its id the message's own URL, updated when it was sent."""
    ET.register_namespace("atom", ATOM_NS)

    def a(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    def atom_time(value: datetime) -> str:
        return value.astimezone(ctx.tz).replace(microsecond=0).isoformat()

    base = ctx.base_url.rstrip("/")
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    a(feed, "id", f"{base}/v1/alerts/feed.atom")
    a(feed, "title", title)
    a(feed, "updated", atom_time(now))
    a(feed, "link", rel="self", href=f"{base}/v1/alerts/feed.atom")
    author = a(feed, "author")
    a(author, "name", ctx.sender_name)
    for alert, messages in alerts:
        if not messages:
            continue
        newest = messages[-1]
        url = message_url(ctx, newest)
        told = "all clear" if newest.all_clear else f"level {newest.level}"
        entry = a(feed, "entry")
        a(entry, "id", url)
        a(entry, "title", f"{alert['title_en']} / {alert['title_ja']} ({told}, {newest.area_en})")
        a(entry, "updated", atom_time(newest.sent))
        a(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=url)
        a(entry, "summary", f"{alert['hazard']} {told}, {newest.msg_type} {newest.identifier}")
        content = a(entry, "content", type=CAP_MEDIA_TYPE)
        content.append(cap_alert(alert, messages, ctx))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(feed, encoding="utf-8")
