"""The body of error answers, declared once so the OpenAPI document says what clients really receive."""

from __future__ import annotations

import math
from typing import Any

import psycopg
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from api.responses import JSONResponse


class Problem(BaseModel):
    """An error: ours carry `error` (not_found, forbidden, invalid, too_large, unavailable) and a sentence in
    `detail`; request validation (`error` invalid) a list of problems in `detail`; 401/403/429 a sentence only."""

    error: str | None = Field(None, description="not_found, forbidden, invalid, too_large or unavailable")
    detail: str | list[dict[str, Any]]


# Every route may answer these (a route documenting a status itself keeps its own entry).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or an unknown or revoked one."},
    403: {"model": Problem, "description": "The key's role may not do this."},
    404: {"model": Problem, "description": "Not found, or not the caller's tenant's."},
    413: {"model": Problem, "description": "The request body is over the endpoint's size limit."},
    422: {"model": Problem, "description": "A bad parameter or body."},
}


# Values PostgreSQL cannot take, whichever parameter brought them: text with NUL bytes (refused by psycopg before
# sending, so no SQLSTATE), numbers beyond bigint, characters the database encoding lacks. They are the
# caller's mistake (422), not the server's; any other data error is a bug and stays a 500.
_BAD_VALUE_STATES = frozenset({None, "22003", "22021", "22P05"})


def is_bad_request_value(exc: psycopg.DataError) -> bool:
    return exc.sqlstate in _BAD_VALUE_STATES


async def bad_value_handler(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, psycopg.DataError) or not is_bad_request_value(exc):
        raise exc
    reason = (exc.diag.message_primary if exc.sqlstate else str(exc)) or "a value the database cannot take"
    return JSONResponse({"error": "invalid", "detail": f"a request value was refused: {reason}"}, status_code=422)


def _json_compliant(value: Any) -> bool:
    """Whether ``value`` is plain JSON without NaN or Infinity (what may be echoed back)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_compliant(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_json_compliant(v) for v in value)
    return value is None or isinstance(value, str | int | bool)


def _problem_of(error: dict[str, Any]) -> dict[str, Any]:
    # The offending input is echoed to help the caller, unless it is not JSON (NaN, Infinity: FastAPI's own
    # handler failed to render those, a 500) or large (an echo must not double a hostile body).
    out: dict[str, Any] = {k: error[k] for k in ("type", "loc", "msg") if k in error}
    for key in ("input", "ctx"):
        if key in error:
            value = jsonable_encoder(error[key])
            if _json_compliant(value) and len(repr(value)) <= 1000:
                out[key] = value
    return out


async def validation_problem_handler(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation, as a problem document that can always be rendered."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"error": "invalid", "detail": [_problem_of(e) for e in exc.errors()]}, status_code=422)


async def too_large_handler(_request: Request, exc: Exception) -> JSONResponse:
    detail = exc.detail if isinstance(exc, HTTPException) else "the request body is too large"
    return JSONResponse({"error": "too_large", "detail": detail}, status_code=413)
