"""STA entity documents, pure: a row and its expansions in, JSON out. Shared by the REST face (api/sta.py) and the
MQTT extension's publisher (alerts/sta_mqtt.py), so an Observation pushed on MQTT is the document GET answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from devices.sta.ids import ObservationId, format_key
from devices.sta.model import ENTITY_SETS, EntitySet
from devices.sta.options import Options, StaError
from devices.sta.options import options_query as _options_query
from devices.sta.queries import Page


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def entity_key(es: EntitySet, row: dict[str, Any]) -> int | str:
    if es.name == "Observations":
        return str(ObservationId(row["_series"], row["phenomenonTime"]))
    return row["id"]  # type: ignore[no-any-return]


def self_link(base: str, es: EntitySet, row: dict[str, Any]) -> str:
    return f"{base}/{es.name}({format_key(entity_key(es, row))})"


def _check_select(es: EntitySet, select: tuple[str, ...] | None) -> None:
    for name in select or ():
        if name not in es.properties and name not in es.navs and name not in ("@iot.id", "@iot.selfLink"):
            raise StaError(f"$select: {es.singular} has no property {name[:60]!r}")


def entity(base: str, es: EntitySet, row: dict[str, Any], expanded: dict[str, Any], options: Options) -> dict[str, Any]:
    select = options.select
    _check_select(es, select)
    wanted = None if select is None else set(select)
    link = self_link(base, es, row)
    doc: dict[str, Any] = {}
    if wanted is None or wanted & {"id", "@iot.id"}:
        doc["@iot.id"] = entity_key(es, row)
    if wanted is None or wanted & {"id", "@iot.selfLink"}:
        doc["@iot.selfLink"] = link
    for name in es.properties:
        if name != "id" and (wanted is None or name in wanted):
            doc[name] = json_value(row[name])
    for name in es.navs:
        if wanted is None or name in wanted:
            doc[f"{name}@iot.navigationLink"] = f"{link}/{name}"
    by_nav = {e.nav: e.options for e in options.expand}
    for name, child in expanded.items():
        nav = es.navs[name]
        target = ENTITY_SETS[nav.target]
        child_options = by_nav[name]
        if nav.to_one:
            doc[name] = None if child is None else entity(base, target, child[0], child[1], child_options)
            continue
        assert isinstance(child, Page)
        doc[name] = [entity(base, target, r, x, child_options) for r, x in pairs(child)]
        if child.count is not None:
            doc[f"{name}@iot.count"] = child.count
        if child.next_query is not None:
            query = _options_query(child_options) | child.next_query
            if "$skiptoken" in child.next_query:
                query.pop("$skip", None)
            doc[f"{name}@iot.nextLink"] = f"{link}/{name}?{urlencode(query)}"
    return doc


def pairs(page: Page) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    expanded = page.expanded or [{} for _ in page.rows]
    return list(zip(page.rows, expanded, strict=True))
