"""STA query options (``$top``, ``$skip``, ``$count``, ``$select``, ``$orderby``, ``$filter``, ``$expand``,
``$skiptoken``) parsed from a URL's query or from the inside of an ``$expand`` item. Pure.

``$expand`` items nest (``Datastreams($expand=Observations($top=3;$orderby=phenomenonTime desc))`` or the path form
``Datastreams/Observations``); nesting deeper than MAX_EXPAND_DEPTH is refused, not followed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mimamori.errors import ValidationError

DEFAULT_TOP = 100
MAX_TOP = 1000
MAX_EXPAND_DEPTH = 4
MAX_OPTION_LENGTH = 8000
KNOWN = frozenset(
    {"$top", "$skip", "$count", "$select", "$orderby", "$filter", "$expand", "$skiptoken", "$resultFormat"}
)
_NAME = re.compile(r"^[A-Za-z@][A-Za-z0-9_.@]*(/[A-Za-z][A-Za-z0-9_]*)*$")


class StaError(ValidationError, ValueError):
    """A request STA refuses with 400: its message is the answer's."""


@dataclass(frozen=True, slots=True)
class OrderKey:
    path: tuple[str, ...]
    desc: bool = False


@dataclass(frozen=True, slots=True)
class Expand:
    nav: str
    options: Options


@dataclass(frozen=True, slots=True)
class Options:
    top: int = DEFAULT_TOP
    skip: int = 0
    count: bool = False
    select: tuple[str, ...] | None = None
    orderby: tuple[OrderKey, ...] = ()
    filter: str | None = None
    expand: tuple[Expand, ...] = field(default=())
    skiptoken: str | None = None

    @property
    def orderby_text(self) -> str:
        return ",".join("/".join(k.path) + (" desc" if k.desc else "") for k in self.orderby)


def _int(name: str, text: str, high: int | None) -> int:
    text = text.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise StaError(f"{name} must be a non-negative integer, not {text[:40]!r}")
    value = int(text)
    if high is not None and value > high:
        raise StaError(f"{name} may be at most {high}")
    return value


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside parentheses and quoted strings."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise StaError(f"unbalanced parentheses in {text[:80]!r}")
        elif ch == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quoted:
        raise StaError(f"unbalanced parentheses or quotes in {text[:80]!r}")
    parts.append(text[start:])
    return parts


def _names(option: str, text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in _split(text, ","))
    for n in names:
        if not _NAME.match(n):
            raise StaError(f"{option}: {n[:80]!r} is not a property name")
    return names


def _orderby(text: str) -> tuple[OrderKey, ...]:
    keys = []
    for item in _split(text, ","):
        words = item.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise StaError(f"$orderby: {item.strip()[:80]!r} is not 'property [asc|desc]'")
        if not _NAME.match(words[0]):
            raise StaError(f"$orderby: {words[0][:80]!r} is not a property name")
        keys.append(OrderKey(tuple(words[0].split("/")), len(words) == 2 and words[1].lower() == "desc"))
    return tuple(keys)


def _expand(text: str, depth: int) -> tuple[Expand, ...]:
    items = []
    for raw in _split(text, ","):
        item = raw.strip()
        inner = ""
        if "(" in item:
            head, _, rest = item.partition("(")
            if not rest.endswith(")"):
                raise StaError(f"$expand: {item[:80]!r} has text after its options")
            item, inner = head.strip(), rest[:-1]
        path = item.split("/")
        if not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", p) for p in path):
            raise StaError(f"$expand: {item[:80]!r} is not a navigation property")
        if depth + len(path) > MAX_EXPAND_DEPTH:
            raise StaError(f"$expand nests deeper than {MAX_EXPAND_DEPTH} levels")
        # The path form a/b/c is a expanded with b expanded with c; options apply to the last.
        options = _parse(_inner_options(inner), depth + len(path))
        for nav in reversed(path[1:]):
            options = Options(expand=(Expand(nav, options),))
        items.append(Expand(path[0], options))
    return tuple(items)


def _inner_options(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if not text.strip():
        return found
    for part in _split(text, ";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or name not in KNOWN:
            raise StaError(f"$expand: {part.strip()[:80]!r} is not a query option")
        if name in found:
            raise StaError(f"$expand: {name} given twice")
        found[name] = value
    return found


def _parse(query: Mapping[str, str], depth: int) -> Options:
    for name, value in query.items():
        if name.startswith("$") and name not in KNOWN:
            raise StaError(f"unknown query option {name[:40]!r}")
        if len(value) > MAX_OPTION_LENGTH:
            raise StaError(f"{name} is longer than {MAX_OPTION_LENGTH} characters")
    count = query.get("$count", "false").strip().lower()
    if count not in ("true", "false"):
        raise StaError("$count must be true or false")
    if query.get("$resultFormat") not in (None, "default"):
        raise StaError("$resultFormat: only the default format is served")
    select = query.get("$select")
    expand = query.get("$expand")
    return Options(
        top=_int("$top", query["$top"], MAX_TOP) if "$top" in query else DEFAULT_TOP,
        skip=_int("$skip", query["$skip"], None) if "$skip" in query else 0,
        count=count == "true",
        select=_names("$select", select) if select is not None else None,
        orderby=_orderby(query["$orderby"]) if query.get("$orderby", "").strip() else (),
        filter=query["$filter"] if query.get("$filter", "").strip() else None,
        expand=_expand(expand, depth) if expand is not None and expand.strip() else (),
        skiptoken=query.get("$skiptoken"),
    )


def parse_options(query: Mapping[str, str]) -> Options:
    """The options of a request's query (its ``$``-names; others are ignored, as OData asks)."""
    return _parse(query, 0)


def options_query(options: Options) -> dict[str, str]:
    """``options`` as query parameters again (for the ``@iot.nextLink`` of an expanded collection)."""
    query: dict[str, str] = {}
    if options.top != DEFAULT_TOP:
        query["$top"] = str(options.top)
    if options.skip:
        query["$skip"] = str(options.skip)
    if options.count:
        query["$count"] = "true"
    if options.select is not None:
        query["$select"] = ",".join(options.select)
    if options.orderby:
        query["$orderby"] = options.orderby_text
    if options.filter is not None:
        query["$filter"] = options.filter
    if options.expand:
        query["$expand"] = ",".join(_expand_text(e) for e in options.expand)
    if options.skiptoken is not None:
        query["$skiptoken"] = options.skiptoken
    return query


def _expand_text(item: Expand) -> str:
    inner = ";".join(f"{k}={v}" for k, v in options_query(item.options).items())
    return f"{item.nav}({inner})" if inner else item.nav
