"""OGC API – Tiles at /ogc: the tile matrix sets, each tiled collection's vector tilesets and their tiles.

A tile is the same Mapbox Vector Tile as /v1/tiles/{collection}/{z}/{x}/{y}.mvt (api.routes.tiles.render_tile: the
same stand tile cache, the same tenant confinement), addressed /{tileMatrix}/{tileRow}/{tileCol}, i.e. z/y/x.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from psycopg_pool import ConnectionPool

from api import ogc_tiles
from api.auth import Authenticated
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.problems import Problem
from api.responses import JSONResponse
from api.routes.tiles import render_tile, tile_response
from devices.keys import Role
from geo.providers import Providers
from mimamori.db import reading
from mimamori.errors import ValidationError
from mimamori.settings import Settings

router = APIRouter(prefix="/ogc", tags=["OGC API Tiles"], route_class=StrictJSONRoute)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/tileMatrixSets", summary="The tile matrix sets (tiling schemes) tiles are served in")
async def tile_matrix_sets(request: Request) -> JSONResponse:
    return JSONResponse(ogc_tiles.tile_matrix_sets_document(_base(request)))


@router.get(
    "/tileMatrixSets/{tile_matrix_set_id}",
    summary="A tile matrix set (OGC Two Dimensional Tile Matrix Set 2.0, JSON)",
    responses={404: {"model": Problem, "description": "No such tile matrix set"}},
)
async def tile_matrix_set(tile_matrix_set_id: str) -> JSONResponse:
    return JSONResponse(ogc_tiles.tile_matrix_set_document(tile_matrix_set_id))


@router.get(
    "/collections/{collection_id}/tiles",
    summary="The collection's vector tilesets",
    responses={404: {"model": Problem, "description": "No such collection, or it has no tiles"}},
)
async def tilesets(
    collection_id: str, request: Request, who: Authenticated, pool: Annotated[ConnectionPool, Depends(get_pool)]
) -> JSONResponse:
    providers: Providers = request.app.state.feature_providers

    def query() -> dict[str, object]:
        ogc_tiles.tile_layer(collection_id)  # a collection without tiles is a 404 before the database is asked
        with reading(pool) as conn:
            providers.collection_for(conn, collection_id, partner=who.role is Role.partner)
        return ogc_tiles.tilesets_document(_base(request), collection_id)

    return JSONResponse(await run_in_threadpool(query))


@router.get(
    "/collections/{collection_id}/tiles/{tile_matrix_set_id}",
    summary="A vector tileset's metadata: its tile URL template, tile matrix limits and layer",
    responses={404: {"model": Problem, "description": "No such collection, tiles or tile matrix set"}},
)
async def tileset(
    collection_id: str,
    tile_matrix_set_id: str,
    request: Request,
    who: Authenticated,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
) -> JSONResponse:
    providers: Providers = request.app.state.feature_providers

    def query() -> dict[str, object]:
        ogc_tiles.tile_layer(collection_id)
        ogc_tiles.tile_matrix_set(tile_matrix_set_id)
        with reading(pool) as conn:
            c = providers.collection_for(conn, collection_id, partner=who.role is Role.partner)
            extent = providers.extent(conn, c)
        return ogc_tiles.tileset_document(_base(request), collection_id, tile_matrix_set_id, extent)

    return JSONResponse(await run_in_threadpool(query))


@router.get(
    "/collections/{collection_id}/tiles/{tile_matrix_set_id}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="A vector tile (Mapbox Vector Tile): tile matrix = zoom, row = y (north to south), column = x",
    responses={
        200: {"content": {ogc_tiles.MVT: {}}},
        204: {"description": "An empty tile"},
        400: {
            "model": ogc_tiles.OgcException,
            "description": "tileMatrix, tileRow or tileCol is not a whole number, or f is not mvt",
        },
        404: {
            "model": Problem,
            "description": "No such collection, tiles or tile matrix set, or no such tile (a tile matrix the layer is"
            " not served at, a row or column outside the matrix)",
        },
    },
    response_class=Response,
)
async def tile(
    collection_id: str,
    tile_matrix_set_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    request: Request,
    who: Authenticated,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
    f: Annotated[str | None, Query(description="The tile's format: mvt, the only one served")] = None,
) -> Response:
    # Path parts are text, checked here: a malformed one is OGC's 400, not FastAPI's 422.
    settings: Settings = request.app.state.settings
    try:
        z, x, y = ogc_tiles.tile_address(collection_id, tile_matrix_set_id, tile_matrix, tile_row, tile_col)
        if f not in (None, "mvt"):
            raise ValidationError(f"f must be mvt (Mapbox Vector Tile), not {f[:40]!r}")
    except ValidationError as exc:
        return JSONResponse(ogc_tiles.invalid(exc), status_code=400)
    chosen, body = await run_in_threadpool(render_tile, pool, settings, collection_id, who, z, x, y)
    return tile_response(settings, chosen, body)
