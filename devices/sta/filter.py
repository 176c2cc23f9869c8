"""``$filter`` (OData 4 as SensorThings 1.1 profiles it) compiled into a parameterised PostgreSQL condition. Pure.

Parsing is odata-query's (its sly LALR grammar of OData 4.01 expressions: operators, literals including
``geography'…'`` and durations, function calls), which yields a typed AST; this module walks that AST. Every
literal becomes a bound parameter; only names resolved by the caller's entity model and fixed SQL of this module
are written into the statement. Operands are type-checked here, so a comparison of unlike things is a 400 with a
sentence, not a database error. STA's own functions beyond OData's (``substringof``, ``st_within`` and the other
``st_*``) are admitted by replacing the parser's function check with this module's table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import shapely
from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser
from psycopg import sql
from sly.lex import LexError

from devices.sta.ids import IdError, ObservationId
from devices.sta.options import StaError

MAX_LENGTH = 4000
MAX_DEPTH = 40  # parentheses nesting, counted before parsing; the tree walk below recurses

NUMBER, TEXT, TIME, BOOL, DATE, TIMEOFDAY, INTERVAL, GEOMETRY, JSON, NULL, OBSID, PERIOD = (
    "number",
    "text",
    "time",
    "boolean",
    "date",
    "time of day",
    "duration",
    "geometry",
    "json",
    "null",
    "observation id",
    "time interval",  # a Datastream's phenomenonTime: shown, and compared only for equality with another
)


@dataclass(frozen=True, slots=True)
class Term:
    sql: sql.Composable
    kind: str


Resolver = Callable[[tuple[str, ...]], Term]
"""Turns a property path (``("result",)``, ``("Datastream", "Thing", "name")``) into SQL; StaError if unknown."""

# name → (argument count, …); checked here, not by the parser.
_STRING_FUNCS = {"substringof": 2, "contains": 2, "startswith": 2, "endswith": 2, "length": 1, "indexof": 2,
                 "substring": (2, 3), "tolower": 1, "toupper": 1, "trim": 1, "concat": 2}  # fmt: skip
_TIME_PARTS = {"year": "year", "month": "month", "day": "day", "hour": "hour", "minute": "minute"}
_MATH = {"round": "round", "floor": "floor", "ceiling": "ceiling"}
_SPATIAL = {
    "geo.intersects": "ST_Intersects",
    "st_intersects": "ST_Intersects",
    "st_within": "ST_Within",
    "st_equals": "ST_Equals",
    "st_disjoint": "ST_Disjoint",
    "st_touches": "ST_Touches",
    "st_overlaps": "ST_Overlaps",
    "st_crosses": "ST_Crosses",
    "st_contains": "ST_Contains",
}
_COMPARE = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ORDERED = frozenset({NUMBER, TEXT, TIME, DATE, TIMEOFDAY, INTERVAL, BOOL})
_CASTS = {NUMBER: "double precision", TEXT: "text", TIME: "timestamptz", BOOL: "boolean", DATE: "date",
          TIMEOFDAY: "time", INTERVAL: "interval"}  # fmt: skip


def _parser() -> ODataParser:
    parser = ODataParser()
    # The parser refuses functions outside OData's list; STA adds its own, and arity is checked in _call.
    parser._function_call = lambda func, args: ast.Call(func, args)  # type: ignore[method-assign]
    return parser


def parse(text: str) -> ast._Node:
    """The AST of a ``$filter``; StaError with the place it went wrong."""
    if len(text) > MAX_LENGTH:
        raise StaError(f"$filter is longer than {MAX_LENGTH} characters")
    depth = deepest = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise StaError(f"$filter nests deeper than {MAX_DEPTH} parentheses")
    try:
        tree = _parser().parse(ODataLexer().tokenize(text))
    except (ODataException, LexError) as exc:
        raise StaError(f"$filter does not parse: {exc}") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a literal the parser's own conversions refused
        raise StaError(f"$filter has a bad literal: {exc}") from None
    if tree is None:
        raise StaError("$filter is empty")
    return tree  # type: ignore[no-any-return]


class _Compiler:
    def __init__(self, resolve: Resolver, now: datetime, params: dict[str, Any], anys: list[sql.Composable]) -> None:
        self.resolve = resolve
        self.now = now
        self.params = params
        # ``EXISTS (… AND `` openings the resolver registers for paths through a collection
        # (``Datastreams/Observations/result gt 3``: any of them): each wraps the condition its path is part of.
        self.anys = anys

    def _wrap(self, term: Term, mark: int) -> Term:
        if term.kind != BOOL or len(self.anys) == mark:
            return term
        cond = term.sql
        for opening in reversed(self.anys[mark:]):
            cond = opening + cond + sql.SQL(")")
        del self.anys[mark:]
        return Term(cond, BOOL)

    def bind(self, value: Any, kind: str) -> Term:
        name = f"f{len(self.params)}"
        self.params[name] = value
        placeholder = sql.Placeholder(name)
        if kind == GEOMETRY:
            return Term(sql.SQL("ST_GeomFromText({}, 4326)").format(placeholder), GEOMETRY)
        return Term(sql.SQL("{}::" + _CASTS[kind]).format(placeholder), kind)

    def boolean(self, node: ast._Node) -> sql.Composable:
        term = self.term(node)
        if term.kind != BOOL:
            raise StaError(f"$filter: expected a condition, found a {term.kind}")
        return term.sql

    def term(self, node: ast._Node) -> Term:
        if isinstance(node, ast.BoolOp):
            joiner = " AND " if isinstance(node.op, ast.And) else " OR "
            left, right = self.boolean(node.left), self.boolean(node.right)
            return Term(sql.SQL("({}" + joiner + "{})").format(left, right), BOOL)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return Term(sql.SQL("(NOT {})").format(self.boolean(node.operand)), BOOL)
            inner = self.term(node.operand)
            if inner.kind not in (NUMBER, INTERVAL):
                raise StaError(f"$filter: cannot negate a {inner.kind}")
            return Term(sql.SQL("(-{})").format(inner.sql), inner.kind)
        if isinstance(node, ast.Compare):
            mark = len(self.anys)
            return self._wrap(self.compare(node), mark)
        if isinstance(node, ast.BinOp):
            return self.arithmetic(node)
        if isinstance(node, ast.Call):
            mark = len(self.anys)
            return self._wrap(self.call(node), mark)
        if isinstance(node, ast.Identifier | ast.Attribute):
            return self.resolve(_path(node))
        return self.literal(node)

    def literal(self, node: ast._Node) -> Term:
        try:
            if isinstance(node, ast.Null):
                return Term(sql.SQL("NULL"), NULL)
            if isinstance(node, ast.Boolean):
                return self.bind(node.py_val, BOOL)
            if isinstance(node, ast.Integer | ast.Float):
                value = float(node.val)
                if not math.isfinite(value):
                    raise StaError(f"$filter: number {node.val[:40]} is out of range")
                return self.bind(int(node.val) if isinstance(node, ast.Integer) else value, NUMBER)
            if isinstance(node, ast.String):
                return self.bind(node.py_val, TEXT)
            if isinstance(node, ast.DateTime):
                when = node.py_val
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                return self.bind(when, TIME)
            if isinstance(node, ast.Date):
                return self.bind(node.py_val, DATE)
            if isinstance(node, ast.Time):
                return self.bind(node.py_val, TIMEOFDAY)
            if isinstance(node, ast.Duration):
                return self.bind(node.py_val, INTERVAL)
            if isinstance(node, ast.Geography):
                return self.bind(_wkt(node.val), GEOMETRY)
        except (ValueError, OverflowError) as exc:
            raise StaError(f"$filter: bad literal: {exc}") from None
        raise StaError(f"$filter: {type(node).__name__} is not supported here")

    def compare(self, node: ast.Compare) -> Term:
        left = self.term(node.left)
        if isinstance(node.comparator, ast.In):
            if not isinstance(node.right, ast.List) or not node.right.val:
                raise StaError("$filter: 'in' takes a list of values")
            parts = [self._compare_terms(left, "=", self.term(v)) for v in node.right.val]
            return Term(sql.SQL("({})").format(sql.SQL(" OR ").join(parts)), BOOL)
        return Term(self._compare_terms(left, _COMPARE[type(node.comparator)], self.term(node.right)), BOOL)

    def _compare_terms(self, left: Term, op: str, right: Term) -> sql.Composable:
        if right.kind == OBSID and left.kind != OBSID:
            left, right = right, left
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        if NULL in (left.kind, right.kind):
            if op not in ("=", "<>"):
                raise StaError("$filter: null compares with eq or ne only")
            other = right if left.kind == NULL else left
            return sql.SQL("({} IS NULL)" if op == "=" else "({} IS NOT NULL)").format(other.sql)
        if left.kind == OBSID:
            return self._observation_id(left, op, right)
        if JSON in (left.kind, right.kind):
            # A path into a JSON object (properties/…) against anything: compared as JSON values.
            jl = left.sql if left.kind == JSON else sql.SQL("to_jsonb({})").format(left.sql)
            jr = right.sql if right.kind == JSON else sql.SQL("to_jsonb({})").format(right.sql)
            return sql.SQL("({} " + op + " {})").format(jl, jr)
        if left.kind != right.kind:
            raise StaError(f"$filter: cannot compare a {left.kind} with a {right.kind}")
        if left.kind not in _ORDERED and op not in ("=", "<>"):
            raise StaError(f"$filter: a {left.kind} cannot be ordered")
        if left.kind == GEOMETRY:
            fn = "ST_Equals" if op == "=" else "NOT ST_Equals"
            return sql.SQL("(" + fn + "({}, {}))").format(left.sql, right.sql)
        return sql.SQL("({} " + op + " {})").format(left.sql, right.sql)

    def _observation_id(self, left: Term, op: str, right: Term) -> sql.Composable:
        if op not in ("=", "<>") or right.kind != TEXT:
            raise StaError("$filter: an Observation id compares with eq or ne and a quoted id")
        value = self.params.pop(_last_param(self.params))
        try:
            oid = ObservationId.parse(value)
        except IdError as exc:
            raise StaError(f"$filter: {exc}") from None
        series, when = self.bind(oid.series_id, NUMBER), self.bind(oid.time, TIME)
        cond = sql.SQL("({}.{} = {} AND {}.{} = {})").format(
            left.sql, sql.Identifier("_series"), series.sql, left.sql, sql.Identifier("phenomenonTime"), when.sql
        )
        return cond if op == "=" else sql.SQL("(NOT {})").format(cond)

    def arithmetic(self, node: ast.BinOp) -> Term:
        left, right = self.term(node.left), self.term(node.right)
        op = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}[type(node.op)]
        kinds = (left.kind, right.kind)
        if kinds == (NUMBER, NUMBER):
            if op == "/":  # dividing by zero is null (nothing matches), not an error
                return Term(sql.SQL("({}::double precision / NULLIF({}, 0))").format(left.sql, right.sql), NUMBER)
            if op == "%":
                return Term(
                    sql.SQL("(mod({}::numeric, NULLIF({}, 0)::numeric)::double precision)").format(left.sql, right.sql),
                    NUMBER,
                )
            return Term(sql.SQL("({} " + op + " {})").format(left.sql, right.sql), NUMBER)
        shifts = op in "+-" and kinds in ((TIME, INTERVAL), (INTERVAL, INTERVAL))
        if shifts or (op == "+" and kinds == (INTERVAL, TIME)):
            kind = INTERVAL if kinds == (INTERVAL, INTERVAL) else TIME
            return Term(sql.SQL("({} " + op + " {})").format(left.sql, right.sql), kind)
        if op == "-" and kinds == (TIME, TIME):
            return Term(sql.SQL("({} - {})").format(left.sql, right.sql), INTERVAL)
        raise StaError(f"$filter: cannot {type(node.op).__name__.lower()} a {left.kind} and a {right.kind}")

    def call(self, node: ast.Call) -> Term:
        name = node.func.full_name()
        args = node.args

        def arity(expected: int | tuple[int, int]) -> None:
            low, high = (expected, expected) if isinstance(expected, int) else expected
            if not low <= len(args) <= high:
                raise StaError(f"$filter: {name} takes {low if low == high else f'{low} to {high}'} arguments")

        def typed(*kinds: str) -> list[Term]:
            terms = [self.term(a) for a in args]
            for term, kind in zip(terms, kinds, strict=False):
                if term.kind != kind:
                    raise StaError(f"$filter: {name} expects a {kind}, found a {term.kind}")
            return terms

        if name in _STRING_FUNCS:
            arity(_STRING_FUNCS[name])
            return self._string(name, typed(TEXT, TEXT, NUMBER) if name == "substring" else typed(TEXT, TEXT))
        if name in _TIME_PARTS or name in ("second", "fractionalseconds", "date", "time", "totaloffsetminutes"):
            arity(1)
            (t,) = typed(TIME)
            utc = sql.SQL("({} AT TIME ZONE 'UTC')").format(t.sql)
            if name in _TIME_PARTS:
                return Term(sql.SQL("EXTRACT(" + _TIME_PARTS[name] + " FROM {})::double precision").format(utc), NUMBER)
            if name == "second":
                return Term(sql.SQL("floor(EXTRACT(second FROM {}))::double precision").format(utc), NUMBER)
            if name == "fractionalseconds":
                return Term(sql.SQL("(EXTRACT(second FROM {}) % 1)::double precision").format(utc), NUMBER)
            if name == "date":
                return Term(sql.SQL("({})::date").format(utc), DATE)
            if name == "time":
                return Term(sql.SQL("({})::time").format(utc), TIMEOFDAY)
            return Term(sql.SQL("0::double precision"), NUMBER)  # times are kept and answered in UTC
        if name in ("now", "mindatetime", "maxdatetime"):
            arity(0)
            value = {"now": self.now, "mindatetime": datetime(1, 1, 1, tzinfo=UTC)}.get(
                name, datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
            )
            return self.bind(value, TIME)
        if name in _MATH:
            arity(1)
            (n,) = typed(NUMBER)
            return Term(sql.SQL(_MATH[name] + "({})::double precision").format(n.sql), NUMBER)
        if name in _SPATIAL:
            arity(2)
            a, b = typed(GEOMETRY, GEOMETRY)
            return Term(sql.SQL(_SPATIAL[name] + "({}, {})").format(a.sql, b.sql), BOOL)
        if name == "st_relate":
            arity(3)
            a, b, pattern = typed(GEOMETRY, GEOMETRY, TEXT)
            return Term(sql.SQL("ST_Relate({}, {}, {})").format(a.sql, b.sql, self._pattern(pattern)), BOOL)
        if name == "geo.distance":
            arity(2)
            a, b = typed(GEOMETRY, GEOMETRY)
            return Term(sql.SQL("ST_Distance({}, {})").format(a.sql, b.sql), NUMBER)
        if name == "geo.length":
            arity(1)
            (a,) = typed(GEOMETRY)
            return Term(sql.SQL("ST_Length({})").format(a.sql), NUMBER)
        raise StaError(f"$filter: unknown function {name[:60]!r}")

    def _pattern(self, pattern: Term) -> sql.Composable:
        # ST_Relate raises on a malformed DE-9IM pattern: checked here, so it is a 400.
        value = self.params.get(_last_param(self.params))
        if not isinstance(value, str) or len(value) != 9 or set(value) - set("TF*012"):
            raise StaError("$filter: st_relate's pattern is nine characters of T, F, *, 0, 1, 2")
        return pattern.sql

    def _string(self, name: str, t: list[Term]) -> Term:
        if name == "substringof":
            return Term(sql.SQL("(strpos({}, {}) > 0)").format(t[1].sql, t[0].sql), BOOL)
        if name == "contains":
            return Term(sql.SQL("(strpos({}, {}) > 0)").format(t[0].sql, t[1].sql), BOOL)
        if name == "startswith":
            return Term(sql.SQL("starts_with({}, {})").format(t[0].sql, t[1].sql), BOOL)
        if name == "endswith":
            return Term(sql.SQL("(right({0}, length({1})) = {1})").format(t[0].sql, t[1].sql), BOOL)
        if name == "length":
            return Term(sql.SQL("length({})::double precision").format(t[0].sql), NUMBER)
        if name == "indexof":
            return Term(sql.SQL("(strpos({}, {}) - 1)::double precision").format(t[0].sql, t[1].sql), NUMBER)
        if name == "substring":
            start = sql.SQL("greatest({}::bigint, 0) + 1").format(t[1].sql)
            if len(t) == 2:
                return Term(sql.SQL("substr({}, {})").format(t[0].sql, start), TEXT)
            length = sql.SQL("greatest({}::bigint, 0)").format(t[2].sql)
            return Term(sql.SQL("substr({}, {}, {})").format(t[0].sql, start, length), TEXT)
        if name == "concat":
            return Term(sql.SQL("({} || {})").format(t[0].sql, t[1].sql), TEXT)
        fn = {"tolower": "lower", "toupper": "upper", "trim": "btrim"}[name]
        return Term(sql.SQL(fn + "({})").format(t[0].sql), TEXT)


def _last_param(params: dict[str, Any]) -> str:
    return next(reversed(params))


def _path(node: ast._Node) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.owner
    if not isinstance(node, ast.Identifier):
        raise StaError("$filter: a property path must start with a name")
    if node.namespace:
        raise StaError(f"$filter: {node.full_name()[:80]!r} is not a property")
    parts.append(node.name)
    return tuple(reversed(parts))


def _wkt(text: str) -> str:
    """Well-known text of a valid geometry, or StaError: PostGIS raises on invalid polygons in some predicates."""
    try:
        geometry = shapely.from_wkt(text)
    except shapely.errors.GEOSException as exc:
        raise StaError(f"$filter: geography {text[:80]!r} is not well-known text: {exc}") from None
    if geometry is None or geometry.is_empty:
        raise StaError("$filter: geography is empty")
    if not geometry.is_valid:
        reason = shapely.is_valid_reason(geometry)
        raise StaError(f"$filter: geography {text[:80]!r} is not a valid geometry ({reason})")
    return str(geometry.wkt)


def compile_filter(
    text: str,
    resolve: Resolver,
    now: datetime,
    params: dict[str, Any],
    anys: list[sql.Composable] | None = None,
) -> sql.Composable:
    """The condition ``text`` asks for; its values are added to ``params`` (named ``f0``, ``f1`` …). ``anys`` is
    the list the resolver adds its openings for paths through collections to."""
    tree = parse(text)
    compiler = _Compiler(resolve, now, params, [] if anys is None else anys)
    try:
        return compiler._wrap(Term(compiler.boolean(tree), BOOL), 0).sql
    except RecursionError:
        raise StaError("$filter is too deeply nested") from None


__all__ = ["BOOL", "GEOMETRY", "JSON", "NUMBER", "OBSID", "PERIOD", "TEXT", "TIME", "Term", "compile_filter", "parse"]
