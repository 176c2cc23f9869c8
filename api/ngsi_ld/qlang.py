"""The NGSI-LD query language (``q``, ETSI GS CIM 009 clause 4.9) parsed with a lark grammar, and translated into a
cql2-json tree over an entity type's attributes: the owners of the tables turn that tree into parameterised SQL
(geo/cql2.py), so no value of ``q`` is ever written into a statement. Pure.

``;`` is AND and binds tighter than ``|`` (OR); parentheses group. A term is an attribute alone (it exists), or an
attribute, an operator (``==``, ``!=``, ``>``, ``>=``, ``<``, ``<=``) and a value: a number, a "quoted string", a
date-time, ``true``/``false``, a URI, and with ``==``/``!=`` also a range (``1..5``) or a list (``1,3,5``). The
pattern operators (``~=``, ``!~=``) parse, and are refused: the store's filter language has no regular expressions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, VisitError

from api.ngsi_ld.problems import TOO_COMPLEX_QUERY, NgsiLdError, bad_request, not_supported

MAX_LENGTH = 4000
MAX_DEPTH = 20

_GRAMMAR = r"""
?start: disj
?disj: conj ("|" conj)*
?conj: atom (";" atom)*
?atom: "(" disj ")"
     | term
term: ATTR                   -> exists
    | ATTR CMP value         -> compare
    | ATTR PATTERN REGEX     -> pattern
?value: single
      | single ".." single   -> range
      | single ("," single)+ -> vlist
?single: STRING              -> string
       | DATETIME            -> datetime
       | NUMBER              -> number
       | "true"              -> true
       | "false"             -> false
       | URI                 -> uri
ATTR: /[A-Za-z0-9_]+([.][A-Za-z0-9_]+|\[[A-Za-z0-9_]+\])*/
CMP: "==" | "!=" | ">=" | "<=" | ">" | "<"
PATTERN: "~=" | "!~="
REGEX: /[^;|()]+/
STRING: /"(?:[^"\\]|\\.)*"/
DATETIME.2: /\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}([.]\d+)?)?(Z|[+-]\d{2}:\d{2})?)?/
NUMBER: /-?\d+([.]\d+)?([eE][+-]?\d+)?/
URI.0: /[A-Za-z][A-Za-z0-9+.-]*:[^\s;|(),"]+/
"""

_PARSER = Lark(_GRAMMAR, parser="lalr", lexer="contextual")


# -- the tree ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Uri:
    text: str


@dataclass(frozen=True)
class Range:
    low: Any
    high: Any


Scalar = float | int | str | bool | datetime | date | Uri
Value = Scalar | Range | tuple[Scalar, ...]


@dataclass(frozen=True)
class Term:
    attribute: str
    op: str | None  # None: the attribute exists
    value: Value | None = None


@dataclass(frozen=True)
class And:
    parts: tuple[Query, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Query, ...]


Query = Term | And | Or


class _Tree(Transformer[Token, Query]):
    def disj(self, parts: list[Query]) -> Query:
        return Or(tuple(parts))

    def conj(self, parts: list[Query]) -> Query:
        return And(tuple(parts))

    @v_args(inline=True)
    def exists(self, attr: Token) -> Term:
        return Term(str(attr), None)

    @v_args(inline=True)
    def compare(self, attr: Token, op: Token, value: Value) -> Term:
        if op not in ("==", "!=") and isinstance(value, Range | tuple):
            raise bad_request(f"{attr}{op}…: a range or a list of values goes with == or != only")
        if op not in ("==", "!=") and isinstance(value, bool | Uri):
            raise bad_request(f"{attr}{op}…: only numbers, strings and times are ordered")
        return Term(str(attr), str(op), value)

    @v_args(inline=True)
    def pattern(self, attr: Token, op: Token, regex: Token) -> Term:
        return Term(str(attr), str(op), str(regex))

    @v_args(inline=True)
    def range(self, low: Scalar, high: Scalar) -> Range:
        return Range(low, high)

    def vlist(self, values: list[Scalar]) -> tuple[Scalar, ...]:
        return tuple(values)

    @v_args(inline=True)
    def string(self, token: Token) -> str:
        text: str = json.loads(token) if "\\" in token else token[1:-1]
        return text

    @v_args(inline=True)
    def number(self, token: Token) -> float | int:
        text = str(token)
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise bad_request(f"{text} is not a finite number")
        return int(text) if text.lstrip("-").isdigit() and abs(value) < 2**63 else value

    @v_args(inline=True)
    def datetime(self, token: Token) -> datetime | date:
        text = str(token)
        try:
            if "T" not in text:
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise bad_request(f"{text} is not a date or date-time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def true(self, _: list[Any]) -> bool:
        return True

    def false(self, _: list[Any]) -> bool:
        return False

    @v_args(inline=True)
    def uri(self, token: Token) -> Uri:
        return Uri(str(token))


def _depth(text: str) -> int:
    deepest = depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    return deepest


def parse_q(text: str) -> Query:
    """``q`` as a tree; a 400 (BadRequestData) naming where it stops making sense."""
    if len(text) > MAX_LENGTH:
        raise bad_request(f"q is longer than {MAX_LENGTH} characters")
    if _depth(text) > MAX_DEPTH:
        raise NgsiLdError(403, TOO_COMPLEX_QUERY, f"q nests deeper than {MAX_DEPTH} parentheses")
    try:
        return _Tree().transform(_PARSER.parse(text))
    except VisitError as exc:
        if isinstance(exc.orig_exc, NgsiLdError):
            raise exc.orig_exc from None
        raise bad_request(f"q is malformed: {exc.orig_exc}") from None
    except LarkError as exc:
        raise bad_request(f"q is malformed: {_where(exc, text)}") from None


def _where(exc: LarkError, text: str) -> str:
    column = getattr(exc, "column", None)
    if isinstance(column, int) and column > 0:
        return f"unexpected input at character {column}: {text[column - 1 : column + 19]!r}"
    return "it ends too early" if text.strip() else "it is empty"


# -- translation ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribute:
    """An attribute ``q`` may name: the feature property it is stored as, and that property's kind (string,
    integer, number, boolean, date-time). A Relationship names the URN prefix of the entities it points to."""

    source: str
    kind: str
    relationship: str | None = None


_CQL_OPS = {"==": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def to_cql2(query: Query, attributes: Mapping[str, Attribute], entity_type: str) -> dict[str, Any]:
    """The query as cql2-json over the attributes' source properties; a 400 for an attribute the type has not, or a
    value unlike the attribute's kind."""
    if isinstance(query, And | Or):
        op = "and" if isinstance(query, And) else "or"
        return {"op": op, "args": [to_cql2(p, attributes, entity_type) for p in query.parts]}
    attr = attributes.get(query.attribute)
    if attr is None:
        if "." in query.attribute or "[" in query.attribute:
            raise bad_request(f"{query.attribute}: sub-attributes and compound values cannot be queried here")
        known = ", ".join(sorted(attributes)) or "none"
        raise bad_request(f"{entity_type} has no queryable attribute {query.attribute!r}; it has: {known}")
    prop = {"property": attr.source}
    if query.op is None:
        return {"op": "not", "args": [{"op": "isNull", "args": [prop]}]}
    if query.op in ("~=", "!~="):
        raise not_supported("the pattern operators ~= and !~= are not supported by this hub")
    negate = query.op == "!="
    value = query.value
    if isinstance(value, Range):
        low, high = _literal(value.low, attr, query.attribute), _literal(value.high, attr, query.attribute)
        node: dict[str, Any] = {"op": "between", "args": [prop, low, high]}
    elif isinstance(value, tuple):
        node = {"op": "in", "args": [prop, [_literal(v, attr, query.attribute) for v in value]]}
    else:
        return {"op": _CQL_OPS[query.op], "args": [prop, _literal(value, attr, query.attribute)]}
    return {"op": "not", "args": [node]} if negate else node


def _literal(value: Any, attr: Attribute, name: str) -> Any:
    kind = attr.kind
    if kind in ("integer", "number"):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
    elif kind == "date-time":
        if isinstance(value, datetime):
            return {"timestamp": value.astimezone(UTC).isoformat().replace("+00:00", "Z")}
        if isinstance(value, date):
            return {"timestamp": f"{value.isoformat()}T00:00:00Z"}
    elif kind == "string":
        if attr.relationship is not None and isinstance(value, Uri | str):
            text = value.text if isinstance(value, Uri) else value
            if not text.startswith(attr.relationship):
                raise bad_request(f"{name} points to {attr.relationship}… entities, not {text!r}")
            return text[len(attr.relationship) :]
        if isinstance(value, str):
            return value
        if isinstance(value, Uri):
            return value.text
    wanted = {"integer": "a number", "number": "a number", "boolean": "true or false", "date-time": "a date-time"}
    raise bad_request(f"{name} takes {wanted.get(kind, 'a quoted string')}, not {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, Uri):
        return value.text
    if isinstance(value, datetime | date):
        return value.isoformat()
    return json.dumps(value)
