"""JSON answers serialised by orjson: several times faster than the standard encoder on large feature collections."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSONResponse, rendered by orjson (non-string keys become strings, as ``json`` does)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
