"""CAP 1.2 (OASIS Common Alerting Protocol) documents and the Atom feed of active alerts. Pure: rows in, XML out.

Each alert is told in Japanese and English (one ``info`` per language). Severity, urgency and response come from
the level table (``levels.yaml``); the area is the alert's polygon in CAP's "lat,lon" order (GeoJSON is
[lon, lat]: converted explicitly, ring closed), or a circle around the device when no area is known.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from importlib import resources
from typing import Any
from xml.etree import ElementTree as ET

import yaml

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
JST = timezone(timedelta(hours=9), "JST")

ET.register_namespace("", CAP_NS)


@dataclass(frozen=True, slots=True)
class LevelTable:
    levels: dict[int, dict[str, str]]
    categories: dict[str, str]
    certainty: str


@cache
def level_table() -> LevelTable:
    doc = yaml.safe_load(resources.files("alerts").joinpath("levels.yaml").read_text("utf-8"))
    return LevelTable({int(k): v for k, v in doc["levels"].items()}, doc["categories"], doc["certainty"])


@dataclass(frozen=True, slots=True)
class CapContext:
    sender: str
    base_url: str
    tz: timezone = JST
    sender_name: str = "Mimamori 見守り"


def cap_time(value: datetime, tz: timezone = JST) -> str:
    """CAP's dateTime: seconds, explicit offset, never 'Z' (UTC is written -00:00)."""
    text = value.astimezone(tz).replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def _identifier(alert: dict[str, Any], ctx: CapContext, version: int | None) -> str:
    # CAP identifiers may not hold spaces, commas or < & : the sender's domain and numbers only
    domain = ctx.sender.rpartition("@")[2] or ctx.sender
    tail = f".{version}" if version is not None else ""
    return f"{domain}.alert.{alert['id']}{tail}"


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


def cap_alert(
    alert: dict[str, Any], ctx: CapContext, *, now: datetime, version: int | None = None, device_name: str = ""
) -> ET.Element:
    """The CAP ``alert`` element for one alert row (as ``alerts.queries.get_alert`` returns it)."""
    table = level_table()
    level = int(alert["level"])
    spec = table.levels[level]
    active = alert["state"] in ("open", "acknowledged")
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", _identifier(alert, ctx, version))
    _sub(root, "sender", ctx.sender)
    _sub(root, "sent", cap_time(now, ctx.tz))
    _sub(root, "status", "Actual")
    # the first message of an alert is an Alert; each later state of it updates that one (same incident)
    _sub(root, "msgType", "Update" if alert["updated_at"] > alert["opened_at"] else "Alert")
    _sub(root, "scope", "Public")
    _sub(root, "code", f"hazard:{alert['hazard']}")
    _sub(root, "incidents", f"{_identifier(alert, ctx, None)}")
    what = {"ja": alert["title_ja"] or alert["title_en"], "en": alert["title_en"]}
    where = device_name or alert.get("device_id") or alert["subject"]
    for lang, language in (("ja", "ja-JP"), ("en", "en-US")):
        info = _sub(root, "info")
        _sub(info, "language", language)
        _sub(info, "category", table.categories.get(alert["hazard"], "Other"))
        _sub(info, "event", what[lang])
        _sub(info, "responseType", spec["response"] if active else "AllClear")
        _sub(info, "urgency", spec["urgency"] if active else "Past")
        _sub(info, "severity", spec["severity"])
        _sub(info, "certainty", table.certainty)
        code = _sub(info, "eventCode")
        _sub(code, "valueName", "mimamori:rule")
        _sub(code, "value", alert["rule_id"])
        _sub(info, "effective", cap_time(alert["opened_at"], ctx.tz))
        _sub(info, "senderName", ctx.sender_name)
        level_name = spec[lang]
        if lang == "ja":
            headline = f"{what['ja']}：{level_name}（{where}）" if active else f"{what['ja']}：解除（{where}）"
            state_text = {"open": "発令中", "acknowledged": "対応中", "resolved": "解除", "closed": "終了"}
        else:
            headline = f"{what['en']}: {level_name} at {where}" if active else f"{what['en']}: all clear at {where}"
            state_text = {"open": "open", "acknowledged": "acknowledged", "resolved": "resolved", "closed": "closed"}
        _sub(info, "headline", headline)
        value = alert.get("value")
        value_text = "" if value is None else (f"値 {value:.3f}" if lang == "ja" else f"value {value:.3f}")
        _sub(info, "description", f"{level_name}; {state_text[alert['state']]}; {value_text}".strip("; "))
        _sub(info, "web", f"{ctx.base_url.rstrip('/')}/v1/alerts/{alert['id']}")
        for name, val in (
            ("warningLevel", str(level)),
            ("peakWarningLevel", str(alert["peak_level"])),
            ("state", alert["state"]),
        ):
            param = _sub(info, "parameter")
            _sub(param, "valueName", name)
            _sub(param, "value", val)
        area = _sub(info, "area")
        _sub(area, "areaDesc", where if lang == "en" or not device_name else device_name)
        polygons = cap_polygons(alert.get("area"))
        for polygon in polygons:
            _sub(area, "polygon", polygon)
        point = alert.get("location")
        if not polygons and point and point.get("type") == "Point":
            lon, lat = point["coordinates"]
            _sub(area, "circle", f"{lat:.6f},{lon:.6f} 0.5")
    return root


def cap_document(alert: dict[str, Any], ctx: CapContext, *, now: datetime, version: int | None = None) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        cap_alert(alert, ctx, now=now, version=version), encoding="utf-8", xml_declaration=False
    )


def atom_feed(alerts: Iterable[dict[str, Any]], ctx: CapContext, *, now: datetime, title: str) -> bytes:
    """An Atom feed of alerts, each entry carrying its CAP document (as alert hubs and aggregators expect)."""
    ET.register_namespace("atom", ATOM_NS)

    def a(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    base = ctx.base_url.rstrip("/")
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    a(feed, "id", f"{base}/v1/alerts/feed.atom")
    a(feed, "title", title)
    a(feed, "updated", now.astimezone(ctx.tz).replace(microsecond=0).isoformat())
    a(feed, "link", rel="self", href=f"{base}/v1/alerts/feed.atom")
    author = a(feed, "author")
    a(author, "name", ctx.sender_name)
    for alert in alerts:
        entry = a(feed, "entry")
        a(entry, "id", f"{base}/v1/alerts/{alert['id']}")
        a(entry, "title", f"{alert['title_en']} / {alert['title_ja']} (level {alert['level']})")
        a(entry, "updated", alert["updated_at"].astimezone(ctx.tz).replace(microsecond=0).isoformat())
        a(entry, "link", rel="alternate", type=CAP_MEDIA_TYPE, href=f"{base}/v1/alerts/{alert['id']}/cap")
        a(entry, "summary", f"{alert['hazard']} level {alert['level']}, {alert['state']}")
        content = a(entry, "content", type=CAP_MEDIA_TYPE)
        content.append(cap_alert(alert, ctx, now=now))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(feed, encoding="utf-8")
