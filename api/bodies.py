"""Request bodies: parsed as strict JSON on every route, and limited in size as they stream in.

Both sit at the mechanism, not in the routes: a route added later gets them without asking.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.responses import JSONResponse
from mimamori import strict_json


class StrictJSONRequest(Request):
    """A request whose ``json()`` refuses NaN, Infinity, numbers beyond a double and deep nesting
    (as ``json.JSONDecodeError``, which FastAPI answers as a 422 validation problem)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_json.loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """The route class of every router: its body is parsed by StrictJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


class BodyTooLarge(HTTPException):
    """Raised while a body streams in, the moment it passes the limit (FastAPI lets HTTPExceptions through its
    body parsing, so the app's 413 handler answers)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"the request body is larger than this endpoint's limit of {limit} bytes")


def too_large_response(limit: int) -> JSONResponse:
    return JSONResponse({"error": "too_large", "detail": BodyTooLarge(limit).detail}, status_code=413)


class BodyLimit:
    """Refuse bodies over a limit with 413: at once on a Content-Length above it (nothing is read, and a client
    that sent ``Expect: 100-continue`` never sends the body), else by counting the chunks as they arrive
    (chunked transfer), stopping at the first byte over.

    ``limits`` gives paths their own limit (bulk import); every other path has ``default``.
    """

    def __init__(self, app: ASGIApp, *, default: int, limits: Mapping[str, int]) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large_response(limit)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
