"""JSON as RFC 8259 has it, for documents from outside: no NaN or Infinity, no number beyond a double, bounded
nesting.

Python's ``json`` takes ``NaN``, ``Infinity`` and ``1e400`` (as inf), and a deep enough document raises
RecursionError; each of those later became a 500 somewhere (an error echo that cannot be encoded, a value
PostgreSQL refuses, an answer orjson cannot render). orjson refuses the first three and lone surrogates itself;
the depth is bounded here, under what orjson can render again. Every refusal is a ``json.JSONDecodeError``.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Deeper than any document the hub takes needs, and under orjson's rendering limit (254), so whatever is
# accepted and stored can be answered again.
MAX_DEPTH = 64


def _too_deep(value: Any) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def loads(data: bytes | str) -> Any:
    """Parse ``data``; a refusal is a ``json.JSONDecodeError`` saying why."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    value = orjson.loads(raw)  # orjson.JSONDecodeError is a json.JSONDecodeError
    # Fewer brackets than the limit cannot nest deeper than it: most documents skip the walk.
    if isinstance(value, dict | list) and raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _too_deep(value):
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", raw[:100].decode("utf-8", "replace"), 0)
    return value
