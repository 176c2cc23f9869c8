"""Vector tiles (Mapbox Vector Tile via PostGIS ST_AsMVT): layers, tile addresses and TileJSON. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mimamori.errors import NotFound, ValidationError

MAX_ZOOM = 22


@dataclass(frozen=True)
class TileLayer:
    id: str
    description: str
    fields: dict[str, str]  # attribute name -> TileJSON type word
    partners: bool  # whether partner keys may fetch it (confined to their tenant)
    live: bool  # changes by the minute (short cache) or by import (long cache)
    minzoom: int = 0


LAYERS: dict[str, TileLayer] = {
    layer.id: layer
    for layer in (
        TileLayer(
            "stands",
            "Forest stands (森林簿); below the stand-detail zoom, their compartments (林班: compartment, stands)",
            {
                "stand_id": "String",
                "compartment": "String",
                "stands": "Number",
                "species_1": "String",
                "age_1": "Number",
                "age_class": "Number",
                "area_ha": "Number",
                "ownership": "String",
                "forest_type": "String",
                "protected": "Boolean",
            },
            partners=False,
            live=False,
            minzoom=8,
        ),
        TileLayer(
            "devices",
            "Sensors and their status",
            {"id": "String", "name": "String", "device_type": "String", "status": "String", "online": "Boolean"},
            partners=True,
            live=True,
        ),
        TileLayer(
            "alerts",
            "Active alerts (their area, or their sensor's position)",
            {"id": "Number", "hazard": "String", "level": "Number", "state": "String", "title_en": "String"},
            partners=True,
            live=True,
        ),
    )
}


def stand_tile_source(z: int, detail_zoom: int) -> str:
    """What a stand tile at zoom ``z`` draws: each stand, or (zoomed out) compartments dissolved from them.

    A zoomed-out tile over the city would hold tens of thousands of stands, each a few pixels: seconds to render
    and megabytes to send, for a picture that compartments draw as well.
    """
    return "stands" if z >= detail_zoom else "compartments"


_WHOLE = re.compile(r"-?[0-9]+")


def tile_address(z: str, x: str, y: str) -> tuple[int, int, int]:
    """An XYZ (Web Mercator, y down) tile address from a request path, as OGC API – Tiles answers one.

    Not whole numbers (``1.5``, ``a``): ValidationError, a malformed request (400). Whole numbers naming no tile
    (zoom beyond 0–22, x or y outside the zoom's grid, negative): NotFound (404).
    """
    for name, text in (("z", z), ("x", x), ("y", y)):
        if not _WHOLE.fullmatch(text):
            raise ValidationError(f"tile {name} must be a whole number, not {text[:40]!r}")
    if any(len(text) > 12 for text in (z, x, y)):  # far beyond any grid: no need to read the number
        raise NotFound(f"no tile {z[:20]}/{x[:20]}/{y[:20]}")
    zoom, column, row = int(z), int(x), int(y)
    if not 0 <= zoom <= MAX_ZOOM:
        raise NotFound(f"no tile at zoom {zoom}: zoom is 0–{MAX_ZOOM}")
    size = 1 << zoom
    if not (0 <= column < size and 0 <= row < size):
        raise NotFound(f"no tile {zoom}/{column}/{row}: x and y are 0–{size - 1} at zoom {zoom}")
    return zoom, column, row


def tilejson(base: str, layer: TileLayer, bounds: tuple[float, float, float, float] | None) -> dict[str, object]:
    return {
        "tilejson": "3.0.0",
        "name": f"mimamori-{layer.id}",
        "description": layer.description,
        "scheme": "xyz",
        "tiles": [f"{base}/v1/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt"],
        "minzoom": layer.minzoom,
        "maxzoom": MAX_ZOOM,
        "bounds": list(bounds) if bounds else [-180.0, -85.0511, 180.0, 85.0511],
        "vector_layers": [
            {
                "id": layer.id,
                "description": layer.description,
                "fields": layer.fields,
                "minzoom": layer.minzoom,
                "maxzoom": MAX_ZOOM,
            }
        ],
    }
