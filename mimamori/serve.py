"""Running uvicorn beside other loops in one process, with one clean shutdown on SIGINT / SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals are handled by serve() below, so the other loops finish their work before the process exits
        # (uvicorn's own handling re-raises the signal after shutdown, which would cut them short).
        yield


def serve(app: Any, host: str, port: int, stop: threading.Event | None = None) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; ``stop`` is set at the first signal."""
    # access_log off: the app writes its own structured access line, with the request id (api/observability.py)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False))

    def on_signal(_sig: int, _frame: object) -> None:
        if stop is not None:
            stop.set()
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    server.run()


def serve_workers(factory: str, host: str, port: int, workers: int) -> None:
    """Serve the app ``factory`` (an import string) from ``workers`` processes sharing one socket.

    uvicorn's supervisor starts, watches and restarts them, and stops them all on SIGINT / SIGTERM.
    """
    uvicorn.run(factory, factory=True, host=host, port=port, workers=workers, log_level="info", access_log=False)
