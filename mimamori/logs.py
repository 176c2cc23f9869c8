"""Logging set-up: plain lines for a terminal, JSON lines for production."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

# The request (API) or message (ingest) being handled, so every log line written meanwhile can name it.
request_id: ContextVar[str | None] = ContextVar("mimamori_request_id", default=None)
message_id: ContextVar[str | None] = ContextVar("mimamori_message_id", default=None)


class _ContextIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, var in (("request_id", request_id), ("message_id", message_id)):
            value = var.get()
            if value is not None and not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("message_id", "request_id"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        fields = getattr(record, "fields", None)  # structured extras: log.info(..., extra={"fields": {...}})
        if isinstance(fields, dict):
            doc.update({k: v for k, v in fields.items() if k not in doc})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(_ContextIds())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
