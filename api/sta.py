"""SensorThings API 1.1 documents: entities with ``@iot.id``, ``@iot.selfLink`` and navigation links, collections
with ``@iot.count`` and ``@iot.nextLink``, the service root, and STA's error body. Pure: rows in, JSON out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from devices.sta import ENTITY_SETS, Many, One, Options, entity, entity_key, json_value, pairs, self_link

__all__ = ["collection", "entity", "entity_key", "error", "json_value", "one", "self_link", "service_root"]

VERSION_PATH = "/sta/v1.1"
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete/create-entity",
]


def error(status: int, message: str) -> dict[str, Any]:
    """STA's error body (as FROST answers): code, type and a sentence."""
    return {"code": status, "type": "error", "message": message}


def one(base: str, found: One, options: Options) -> dict[str, Any]:
    return entity(base, found.es, found.row, found.expanded, options)


def collection(base: str, found: Many, options: Options, url: str, query: dict[str, str]) -> dict[str, Any]:
    """A collection answer; ``url`` and ``query`` are the request's, to build ``@iot.nextLink`` from."""
    page = found.page
    doc: dict[str, Any] = {}
    if page.count is not None:
        doc["@iot.count"] = page.count
    if page.next_query is not None:
        nxt = {k: v for k, v in query.items() if k not in ("$skip", "$skiptoken")} | page.next_query
        doc["@iot.nextLink"] = f"{url}?{urlencode(nxt)}"
    doc["value"] = [entity(base, found.es, r, x, options) for r, x in pairs(page)]
    return doc


def service_root(base: str) -> dict[str, Any]:
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
        "serverSettings": {"conformance": CONFORMANCE},
    }
