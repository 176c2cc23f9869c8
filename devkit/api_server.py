"""The real app on a free port, served by uvicorn in a thread (streams and benchmarks need a real connection)."""

from __future__ import annotations

import threading

import uvicorn

from devkit.ports import free_port, wait_until


class ApiServer:
    def __init__(self, app: object, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))  # type: ignore[arg-type]
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self._thread.start()
        wait_until(lambda: self._server.started, what="the API server to start")
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
