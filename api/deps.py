"""Dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request
from psycopg_pool import ConnectionPool


async def get_pool(request: Request) -> ConnectionPool:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request
    # for what is one attribute read.
    return request.app.state.pool  # type: ignore[no-any-return]
