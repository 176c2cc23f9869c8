"""OGC API – Tiles, Part 1 (OGC 20-057) over the hub's vector tiles: tile matrix sets, tilesets and tile addresses.
No I/O here.

The tile matrix set is morecantile's WebMercatorQuad (OGC Two Dimensional Tile Matrix Set 2.0, OGC 17-083r4), the
grid the XYZ tiles of /v1/tiles already use: a tile here is the XYZ tile z/x/y at tileMatrix z, tileRow y, tileCol x.
"""

from __future__ import annotations

import re
from typing import Any

import morecantile
import orjson
from pydantic import BaseModel, Field

from geo.features import COLLECTIONS
from geo.tiles import LAYERS, MAX_ZOOM, TileLayer
from mimamori.errors import NotFound, ValidationError

JSON = "application/json"
MVT = "application/vnd.mapbox-vector-tile"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
REL_TILING_SCHEMES = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
REL_TILING_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
REL_TILESETS_VECTOR = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
REL_GEODATA = "http://www.opengis.net/def/rel/ogc/1.0/geodata"

_TILES = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf"
# Only what is served and tested (tests/api/test_ogc_tiles.py). The tile matrix set documents are morecantile's
# TileMatrixSet 2.0 JSON encoding.
CONFORMANCE = [
    f"{_TILES}/core",
    f"{_TILES}/tileset",
    f"{_TILES}/tilesets-list",
    f"{_TILES}/geodata-tilesets",
    f"{_TILES}/mvt",
    "http://www.opengis.net/spec/tms/2.0/conf/json-tilematrixset",
]

WEB_MERCATOR_QUAD = "WebMercatorQuad"
TILE_MATRIX_SETS: dict[str, morecantile.TileMatrixSet] = {WEB_MERCATOR_QUAD: morecantile.tms.get(WEB_MERCATOR_QUAD)}

# TileJSON's field type words (geo.tiles.TileLayer.fields) as JSON Schema types.
_SCHEMA_TYPES = {"String": "string", "Number": "number", "Boolean": "boolean"}
# OGC API – Tiles' geometryDimension of a layer: 0 points, 1 lines, 2 polygons (omitted when mixed).
_DIMENSIONS = {"Point": 0, "MultiPoint": 0, "Polygon": 2, "MultiPolygon": 2}


class OgcException(BaseModel):
    """OGC API's exception body (OGC API – Common, exception.yaml)."""

    code: str = Field(description="InvalidParameterValue")
    description: str


def invalid(exc: ValidationError) -> dict[str, str]:
    return {"code": "InvalidParameterValue", "description": str(exc)}


def tile_matrix_set(tms_id: str) -> morecantile.TileMatrixSet:
    found = TILE_MATRIX_SETS.get(tms_id)
    if found is None:
        raise NotFound(f"no tile matrix set {tms_id[:60]!r}; this API serves {', '.join(TILE_MATRIX_SETS)}")
    return found


def tile_layer(collection_id: str) -> TileLayer:
    """The tile layer of a collection: each tiled collection is one layer of the same name (not areas)."""
    layer = LAYERS.get(collection_id)
    if layer is None:
        raise NotFound(f"no tiles of collection {collection_id[:60]!r}; tiled collections: {', '.join(LAYERS)}")
    return layer


def served_zooms(layer: TileLayer, tms: morecantile.TileMatrixSet) -> range:
    """The tile matrices the hub serves a layer at: from its minzoom (TileJSON's) to the XYZ route's maximum."""
    return range(max(layer.minzoom, tms.minzoom), min(MAX_ZOOM, tms.maxzoom) + 1)


def _href(base: str, *parts: str) -> str:
    return "/".join([f"{base}/ogc", *parts])


def tile_matrix_sets_document(base: str) -> dict[str, object]:
    return {
        "links": [{"rel": "self", "type": JSON, "title": "Tile matrix sets", "href": _href(base, "tileMatrixSets")}],
        "tileMatrixSets": [
            {
                "id": tms_id,
                "title": tms.title,
                "uri": tms.uri,
                "crs": str(tms.crs.root),
                "links": [
                    {
                        "rel": "self",
                        "type": JSON,
                        "title": tms.title,
                        "href": _href(base, "tileMatrixSets", tms_id),
                    }
                ],
            }
            for tms_id, tms in TILE_MATRIX_SETS.items()
        ],
    }


def tile_matrix_set_document(tms_id: str) -> dict[str, Any]:
    """The tile matrix set in TileMatrixSet 2.0 JSON, as morecantile writes it (its own model reads it back)."""
    parsed: dict[str, Any] = orjson.loads(tile_matrix_set(tms_id).model_dump_json(exclude_none=True))
    return parsed


def _tileset_links(base: str, collection_id: str, tms_id: str) -> tuple[dict[str, object], dict[str, object]]:
    self_link = {
        "rel": "self",
        "type": JSON,
        "title": f"{collection_id} vector tiles in {tms_id}",
        "href": _href(base, "collections", collection_id, "tiles", tms_id),
    }
    scheme = {
        "rel": REL_TILING_SCHEME,
        "type": JSON,
        "title": f"The {tms_id} tile matrix set",
        "href": _href(base, "tileMatrixSets", tms_id),
    }
    return self_link, scheme


def tilesets_document(base: str, collection_id: str) -> dict[str, object]:
    """The collection's vector tilesets (/req/tilesets-list): one per tile matrix set."""
    tile_layer(collection_id)
    title = COLLECTIONS[collection_id].title if collection_id in COLLECTIONS else collection_id
    tilesets = []
    for tms_id, tms in TILE_MATRIX_SETS.items():
        self_link, scheme = _tileset_links(base, collection_id, tms_id)
        tilesets.append(
            {
                "title": f"{title} ({tms_id})",
                "dataType": "vector",
                "crs": str(tms.crs.root),
                "tileMatrixSetURI": tms.uri,
                "links": [self_link, scheme],
            }
        )
    return {
        "links": [
            {
                "rel": "self",
                "type": JSON,
                "title": f"{title}: tilesets",
                "href": _href(base, "collections", collection_id, "tiles"),
            },
            {"rel": "collection", "type": JSON, "title": title, "href": _href(base, "collections", collection_id)},
        ],
        "tilesets": tilesets,
    }


def _layer_document(layer: TileLayer, zooms: range) -> dict[str, object]:
    doc: dict[str, object] = {
        "id": layer.id,  # the MVT layer's name in every tile
        "title": COLLECTIONS[layer.id].title if layer.id in COLLECTIONS else layer.id,
        "description": layer.description,
        "dataType": "vector",
        "minTileMatrix": str(zooms.start),
        "maxTileMatrix": str(zooms.stop - 1),
        "propertiesSchema": {
            "type": "object",
            "properties": {name: {"type": _SCHEMA_TYPES[kind]} for name, kind in layer.fields.items()},
        },
    }
    geometry = COLLECTIONS[layer.id].geometry if layer.id in COLLECTIONS else "Geometry"
    if geometry in _DIMENSIONS:
        doc["geometryDimension"] = _DIMENSIONS[geometry]
    return doc


def tileset_document(
    base: str, collection_id: str, tms_id: str, extent: tuple[float, float, float, float] | None
) -> dict[str, object]:
    """A vector tileset's metadata (/req/tileset): its tile URL template, the zooms served and the layer in it."""
    layer, tms = tile_layer(collection_id), tile_matrix_set(tms_id)
    zooms = served_zooms(layer, tms)
    self_link, scheme = _tileset_links(base, collection_id, tms_id)
    title = COLLECTIONS[collection_id].title if collection_id in COLLECTIONS else collection_id
    limits = []
    for z in zooms:
        matrix = tms.matrix(z)
        limits.append(
            {
                "tileMatrix": matrix.id,
                "minTileRow": 0,
                "maxTileRow": matrix.matrixHeight - 1,
                "minTileCol": 0,
                "maxTileCol": matrix.matrixWidth - 1,
            }
        )
    doc: dict[str, object] = {
        "title": f"{title} ({tms_id})",
        "description": layer.description,
        "dataType": "vector",
        "crs": str(tms.crs.root),
        "tileMatrixSetURI": tms.uri,
        "links": [
            self_link,
            scheme,
            {"rel": REL_GEODATA, "type": JSON, "title": title, "href": _href(base, "collections", collection_id)},
            {
                "rel": "item",
                "type": MVT,
                "title": f"One tile of {title} (Mapbox Vector Tile; 204 when empty)",
                "href": _href(base, "collections", collection_id, "tiles", tms_id)
                + "/{tileMatrix}/{tileRow}/{tileCol}",
                "templated": True,
            },
        ],
        "tileMatrixSetLimits": limits,
        "layers": [_layer_document(layer, zooms)],
    }
    if extent is not None:
        west, south, east, north = extent
        doc["boundingBox"] = {"lowerLeft": [west, south], "upperRight": [east, north], "crs": CRS84}
    return doc


_WHOLE = re.compile(r"-?[0-9]+")


def tile_address(
    collection_id: str, tms_id: str, tile_matrix: str, tile_row: str, tile_col: str
) -> tuple[int, int, int]:
    """The XYZ tile (z, x, y) an OGC tile path names; the row is y (north to south) and the column x.

    No such tileset (collection or tile matrix set): NotFound. Not whole numbers: ValidationError (400). A tile
    matrix the layer is not served at, or a row or column outside it (/req/core/tc-op): NotFound (404).
    """
    layer, tms = tile_layer(collection_id), tile_matrix_set(tms_id)
    for name, text in (("tileMatrix", tile_matrix), ("tileRow", tile_row), ("tileCol", tile_col)):
        if not _WHOLE.fullmatch(text):
            raise ValidationError(f"{name} must be a whole number, not {text[:40]!r}")
    if any(len(text) > 12 for text in (tile_matrix, tile_row, tile_col)):  # far beyond any matrix: not read
        raise NotFound(f"no tile {tile_matrix[:20]}/{tile_row[:20]}/{tile_col[:20]} in {tms_id}")
    z, row, col = int(tile_matrix), int(tile_row), int(tile_col)
    zooms = served_zooms(layer, tms)
    if z not in zooms:
        raise NotFound(f"{collection_id} tiles are served at tile matrices {zooms.start}–{zooms.stop - 1}, not {z}")
    if not tms.is_valid(morecantile.Tile(x=col, y=row, z=z)):
        matrix = tms.matrix(z)
        raise NotFound(
            f"no tile row {row}, column {col} in tile matrix {z}: rows 0–{matrix.matrixHeight - 1},"
            f" columns 0–{matrix.matrixWidth - 1}"
        )
    return z, col, row


def collection_links(base: str, collection_id: str) -> list[dict[str, object]]:
    """The link from a collection document to its vector tilesets, for the collections that have tiles."""
    if collection_id not in LAYERS:
        return []
    return [
        {
            "rel": REL_TILESETS_VECTOR,
            "type": JSON,
            "title": "Vector tiles",
            "href": _href(base, "collections", collection_id, "tiles"),
        }
    ]


def landing_links(base: str) -> list[dict[str, object]]:
    return [
        {
            "rel": REL_TILING_SCHEMES,
            "type": JSON,
            "title": "Tile matrix sets",
            "href": _href(base, "tileMatrixSets"),
        }
    ]
