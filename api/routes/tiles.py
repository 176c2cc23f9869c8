"""Vector tiles: `/v1/tiles/{layer}/{z}/{x}/{y}.mvt` and their TileJSON at `/v1/tiles/{layer}.json`.

An empty tile is always 204 No Content. Tiles depend on the caller's tenant, so caches are told `private` and
to vary on the key headers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from psycopg_pool import ConnectionPool

import alerts.features
import devices.queries
from alerts.features import alerts_table_exists
from api.auth import Authenticated
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.problems import Problem
from api.responses import JSONResponse
from devices.keys import Principal, Role
from geo import queries
from geo.tiles import LAYERS, TileLayer, stand_tile_source, tile_address, tilejson
from mimamori.db import reading
from mimamori.errors import Forbidden, NotFound, ValidationError
from mimamori.settings import Settings

router = APIRouter(prefix="/v1/tiles", tags=["vector tiles"], route_class=StrictJSONRoute)

MVT = "application/vnd.mapbox-vector-tile"
# The live layers' rows, from the packages owning their tables (stands are geo's own, with their tile cache).
_OWNERS_ROWS = {"devices": devices.queries.TILE_ROWS, "alerts": alerts.features.TILE_ROWS}


def visible_layer(conn_pool: ConnectionPool, name: str, who: Principal) -> TileLayer:
    """The tile layer ``name`` if the caller may read it: NotFound (no such layer, no alerts table yet), or
    Forbidden (partners and stands)."""
    layer = LAYERS.get(name)
    if layer is None:
        raise NotFound(f"no tile layer {name!r}; layers: {', '.join(LAYERS)}")
    if who.role is Role.partner and not layer.partners:
        raise Forbidden(f"partner keys may not read {name}")
    if name == "alerts":
        with reading(conn_pool) as conn:
            if not alerts_table_exists(conn):
                raise NotFound("no alerts in this database yet")
    return layer


def _cache_headers(settings: Settings, layer: TileLayer) -> dict[str, str]:
    age = settings.tiles_live_max_age_s if layer.live else settings.tiles_stands_max_age_s
    return {"Cache-Control": f"private, max-age={age}", "Vary": "Authorization, X-API-Key"}


def _tile_index(description: str) -> Any:
    # Read as text and checked by geo.tiles.tile_address, so that a malformed address is a 400 and one naming no
    # tile a 404 (OGC API – Tiles), not FastAPI's 422; documented as the integer it is.
    return Path(description=description, json_schema_extra={"type": "integer"})


@router.get(
    "/{layer}/{z}/{x}/{y}.mvt",
    responses={
        200: {"content": {MVT: {}}},
        204: {"description": "An empty tile"},
        400: {"model": Problem, "description": "z, x or y is not a whole number"},
        404: {"model": Problem, "description": "No such layer, or no such tile (zoom 0–22, x and y in its grid)"},
    },
    response_class=Response,
)
async def get_tile(
    layer: str,
    z: Annotated[str, _tile_index("Zoom, 0–22")],
    x: Annotated[str, _tile_index("Column, 0 to 2^z − 1, west to east")],
    y: Annotated[str, _tile_index("Row, 0 to 2^z − 1, north to south")],
    request: Request,
    who: Authenticated,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
) -> Response:
    settings: Settings = request.app.state.settings
    try:
        zoom, column, row = tile_address(z, x, y)
    except ValidationError as exc:
        return JSONResponse({"error": "invalid", "detail": str(exc)}, status_code=400)

    chosen, body = await run_in_threadpool(render_tile, pool, settings, layer, who, zoom, column, row)
    return tile_response(settings, chosen, body)


def render_tile(
    pool: ConnectionPool, settings: Settings, name: str, who: Principal, zoom: int, column: int, row: int
) -> tuple[TileLayer, bytes]:
    """A layer's tile for the caller (blocking: run it in a thread): stands from the shared tile cache, live
    layers confined to the caller's tenant. The XYZ route and OGC API – Tiles (api/routes/ogc_tiles.py) both
    answer with this, so the two never differ."""
    chosen = visible_layer(pool, name, who)
    with reading(pool) as conn:
        if name == "stands":  # one picture for every role that may see stands: cacheable
            source = stand_tile_source(zoom, settings.tiles_stands_detail_zoom)
            cache = zoom <= settings.tiles_cache_max_zoom
            return chosen, queries.stand_tile(
                conn, zoom, column, row, source=source, max_features=settings.tiles_max_features, cache=cache
            )
        tenant = None if who.sees_all_tenants else who.tenant_id
        rows = _OWNERS_ROWS[name]
        return chosen, queries.tile(conn, name, rows, zoom, column, row, tenant, settings.tiles_max_features)


def tile_response(settings: Settings, layer: TileLayer, body: bytes) -> Response:
    """The tile's answer: its bytes, or 204 when empty, with caching for the layer (private: tenant-dependent)."""
    headers = _cache_headers(settings, layer)
    if not body:
        return Response(status_code=204, headers=headers)
    return Response(body, media_type=MVT, headers=headers)


@router.get("/{layer}.json", summary="TileJSON 3.0 of a layer")
async def get_tilejson(
    layer: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> JSONResponse:
    def query() -> dict[str, object]:
        chosen = visible_layer(pool, layer, who)
        with reading(pool) as conn:
            column = {"stands": "geom", "devices": "location", "alerts": "location"}[layer]
            bounds = queries.layer_extent(conn, layer, column)
        return tilejson(str(request.base_url).rstrip("/"), chosen, bounds)

    return JSONResponse(await run_in_threadpool(query))
