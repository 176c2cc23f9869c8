"""Vector tiles (Mapbox Vector Tile via PostGIS ST_AsMVT): layers, tile addresses and TileJSON. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from mimamori.errors import ValidationError

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


def check_tile(z: int, x: int, y: int) -> None:
    """An XYZ (Web Mercator, y down) tile address that exists."""
    if not 0 <= z <= MAX_ZOOM:
        raise ValidationError(f"zoom must be 0–{MAX_ZOOM}")
    size = 1 << z
    if not (0 <= x < size and 0 <= y < size):
        raise ValidationError(f"tile {z}/{x}/{y} does not exist: x and y must be below {size} at zoom {z}")


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
