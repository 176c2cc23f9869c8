"""Small builders for Grafana's dashboard JSON model (schemaVersion 39, Grafana 10.3 and later).

Plain functions returning plain dicts: what `export` writes and `sync` posts is exactly what these return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The PostgreSQL data source's plugin id since Grafana 10.3 (``postgres`` before; Grafana keeps it as an alias).
DATASOURCE_TYPE = "grafana-postgresql-datasource"
SCHEMA_VERSION = 39
GRID_WIDTH = 24

Json = dict[str, Any]


def datasource_ref(uid: str) -> Json:
    return {"type": DATASOURCE_TYPE, "uid": uid}


@dataclass
class Query:
    """One SQL target. ``fmt`` is Grafana's result format: ``time_series`` or ``table``."""

    sql: str
    fmt: str = "time_series"

    def target(self, ref_id: str, datasource_uid: str) -> Json:
        return {
            "refId": ref_id,
            "datasource": datasource_ref(datasource_uid),
            "editorMode": "code",
            "format": self.fmt,
            "rawQuery": True,
            "rawSql": self.sql.strip(),
        }


@dataclass
class Panel:
    """A panel before layout: its place on the grid is given by the dashboard that holds it."""

    kind: str  # timeseries, table, stat, bargauge, geomap
    title: str
    queries: list[Query]
    width: int = 12
    height: int = 8
    description: str = ""
    unit: str | None = None
    thresholds: list[tuple[float | None, str]] | None = None  # (from value, colour); None is the base step
    custom: Json = field(default_factory=dict)  # fieldConfig.defaults.custom
    options: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    repeat: str | None = None  # one panel per value of this variable
    min: float | None = None
    max: float | None = None

    def to_json(self, panel_id: int, x: int, y: int, datasource_uid: str) -> Json:
        defaults: Json = {"custom": self.custom}
        if self.unit:
            defaults["unit"] = self.unit
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        if self.thresholds:
            defaults["thresholds"] = {
                "mode": "absolute",
                "steps": [{"color": colour, "value": value} for value, colour in self.thresholds],
            }
        panel: Json = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": datasource_ref(datasource_uid),
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": [q.target(chr(ord("A") + i), datasource_uid) for i, q in enumerate(self.queries)],
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": self.options,
        }
        if self.repeat:
            panel["repeat"] = self.repeat
            panel["repeatDirection"] = "h"
            panel["maxPerRow"] = max(1, GRID_WIDTH // self.width)
        return panel


@dataclass
class Variable:
    """A query variable: its SQL returns ``__value`` (and ``__text``) columns."""

    name: str
    label: str
    sql: str
    multi: bool = True
    include_all: bool = True

    def to_json(self, datasource_uid: str) -> Json:
        return {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": datasource_ref(datasource_uid),
            "query": self.sql.strip(),
            "definition": self.sql.strip(),
            "refresh": 2,  # on time-range change: new devices appear without a reload
            "multi": self.multi,
            "includeAll": self.include_all,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if self.include_all else {},
            "sort": 1,
            "hide": 0,
        }


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    variables: list[Variable] = field(default_factory=list)
    tags: tuple[str, ...] = ("mimamori",)
    time_from: str = "now-24h"
    refresh: str = "1m"

    def to_json(self, datasource_uid: str) -> Json:
        """Lay the panels out left to right, wrapping at the grid's width, and return the dashboard model."""
        panels: list[Json] = []
        x = y = row_height = 0
        for i, panel in enumerate(self.panels, start=1):
            if x + panel.width > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panels.append(panel.to_json(i, x, y, datasource_uid))
            x += panel.width
            row_height = max(row_height, panel.height)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": self.refresh,
            "time": {"from": self.time_from, "to": "now"},
            "annotations": {"list": []},
            "links": [],
            "templating": {"list": [v.to_json(datasource_uid) for v in self.variables]},
            "panels": panels,
        }
