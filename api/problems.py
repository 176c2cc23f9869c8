"""The body of error answers, declared once so the OpenAPI document says what clients really receive."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import Request
from pydantic import BaseModel, Field

from api.responses import JSONResponse


class Problem(BaseModel):
    """An error: ours carry `error` (not_found, forbidden, invalid, unavailable) and a sentence in `detail`;
    FastAPI's own request validation answers a list of problems in `detail`, and its 401/403/404 a sentence."""

    error: str | None = Field(None, description="not_found, forbidden, invalid or unavailable")
    detail: str | list[dict[str, Any]]


# Every route may answer these (a route documenting a status itself keeps its own entry).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No API key, or an unknown or revoked one."},
    403: {"model": Problem, "description": "The key's role may not do this."},
    404: {"model": Problem, "description": "Not found, or not the caller's tenant's."},
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
