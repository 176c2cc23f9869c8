"""Request ids, the access log and request latency, as one ASGI middleware around the whole app.

Each request carries an id: the caller's ``X-Request-ID`` when it is a sane token (a proxy or client may set one to
follow a request across services), else a new one. The id is echoed in the answer, set on every log line written
while the request is handled, and written in one structured access-log line. Latency goes to the
``mimamori_api_request_seconds`` histogram by route *template* (``/v1/devices/{device_id}``), never by the path
itself, which would put device and tenant names into the metrics. Static files count under their mount
(``/web``, ``/web/vendor``); only a request no route or mount took is ``unmatched``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mimamori import metrics
from mimamori.logs import request_id

log = logging.getLogger("mimamori.api.access")

HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def pick_request_id(offered: str | None) -> str:
    """The caller's id when it is safe to log and echo, else a fresh one."""
    if offered and _SANE_ID.match(offered):
        return offered
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's template; a mounted app (the map's static files) by its mount path; else "unmatched"."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    # A Mount sets no route, but moves its path into root_path: the mount's own path, never the file's.
    mounted, base = scope.get("root_path", ""), scope.get("app_root_path", "")
    if "endpoint" in scope and mounted != base and mounted.startswith(base):
        return mounted[len(base) :]
    return "unmatched"


class RequestObservability:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == HEADER.encode()), None)
        rid = pick_request_id(offered)
        token = request_id.set(rid)
        started = time.perf_counter()

        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), rid.encode())]
                self._observe(scope, message["status"], time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not answered:  # the server's error handler answers 500 outside this middleware
                self._observe(scope, 500, time.perf_counter() - started)
            raise
        finally:
            request_id.reset(token)

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope)
        metrics.API_REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(seconds)
        log.info(
            "%s %s %d",
            scope["method"],
            route,
            status,
            extra={
                "request_id": request_id.get(),
                "fields": {"method": scope["method"], "route": route, "status": status, "ms": round(seconds * 1000, 2)},
            },
        )
