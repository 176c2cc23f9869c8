"""HTTP push of telemetry (`POST /v1/telemetry`), for partners without MQTT."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.auth import require
from api.bodies import StrictJSONRoute
from api.problems import Problem
from api.ratelimit import push_rate_limit
from api.responses import JSONResponse
from devices.keys import Principal, Role
from ingest.http_push import push

router = APIRouter(prefix="/v1", tags=["telemetry"], route_class=StrictJSONRoute)


class Rejected(BaseModel):
    reason: str
    detail: str | None  # the first of its kind, naming its position
    count: int = 1  # readings (or whole-message problems) refused for this reason


class PushAnswer(BaseModel):
    received: int
    stored: int
    duplicates: int
    rejected: list[Rejected]


@router.post(
    "/telemetry",
    response_model=PushAnswer,
    responses={
        422: {
            # Nothing stored (the answer says why), or FastAPI's own refusal of the request (no ?device=).
            "model": PushAnswer | Problem,
            "description": "nothing in the payload could be stored, or a bad request",
        }
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/senml+json": {"schema": {"type": "array"}},
            },
        }
    },
)
async def post_telemetry(
    request: Request,
    who: Annotated[Principal, Depends(require(Role.partner, Role.admin))],
    _rate: Annotated[Principal, Depends(push_rate_limit)],
    device: Annotated[str, Query(description="Device id the readings belong to.", max_length=128)],
) -> JSONResponse:
    """Store readings for one device: native JSON or SenML (by Content-Type), as over MQTT.

    Partners push for their own tenant's devices only; a reading is stored once per (device, metric, time),
    so a retried request is harmless. Rejected readings are listed with their reasons and dead-lettered.
    """
    state = request.app.state
    limit = state.pipeline_config.max_payload_bytes
    payload = bytearray()
    async for chunk in request.stream():
        payload.extend(chunk)
        if len(payload) > limit:
            break  # keep the head as evidence; the pipeline dead-letters it as oversized
    result = await run_in_threadpool(
        push,
        state.writer,
        state.registry,
        state.pipeline_config,
        tenant_id=None if who.role is Role.admin else who.tenant_id,
        device_id=device,
        payload=bytes(payload),
        content_type=request.headers.get("content-type"),
        give_up_after_s=state.settings.api_push_db_wait_s,
    )
    answer = PushAnswer(
        received=result.received,
        stored=result.stored,
        duplicates=result.duplicates,
        rejected=[Rejected(**r) for r in result.rejected],  # type: ignore[arg-type]
    )
    return JSONResponse(answer.model_dump(), status_code=200 if result.received else 422)
