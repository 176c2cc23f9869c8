"""CQL2 filters (OGC API – Features Part 3 with OGC 21-065 CQL2): parsing cql2-text and cql2-json, and translating a
filter into a PostgreSQL condition over a collection's columns. Pure: no connection.

Parsing is the ``cql2`` package's (cql2-rs: the standard's grammar and JSON Schema, in Rust). Both encodings come out
of it as one canonical cql2-json tree (plain dicts, lists, strings and numbers), which is the AST translated here.
pygeofilter 0.4 was tried first and refused the standard's own examples (``TIMESTAMP('…')`` as the last token, a
``''`` inside a string, ``DATE``, an interval open with ``'..'``).

Every literal of a filter becomes a bound parameter (``%(cql_0)s``…); only names the caller trusts (its columns) and
fixed SQL of this module are ever written into the statement.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import cql2
import shapely
import shapely.geometry
from psycopg import sql

from geo.features import Collection
from mimamori.errors import ValidationError

# The conformance classes honoured (each tested in tests/geo/test_cql2.py and tests/api/test_ogc_filter.py).
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
]

LANGUAGES = ("cql2-text", "cql2-json")
GEOMETRY = "geometry"  # the name a filter gives a collection's geometry (its queryables name it so)
# Kinds (geo.features.PROPERTY_TYPES) a filter may compare; arrays and objects are not filterable here.
FILTERABLE_KINDS = frozenset({"string", "integer", "number", "boolean", "date-time"})

# cql2-rs recurses on nesting and overflows the thread's stack somewhere past a few thousand levels (a crash of the
# whole server, not an exception): nesting is counted before parsing, and a filter's length capped.
MAX_DEPTH = 40
MAX_LENGTH = 20_000


class FilterError(ValidationError, ValueError):
    """A filter that does not parse, or names what the collection has not, or compares unlike types."""


# --- parsing --------------------------------------------------------------------------------------------------


def parse_filter(text: str, lang: str = "cql2-text") -> Any:
    """The filter as canonical cql2-json (validated against the standard's JSON Schema)."""
    if lang not in LANGUAGES:
        raise FilterError(f"filter-lang must be one of {', '.join(LANGUAGES)}")
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter is longer than {MAX_LENGTH} characters")
    if _depth(text, lang) > MAX_DEPTH:
        raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
    try:
        expr = cql2.parse_text(text) if lang == "cql2-text" else cql2.parse_json(text)
        expr.validate()
    except (cql2.ParseError, cql2.ValidationError) as exc:
        raise FilterError(f"filter is not valid {lang}: {_one_line(str(exc))}") from None
    return expr.to_json()


def _one_line(message: str) -> str:
    return " ".join(message.split())[:500]


def _depth(text: str, lang: str) -> int:
    """The deepest nesting of brackets outside string literals (cql2-text's '…' and "…", JSON's "…")."""
    deepest = depth = 0
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote is not None:
            if lang == "cql2-json" and ch == "\\" and not escaped:
                escaped = True
                continue
            if ch == quote and not escaped:
                quote = None  # cql2-text's '' closes and reopens: the same as one quote inside
            escaped = False
        elif ch in "'\"" and (lang == "cql2-text" or ch == '"'):
            quote = ch
        elif ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


# --- translation ----------------------------------------------------------------------------------------------

Columns = Mapping[str, tuple[sql.Composable, str]]


@dataclass(frozen=True)
class _Expr:
    """A translated expression and its CQL2 type: string, number, boolean, timestamp, date, geometry, null."""

    sql: sql.Composable
    kind: str


@dataclass(frozen=True)
class _Span:
    """A temporal operand as the closed interval [start, end] (an instant: start = end)."""

    start: sql.Composable
    end: sql.Composable


_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_disjoint": "ST_Disjoint",
    "s_contains": "ST_Contains",
    "s_within": "ST_Within",
    "s_touches": "ST_Touches",
    "s_crosses": "ST_Crosses",
    "s_overlaps": "ST_Overlaps",
    "s_equals": "ST_Equals",
}
# OGC 21-065 §7.x: each temporal predicate over [a.start, a.end] and [b.start, b.end]; the inverse relations are
# their counterparts with the operands exchanged.
_TEMPORAL: dict[str, tuple[tuple[str, str, str], ...]] = {
    "t_before": (("a.end", "<", "b.start"),),
    "t_meets": (("a.end", "=", "b.start"),),
    "t_overlaps": (("a.start", "<", "b.start"), ("b.start", "<", "a.end"), ("a.end", "<", "b.end")),
    "t_starts": (("a.start", "=", "b.start"), ("a.end", "<", "b.end")),
    "t_during": (("a.start", ">", "b.start"), ("a.end", "<", "b.end")),
    "t_finishes": (("a.start", ">", "b.start"), ("a.end", "=", "b.end")),
    "t_equals": (("a.start", "=", "b.start"), ("a.end", "=", "b.end")),
    "t_intersects": (("a.start", "<=", "b.end"), ("a.end", ">=", "b.start")),
}
_TEMPORAL_INVERSE = {
    "t_after": "t_before",
    "t_metBy": "t_meets",
    "t_overlappedBy": "t_overlaps",
    "t_startedBy": "t_starts",
    "t_contains": "t_during",
    "t_finishedBy": "t_finishes",
}
_ARITHMETIC = {"+", "-", "*", "/", "%", "div", "^"}
_DAY_END = timedelta(days=1) - timedelta(microseconds=1)  # a date's last instant PostgreSQL can hold


def to_sql(
    ast: Any, columns: Columns, geometry: sql.Composable, *, srid: int = 4326, prefix: str = "cql"
) -> tuple[sql.Composable, dict[str, Any]]:
    """The filter as a boolean SQL condition, and its parameters (named ``{prefix}_0``, ``{prefix}_1``…).

    ``columns`` maps each filterable property to its SQL expression and kind (geo.features.PROPERTY_TYPES);
    ``geometry`` is the collection's geometry column (in EPSG:4326), which a filter names ``geometry``; ``srid`` is
    the SRID of the filter's geometry literals (filter-crs).
    """
    t = _Translator(columns, geometry, srid, prefix)
    return t.predicate(ast, 0), t.params


class _Translator:
    def __init__(self, columns: Columns, geometry: sql.Composable, srid: int, prefix: str) -> None:
        self.columns = columns
        self.geometry = geometry
        self.srid = srid
        self.prefix = prefix
        self.params: dict[str, Any] = {}

    # -- parameters and names --

    def bind(self, value: Any, cast: str | None = None) -> sql.Composable:
        name = f"{self.prefix}_{len(self.params)}"
        self.params[name] = value
        placeholder = sql.Placeholder(name)
        return sql.SQL("{}::{}").format(placeholder, sql.SQL(cast)) if cast else placeholder

    def queryables(self) -> str:
        return ", ".join(sorted([*self.columns, GEOMETRY]))

    def property(self, name: Any) -> _Expr:
        if name == GEOMETRY:
            return _Expr(self.geometry, "geometry")
        if not isinstance(name, str) or name not in self.columns:
            raise FilterError(f"unknown property {name!r} in filter; this collection's queryables: {self.queryables()}")
        column, kind = self.columns[name]
        if kind in ("integer", "number"):
            return _Expr(column, "number")
        if kind == "date-time":
            return _Expr(column, "timestamp")
        if kind in ("string", "boolean"):
            return _Expr(column, kind)
        raise FilterError(f"property {name!r} ({kind}) cannot be filtered")

    # -- predicates --

    def predicate(self, node: Any, depth: int) -> sql.Composable:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, bool):
            return sql.SQL("TRUE" if node else "FALSE")
        if isinstance(node, dict) and "op" in node:
            op, args = node["op"], node.get("args", [])
            if not isinstance(op, str) or not isinstance(args, list):
                raise FilterError(f"an operation is a name and a list of arguments, not {_show(node)}")
            if op in ("and", "or"):
                if len(args) < 2:
                    raise FilterError(f"{op} takes at least two operands")
                parts = [self.predicate(a, depth + 1) for a in args]
                return sql.SQL("({})").format(sql.SQL(f" {op.upper()} ").join(parts))
            if op == "not":
                self.arity(op, args, 1)
                return sql.SQL("(NOT {})").format(self.predicate(args[0], depth + 1))
            if op in _COMPARISONS:
                return self.comparison(op, args, depth)
            if op == "like":
                return self.like(args, depth)
            if op == "between":
                return self.between(args, depth)
            if op == "in":
                return self.in_(args, depth)
            if op == "isNull":
                self.arity(op, args, 1)
                return sql.SQL("({} IS NULL)").format(self.expression(args[0], depth + 1).sql)
            if op in _SPATIAL:
                return self.spatial(op, args, depth)
            if op in _TEMPORAL or op in _TEMPORAL_INVERSE or op == "t_disjoint":
                return self.temporal(op, args, depth)
            if op in ("a_equals", "a_contains", "a_containedBy", "a_overlaps"):
                raise FilterError(f"{op.upper()}: array functions are not supported")
        found = self.expression(node, depth)
        if found.kind != "boolean":
            raise FilterError(f"{_show(node)} is not a condition (it is a {found.kind})")
        return found.sql

    @staticmethod
    def arity(op: str, args: list[Any], n: int) -> None:
        if len(args) != n:
            raise FilterError(f"{op} takes {n} operand{'s' if n > 1 else ''}, not {len(args)}")

    def comparison(self, op: str, args: list[Any], depth: int) -> sql.Composable:
        self.arity(op, args, 2)
        a, b = (self.expression(x, depth + 1) for x in args)
        if "null" in (a.kind, b.kind):
            raise FilterError(f"{op} with NULL matches nothing: write IS NULL")
        a, b = _comparable(op, a, b)
        return sql.SQL("({} {} {})").format(a.sql, sql.SQL(_COMPARISONS[op]), b.sql)

    def like(self, args: list[Any], depth: int) -> sql.Composable:
        self.arity("like", args, 2)
        value, pattern = (self.expression(x, depth + 1) for x in args)
        if value.kind != "string" or pattern.kind != "string":
            raise FilterError(f"LIKE compares strings, not {value.kind} with {pattern.kind}")
        literal = args[1]["args"][0] if isinstance(args[1], dict) and args[1].get("op") == "casei" else args[1]
        if isinstance(literal, str) and _ends_in_escape(literal):
            raise FilterError("a LIKE pattern must not end with its escape character \\")
        return sql.SQL("({} LIKE {} ESCAPE '\\')").format(value.sql, pattern.sql)

    def between(self, args: list[Any], depth: int) -> sql.Composable:
        self.arity("between", args, 3)
        value, low, high = (self.expression(x, depth + 1) for x in args)
        if value.kind not in ("number", "timestamp") or {low.kind, high.kind} != {value.kind}:
            raise FilterError(f"BETWEEN takes three numbers (or timestamps), not {value.kind}, {low.kind}, {high.kind}")
        return sql.SQL("({} BETWEEN {} AND {})").format(value.sql, low.sql, high.sql)

    def in_(self, args: list[Any], depth: int) -> sql.Composable:
        self.arity("in", args, 2)
        value = self.expression(args[0], depth + 1)
        if not isinstance(args[1], list) or not args[1]:
            raise FilterError("IN takes a non-empty list: a IN ('x', 'y')")
        items = [_comparable("IN", value, self.expression(x, depth + 1))[1].sql for x in args[1]]
        return sql.SQL("({} IN ({}))").format(value.sql, sql.SQL(", ").join(items))

    def spatial(self, op: str, args: list[Any], depth: int) -> sql.Composable:
        self.arity(op, args, 2)
        a, b = (self.expression(x, depth + 1) for x in args)
        if a.kind != "geometry" or b.kind != "geometry":
            raise FilterError(f"{op.upper()} relates geometries, not {a.kind} and {b.kind}")
        return sql.SQL("{}({}, {})").format(sql.SQL(_SPATIAL[op]), a.sql, b.sql)

    def temporal(self, op: str, args: list[Any], depth: int) -> sql.Composable:
        self.arity(op, args, 2)
        if op == "t_disjoint":  # the complement of t_intersects
            return sql.SQL("(NOT {})").format(self.temporal("t_intersects", args, depth))
        a, b = (self.span(x, depth + 1) for x in args)
        if op in _TEMPORAL_INVERSE:
            op, a, b = _TEMPORAL_INVERSE[op], b, a
        spans = {"a": a, "b": b}

        def side(ref: str) -> sql.Composable:
            which, end = ref.split(".")
            span = spans[which]
            return span.start if end == "start" else span.end

        conditions = [sql.SQL("{} {} {}").format(side(x), sql.SQL(rel), side(y)) for x, rel, y in _TEMPORAL[op]]
        return sql.SQL("({})").format(sql.SQL(" AND ").join(conditions))

    def span(self, node: Any, depth: int) -> _Span:
        if isinstance(node, dict) and "interval" in node:
            bounds = node["interval"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise FilterError("an INTERVAL has a start and an end")
            start, end = (self.bound(x, last, depth) for x, last in ((bounds[0], False), (bounds[1], True)))
            return _Span(start, end)
        if isinstance(node, dict) and "date" in node:  # a day: from its first instant to its last (in UTC)
            day = _day_start(_date(node["date"]))
            return _Span(self.bind(day, "timestamptz"), self.bind(day + _DAY_END, "timestamptz"))
        found = self.expression(node, depth)
        if found.kind == "timestamp":
            return _Span(found.sql, found.sql)
        raise FilterError(f"temporal functions take instants or intervals, not a {found.kind}")

    def bound(self, node: Any, last: bool, depth: int) -> sql.Composable:
        if node == "..":
            return sql.SQL("'infinity'::timestamptz" if last else "'-infinity'::timestamptz")
        if isinstance(node, dict) and "date" in node:
            node = node["date"]
        if isinstance(node, str):
            if "T" in node or " " in node or len(node) > 10:
                return self.bind(_timestamp(node), "timestamptz")
            day = _day_start(_date(node))  # a date bound: its first instant starts, its last one ends
            return self.bind(day + _DAY_END if last else day, "timestamptz")
        found = self.expression(node, depth)
        if found.kind != "timestamp":
            raise FilterError(f"an INTERVAL is bounded by instants, not a {found.kind}")
        return found.sql

    # -- expressions --

    def expression(self, node: Any, depth: int) -> _Expr:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter nests deeper than {MAX_DEPTH} levels")
        if node is None:
            return _Expr(sql.NULL, "null")
        if isinstance(node, bool):
            return _Expr(self.bind(node, "boolean"), "boolean")
        if isinstance(node, int | float):
            if not math.isfinite(node):
                raise FilterError("numbers in a filter must be finite")
            value = int(node) if float(node).is_integer() and abs(node) < 2**53 else node
            return _Expr(self.bind(value), "number")
        if isinstance(node, str):
            if "\x00" in node:
                raise FilterError("a string in a filter cannot hold a NUL character")
            return _Expr(self.bind(node, "text"), "string")
        if isinstance(node, list):
            raise FilterError("a list stands only after IN")
        if not isinstance(node, dict):
            raise FilterError(f"cannot read {_show(node)} in a filter")
        if "property" in node:
            return self.property(node["property"])
        if "timestamp" in node:
            return _Expr(self.bind(_timestamp(node["timestamp"]), "timestamptz"), "timestamp")
        if "date" in node:
            return _Expr(self.bind(_date(node["date"]), "date"), "date")
        if "interval" in node:
            raise FilterError("an INTERVAL stands only in a temporal function (T_DURING, T_INTERSECTS …)")
        if "bbox" in node:
            return _Expr(self.envelope(node["bbox"]), "geometry")
        if "type" in node:
            return _Expr(self.geometry_literal(node), "geometry")
        if "op" in node:
            return self.function(node["op"], node.get("args", []), depth)
        raise FilterError(f"cannot read {_show(node)} in a filter")

    def function(self, op: Any, args: Any, depth: int) -> _Expr:
        if not isinstance(op, str) or not isinstance(args, list):
            raise FilterError(f"an operation is a name and a list of arguments, not {_show(op)}")
        if op == "casei":
            self.arity("CASEI", args, 1)
            inner = self.expression(args[0], depth + 1)
            if inner.kind != "string":
                raise FilterError(f"CASEI takes a string, not a {inner.kind}")
            return _Expr(sql.SQL("lower({})").format(inner.sql), "string")
        if op in _ARITHMETIC:
            return self.arithmetic(op, args, depth)
        if op == "accenti":
            raise FilterError("ACCENTI (accent-insensitive comparison) is not supported")
        if op in _COMPARISONS or op in _SPATIAL or op.startswith("t_") or op == "like":
            raise FilterError(f"{op.upper()} is a condition, not a value")
        raise FilterError(f"unknown function {op!r} in filter; functions: CASEI, + - * / % DIV ^")

    def arithmetic(self, op: str, args: list[Any], depth: int) -> _Expr:
        operands = [self.expression(x, depth + 1) for x in args]
        if not operands or any(x.kind != "number" for x in operands):
            raise FilterError(f"{op} takes numbers, not {', '.join(x.kind for x in operands) or 'nothing'}")
        if op == "-" and len(operands) == 1:
            return _Expr(sql.SQL("(- {}::numeric)").format(operands[0].sql), "number")
        if len(operands) < 2 or (op in ("^", "div") and len(operands) != 2):
            raise FilterError(f"{op} takes two operands")
        # numeric, not double precision: exact, and no overflow error from a product of big literals; a zero
        # divisor gives NULL (the feature does not match) rather than an error.
        result = sql.SQL("{}::numeric").format(operands[0].sql)
        for x in operands[1:]:
            right = sql.SQL("{}::numeric").format(x.sql)
            if op in ("+", "-", "*"):
                result = sql.SQL("({} {} {})").format(result, sql.SQL(op), right)
            elif op == "/":
                result = sql.SQL("({} / NULLIF({}, 0))").format(result, right)
            elif op == "%":
                result = sql.SQL("mod({}, NULLIF({}, 0))").format(result, right)
            elif op == "div":
                result = sql.SQL("div({}, NULLIF({}, 0))").format(result, right)
            else:  # in double precision: a numeric power of a big exponent takes long to compute, this errs at once
                result = sql.SQL("power({}::float8, {}::float8)").format(result, right)
        return _Expr(result, "number")

    def geometry_literal(self, node: dict[str, Any]) -> sql.Composable:
        try:
            shape = shapely.geometry.shape(node)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
            raise FilterError(f"not a GeoJSON geometry: {_show(node)} ({exc})") from None
        if not shape.is_valid:
            raise FilterError(f"invalid geometry in filter: {shapely.is_valid_reason(shape)}")
        # shapely's own GeoJSON of it: rings closed, coordinates checked; PostGIS gets it as a bound value.
        text = json.dumps(shapely.geometry.mapping(shape))
        return self.in_column_srid(
            sql.SQL("ST_SetSRID(ST_GeomFromGeoJSON({}), {})").format(self.bind(text), self.srid_param())
        )

    def envelope(self, box: Any) -> sql.Composable:
        if not isinstance(box, list) or len(box) not in (4, 6) or not all(_finite(v) for v in box):
            raise FilterError("BBOX takes 4 (or 6, with heights) finite numbers")
        west, south, east, north = (
            (box[0], box[1], box[2], box[3]) if len(box) == 4 else (box[0], box[1], box[3], box[4])
        )
        if south > north:
            raise FilterError("BBOX's south is north of its north")
        if west > east:
            raise FilterError("BBOX's west is east of its east (boxes across the antimeridian are not supported)")
        corners = [self.bind(float(v)) for v in (west, south, east, north)]
        return self.in_column_srid(sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})").format(*corners, self.srid_param()))

    def srid_param(self) -> sql.Composable:
        name = f"{self.prefix}_srid"
        self.params[name] = self.srid
        return sql.SQL("{}::int").format(sql.Placeholder(name))

    def in_column_srid(self, shape: sql.Composable) -> sql.Composable:
        return shape if self.srid == 4326 else sql.SQL("ST_Transform({}, 4326)").format(shape)


def _comparable(op: str, a: _Expr, b: _Expr) -> tuple[_Expr, _Expr]:
    """The two operands made comparable, or an error saying why they are not."""
    if a.kind == b.kind and a.kind in ("string", "number", "boolean", "timestamp", "date"):
        return a, b
    # A timestamp against a date: its day (in UTC) is compared.
    if {a.kind, b.kind} == {"timestamp", "date"}:
        day = "(({}) AT TIME ZONE 'UTC')::date"
        a = _Expr(sql.SQL(day).format(a.sql), "date") if a.kind == "timestamp" else a
        b = _Expr(sql.SQL(day).format(b.sql), "date") if b.kind == "timestamp" else b
        return a, b
    hint = ""
    if "timestamp" in (a.kind, b.kind) and "string" in (a.kind, b.kind):
        hint = " (write a time as TIMESTAMP('2026-01-01T00:00:00Z'))"
    raise FilterError(f"{op} cannot compare a {a.kind} with a {b.kind}{hint}")


def _ends_in_escape(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 1


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _timestamp(text: Any) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace(" ", "T"))
    except ValueError:
        raise FilterError(f"TIMESTAMP {text!r} is not RFC 3339 (e.g. 2026-01-01T00:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _date(text: Any) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise FilterError(f"DATE {text!r} is not a date (e.g. 2026-01-01)") from None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _show(node: Any) -> str:
    return _one_line(json.dumps(node, ensure_ascii=False, default=str))[:120]


# --- what a collection's owner and the API use ----------------------------------------------------------------


def columns_of(
    c: Collection, alias: str, overrides: Mapping[str, sql.Composable] | None = None
) -> dict[str, tuple[sql.Composable, str]]:
    """A collection's filterable properties as the columns ``alias.<name>`` (or ``overrides[name]``) and kinds."""
    kinds = c.property_types()
    overrides = overrides or {}
    return {name: (overrides.get(name, sql.Identifier(alias, name)), kinds[name]) for name in c.filterable()}


def check(ast: Any, c: Collection) -> None:
    """Raise FilterError when the filter will not translate for the collection (an unknown property, unlike types)."""
    to_sql(ast, columns_of(c, "f"), sql.Identifier("f", GEOMETRY))


def filter_clause(
    where: list[sql.Composable], params: dict[str, Any], ast: Any, columns: Columns, geometry: sql.Composable
) -> None:
    """Add a query's filter (None: none) to a WHERE being built, its parameters to ``params``."""
    if ast is None:
        return
    clause, values = to_sql(ast, columns, geometry)
    where.append(clause)
    params.update(values)


def equality(name: str, kind: str, text: str) -> dict[str, Any]:
    """``name = text`` as cql2-json, the text read as the property's kind (an equality query parameter)."""
    value: Any = text
    if kind in ("integer", "number"):
        try:
            value = float(text)
        except ValueError:
            raise FilterError(f"{name} must be a number") from None
        if not math.isfinite(value):
            raise FilterError(f"{name} must be a finite number")
    elif kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise FilterError(f"{name} must be true or false")
        value = text.lower() == "true"
    elif kind == "date-time":
        value = {"timestamp": _timestamp(text).isoformat()}
    return {"op": "=", "args": [{"property": name}, value]}


def conjunction(parts: list[Any]) -> Any:
    """The conditions all holding, as cql2-json (None for none)."""
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"op": "and", "args": parts}
