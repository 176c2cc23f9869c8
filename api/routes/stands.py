"""Forest stand endpoints for forestry officers: search, stand at a point, sensors inside, per-stand summaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool

from alerts.features import alert_geometry, alerts_table_exists
from api.auth import require
from api.bodies import StrictJSONRoute
from api.deps import get_pool
from api.params import Instant
from api.responses import JSONResponse
from devices.keys import Principal, Role
from devices.queries import device_states_within, readings_summary_within
from devices.records import DeviceState
from devices.silence import SilencePolicy
from geo import FeatureQuery, StandFilter, check_point, parse_bbox, queries
from geo.species import load_species_names
from mimamori.db import reading
from mimamori.errors import NotFound, ValidationError
from mimamori.settings import Settings

router = APIRouter(prefix="/v1/stands", tags=["forest stands"], route_class=StrictJSONRoute)

# Stands are the city's forest register: its own roles read it, partners do not.
StandReader = Annotated[Principal, Depends(require(Role.forestry, Role.admin, Role.operator, Role.viewer))]
Pool = Annotated[ConnectionPool, Depends(get_pool)]
GEOJSON = "application/geo+json"
_GEOJSON_200: dict[int | str, dict[str, Any]] = {200: {"content": {GEOJSON: {}}, "description": "GeoJSON"}}


def _collection(features: list[Any], more: bool = False) -> dict[str, object]:
    return {"type": "FeatureCollection", "features": [f.as_geojson() for f in features], "more": more}


@router.get("", summary="Stands by bbox, attributes, a configured area or an alert's area", responses=_GEOJSON_200)
async def find_stands(
    request: Request,
    who: StandReader,
    pool: Pool,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    species: Annotated[
        str | None,
        Query(description="Any of 樹種1–3, by its register value (スギ), romaji (sugi) or English (Japanese cedar)"),
    ] = None,
    age_min: Annotated[int | None, Query(ge=0)] = None,
    age_max: Annotated[int | None, Query(ge=0)] = None,
    as_of_year: Annotated[int | None, Query(ge=1900, le=2200, description="Ages as of this year.")] = None,
    ownership: Annotated[str | None, Query(pattern="^(national|prefectural|municipal|property_ward|private)$")] = None,
    protection: Annotated[str | None, Query(description="A 保安林 designation, or * for any")] = None,
    forest_type: Annotated[str | None, Query()] = None,
    area: Annotated[str | None, Query(description="Stands intersecting this configured area")] = None,
    alert: Annotated[int | None, Query(description="Stands intersecting this alert's area")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    box = parse_bbox(bbox) if bbox else None
    settings: Settings = request.app.state.settings

    def query() -> dict[str, object]:
        with reading(pool) as conn:
            value = None if species is None else _register_species(conn, species, settings.stands_species_names)
            attrs = StandFilter(
                value, age_min, age_max, as_of_year or datetime.now(UTC).year, ownership, protection, forest_type
            )
            if area is not None:
                found = queries.stands_in_area(conn, area, None, limit)
                if found is None:
                    raise NotFound(f"area {area!r} not found")
                return _collection(found)
            if alert is not None:
                if not alerts_table_exists(conn):
                    raise NotFound("no alerts in this database yet")
                place = alert_geometry(conn, alert, None)
                return _collection([] if place is None else queries.stands_intersecting(conn, place, limit))
            page = queries.stand_features(conn, FeatureQuery(bbox=box, limit=limit, offset=offset), attrs)
            return _collection(page.features, page.more)

    return JSONResponse(await run_in_threadpool(query), media_type=GEOJSON)


def _register_species(conn: psycopg.Connection, name: str, table: str | None) -> str:
    """The register's value for a species name; a name neither the table nor the register knows is a 422."""
    names = load_species_names(table)
    value = names.register_value(name)
    if value is not None:
        return value
    present = queries.stand_species(conn)
    if name in present:  # a register value the table does not list (another prefecture's register)
        return name
    others = [v for v in present if names.register_value(v) is None]
    raise ValidationError(
        f"unknown species {name!r}; accepted: {names.accepted()}"
        + (f"; also in the register: {', '.join(others)}" if others else "")
    )


@router.get("/at", summary="The stand at a position", responses=_GEOJSON_200)
async def stand_at(
    who: StandReader, pool: Pool, lon: Annotated[float, Query()], lat: Annotated[float, Query()]
) -> JSONResponse:
    check_point(lon, lat)

    def query() -> dict[str, object]:
        with reading(pool) as conn:
            found = queries.stand_at(conn, lon, lat)
        if found is None:
            raise NotFound(f"no stand at {lon}, {lat}")
        return found.as_geojson()

    return JSONResponse(await run_in_threadpool(query), media_type=GEOJSON)


@router.get("/{stand_id}", summary="One stand", responses=_GEOJSON_200)
async def get_stand(stand_id: str, who: StandReader, pool: Pool) -> JSONResponse:
    def query() -> dict[str, object]:
        with reading(pool) as conn:
            found = queries.stand_feature(conn, stand_id)
        if found is None:
            raise NotFound(f"stand {stand_id!r} not found")
        return found.as_geojson()

    return JSONResponse(await run_in_threadpool(query), media_type=GEOJSON)


def _sensor(state: DeviceState) -> dict[str, Any]:
    d = state.device
    latest = {m: {"value": v, "time": t} for m, (t, v) in state.latest.items()}
    return {
        "id": d.id,
        "name": d.name,
        "device_type": d.device_type,
        "status": d.status,
        "lon": d.lon,
        "lat": d.lat,
        "latest": latest,
        "silent": state.silence.silent,
    }


def _outline(conn: psycopg.Connection, stand_id: str) -> bytes:
    found = queries.stand_geometry(conn, stand_id)
    if found is None:
        raise NotFound(f"stand {stand_id!r} not found")
    return found


@router.get("/{stand_id}/sensors", summary="Sensors inside a stand with their latest readings")
async def stand_sensors(stand_id: str, request: Request, who: StandReader, pool: Pool) -> list[dict[str, Any]]:
    policy: SilencePolicy = request.app.state.silence

    def query() -> list[dict[str, Any]]:
        with reading(pool) as conn:
            inside = device_states_within(conn, _outline(conn, stand_id), None, policy, datetime.now(UTC))
        return [_sensor(s) for s in inside]

    return await run_in_threadpool(query)


@router.get("/{stand_id}/summary", summary="Per-metric summary of the stand's sensors over a period")
async def stand_summary(
    stand_id: str,
    who: StandReader,
    pool: Pool,
    start: Annotated[Instant | None, Query(description="Default: end − 7 days")] = None,
    end: Annotated[Instant | None, Query(description="Default: now")] = None,
) -> dict[str, object]:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=7)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("start and end need a time zone")
    if start >= end:
        raise ValidationError("start must be before end")

    def query() -> list[dict[str, Any]]:
        with reading(pool) as conn:
            return readings_summary_within(conn, _outline(conn, stand_id), None, start, end)

    metrics = await run_in_threadpool(query)
    return {"stand_id": stand_id, "start": start.isoformat(), "end": end.isoformat(), "metrics": metrics}
