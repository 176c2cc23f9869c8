"""The SQL of the STA face: a page of an entity set (filtered, sorted, keyset-paged), one entity, the expanded
children of a page, and the series a posted Observation belongs to. Parameterised always: names come from the
entity model (devices/sta/model.py), values are bound.

Paging: ``@iot.nextLink`` carries a keyset cursor (``$skiptoken``, the last entity's sort values), so a deep page
of a month of Observations costs as much as the first; ``$skip`` is honoured as an offset on the page it is asked
for.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from devices.sta.filter import GEOMETRY, JSON, OBSID, TEXT, Term, compile_filter
from devices.sta.ids import IdError, ObservationId, decode_cursor, encode_cursor
from devices.sta.model import ENTITY_SETS, TENANT, EntitySet, Nav
from devices.sta.options import Options, StaError
from devices.sta.paths import ResourcePath

MAX_FILTER_HOPS = 4
# Entities an ``$expand`` may add to one answer: big pages inside big pages are refused, not assembled for minutes.
MAX_EXPANDED = 20_000
_budget: ContextVar[list[int]] = ContextVar("sta_expansions")


@dataclass
class Page:
    rows: list[dict[str, Any]]
    count: int | None = None
    next_query: dict[str, str] | None = None  # query changes for the next page: $skiptoken or $skip
    expanded: list[dict[str, Any]] = field(default_factory=list)  # per row: nav name → Page | row | None


def _confined(tenant: str | None, parent: tuple[Nav, Any] | None) -> str | None:
    """The tenant a query confines itself to: none needed under a parent whose rows are its device's own."""
    return None if parent is not None and parent[0].same_tenant else tenant


def _base(es: EntitySet) -> sql.Composable:
    return sql.SQL("(" + es.base.replace("{tenant}", TENANT) + ")")


def _column(alias: sql.Identifier, name: str) -> sql.Composable:
    return sql.SQL("{}.{}").format(alias, sql.Identifier(name))


class _Resolver:
    """Property paths of ``$filter`` for one entity set, following to-one navigation by scalar subqueries."""

    def __init__(self, es: EntitySet, alias: sql.Identifier, params: dict[str, Any]) -> None:
        self.es, self.alias, self.params = es, alias, params
        self.anys: list[sql.Composable] = []  # shared with the compiler (devices/sta/filter.py)
        self.aliases = 0

    def __call__(self, path: tuple[str, ...]) -> Term:
        return self._resolve(self.es, self.alias, path, 0)

    def _resolve(self, es: EntitySet, alias: sql.Identifier, path: tuple[str, ...], hop: int) -> Term:
        head, rest = path[0], path[1:]
        if head in es.properties:
            kind = es.properties[head]
            if kind == OBSID:
                if rest:
                    raise StaError(f"$filter: {es.singular} id has no {rest[0]!r}")
                return Term(alias, OBSID)
            column = _column(alias, head)
            if not rest:
                return Term(column, kind)
            if kind != JSON:
                raise StaError(f"$filter: {es.singular}/{head} has no {rest[0]!r}")
            name = f"f{len(self.params)}"
            self.params[name] = list(rest)
            return Term(sql.SQL("({} #> {}::text[])").format(column, sql.Placeholder(name)), JSON)
        nav = es.navs.get(head)
        if nav is None:
            raise StaError(f"$filter: {es.singular} has no property {head[:60]!r}")
        if not rest:
            raise StaError(f"$filter: {es.singular}/{head} is an entity, not a value")
        if hop >= MAX_FILTER_HOPS:
            raise StaError("$filter: too many navigation steps in one path")
        target = ENTITY_SETS[nav.target]
        self.aliases += 1
        inner = sql.Identifier(f"n{self.aliases}")
        if not nav.to_one:
            if nav.through is not None:
                raise StaError(f"$filter: {es.singular}/{head} cannot be followed in a filter")
            # Any of the collection: the condition this path is part of is wrapped in EXISTS by the compiler.
            self.anys.append(
                sql.SQL("EXISTS (SELECT 1 FROM {} {} WHERE {} = {} AND ").format(
                    _base(target), inner, _column(inner, nav.remote), _column(alias, nav.local)
                )
            )
            term = self._resolve(target, inner, rest, hop + 1)
            if term.kind == OBSID:
                raise StaError("$filter: compare an Observation's id on Observations")
            return term
        if rest == ("id",) and nav.remote == "id":  # the link itself: no subquery
            return Term(_column(alias, nav.local), target.properties["id"])
        term = self._resolve(target, inner, rest, hop + 1)
        if term.kind == OBSID:
            raise StaError("$filter: compare an Observation's id on Observations")
        subquery = sql.SQL("(SELECT {} FROM {} {} WHERE {} = {} LIMIT 1)").format(
            term.sql, _base(target), inner, _column(inner, nav.remote), _column(alias, nav.local)
        )
        return Term(subquery, term.kind)


def _order(es: EntitySet, options: Options) -> list[tuple[str, bool]]:
    """Sort columns and directions: the requested keys, then the id (so the order is total)."""
    keys: list[tuple[str, bool]] = []
    for key in options.orderby:
        if len(key.path) != 1 or key.path[0] not in es.properties:
            raise StaError(f"$orderby: {es.singular} has no property {'/'.join(key.path)[:60]!r} to sort by")
        name, kind = key.path[0], es.properties[key.path[0]]
        if kind in (JSON, GEOMETRY):
            raise StaError(f"$orderby: {es.singular}/{name} cannot be sorted")
        columns = es.id_columns if kind == OBSID else (name,)
        keys += [(c, key.desc) for c in columns if c not in {k for k, _ in keys}]
    keys += [(c, False) for c in es.id_columns if c not in {k for k, _ in keys}]
    return keys


def _keyset(
    alias: sql.Identifier, keys: list[tuple[str, bool]], values: list[Any], es: EntitySet, params: dict[str, Any]
) -> sql.Composable:
    holders = []
    for value in values:
        name = f"k{len(params)}"
        params[name] = value
        holders.append(sql.Placeholder(name))
    directions = {desc for _, desc in keys}
    if len(directions) == 1 and not any(k in es.nullable for k, _ in keys):
        # One direction, no nulls: a row comparison, which the primary key's index answers as a range.
        op = sql.SQL("<" if directions == {True} else ">")
        left = sql.SQL(", ").join(_column(alias, k) for k, _ in keys)
        return sql.SQL("(({}) {} ({}))").format(left, op, sql.SQL(", ").join(holders))
    # Ascending puts nulls last, descending first (PostgreSQL's defaults): what comes after a null, or after a
    # value, is spelled out for each key in turn.
    ors = []
    for i, (key, desc) in enumerate(keys):
        equal = [
            sql.SQL("{} IS NULL").format(_column(alias, k))
            if values[j] is None
            else sql.SQL("{} = {}").format(_column(alias, k), holders[j])
            for j, (k, _) in enumerate(keys[:i])
        ]
        column = _column(alias, key)
        if values[i] is None:
            if not desc:
                continue  # nothing sorts after a null when ascending, but through the keys after it
            after = sql.SQL("{} IS NOT NULL").format(column)
        else:
            after = sql.SQL("{} {} {}").format(column, sql.SQL("<" if desc else ">"), holders[i])
            if not desc and key in es.nullable:
                after = sql.SQL("({} OR {} IS NULL)").format(after, column)
        ors.append(sql.SQL("(") + sql.SQL(" AND ").join([*equal, after]) + sql.SQL(")"))
    if not ors:
        return sql.SQL("false")
    return sql.SQL("(") + sql.SQL(" OR ").join(ors) + sql.SQL(")")


def _conditions(
    es: EntitySet,
    alias: sql.Identifier,
    options: Options,
    params: dict[str, Any],
    *,
    parent: tuple[Nav, Any] | None,
    key: Any,
    now: datetime,
) -> list[sql.Composable]:
    where: list[sql.Composable] = []
    if parent is not None:
        nav, value = parent
        params["parent"] = value
        if nav.through is not None:
            where.append(sql.SQL("{} IN (" + nav.through + ")").format(_column(alias, nav.remote)))
        else:
            where.append(sql.SQL("{} = %(parent)s").format(_column(alias, nav.remote)))
    if key is not None:
        where.append(_key_condition(es, alias, key, params))
    if options.filter is not None:
        resolver = _Resolver(es, alias, params)
        where.append(compile_filter(options.filter, resolver, now, params, resolver.anys))
    return where


def _key_condition(es: EntitySet, alias: sql.Identifier, key: Any, params: dict[str, Any]) -> sql.Composable:
    kind = es.properties["id"]
    if kind == OBSID:
        if not isinstance(key, str):
            raise NotFoundKey
        try:
            oid = ObservationId.parse(key)
        except IdError:
            raise NotFoundKey from None
        params["key_series"], params["key_time"] = oid.series_id, oid.time
        return sql.SQL("({} = %(key_series)s AND {} = %(key_time)s)").format(
            _column(alias, "_series"), _column(alias, "phenomenonTime")
        )
    if (kind == TEXT) != isinstance(key, str):
        raise NotFoundKey
    if isinstance(key, int) and not -(2**31) <= key < 2**31:
        raise NotFoundKey
    params["key"] = key
    return sql.SQL("{} = %(key)s").format(_column(alias, "id"))


class NotFoundKey(LookupError):
    """A key of the wrong shape for its entity set: no such entity."""


@dataclass
class PageQuery:
    query: sql.Composable
    params: dict[str, Any]
    keys: list[tuple[str, bool]]  # the sort columns whose values the next page's cursor carries
    count: sql.Composable | None


def page_query(
    es: EntitySet, options: Options, *, tenant: str | None, now: datetime, parent: tuple[Nav, Any] | None = None
) -> PageQuery:
    """The statement of one page of ``es`` (and of its count when asked)."""
    alias = sql.Identifier("e")
    params: dict[str, Any] = {"tenant": _confined(tenant, parent)}
    where = _conditions(es, alias, options, params, parent=parent, key=None, now=now)
    keys = _order(es, options)
    if parent is not None and parent[0].through is None:
        # The parent fixes this column (a Datastream's Observations share its series): sorting or seeking on it
        # is void, and leaving it out lets the primary key's index answer the page as one range.
        keys = [k for k in keys if k[0] != parent[0].remote]
    count = None
    if options.count:
        cond = sql.SQL(" AND ").join(where) if where else sql.SQL("true")
        count = sql.SQL("SELECT count(*) FROM {} {} WHERE {}").format(_base(es), alias, cond)
    page_where = list(where)
    if options.skiptoken is not None:
        try:
            values = decode_cursor(options.skiptoken, options.orderby_text, len(keys))
        except IdError as exc:
            raise StaError(f"$skiptoken: {exc}") from None
        page_where.append(_keyset(alias, keys, values, es, params))
    order = sql.SQL(", ").join(
        sql.SQL("{} {}").format(_column(alias, k), sql.SQL("DESC" if desc else "ASC")) for k, desc in keys
    )
    query = sql.SQL("SELECT {} FROM {} {} WHERE {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(
        es.output(alias),
        _base(es),
        alias,
        sql.SQL(" AND ").join(page_where) if page_where else sql.SQL("true"),
        order,
    )
    params["limit"], params["offset"] = options.top + 1, options.skip if options.skiptoken is None else 0
    return PageQuery(query, params, keys, count)


def fetch_page(
    conn: psycopg.Connection,
    es: EntitySet,
    options: Options,
    *,
    tenant: str | None,
    now: datetime,
    parent: tuple[Nav, Any] | None = None,
) -> Page:
    """One page of ``es`` (under ``parent`` when navigated to) with its expansions."""
    planned = page_query(es, options, tenant=tenant, now=now, parent=parent)
    query, params, keys = planned.query, planned.params, planned.keys
    count = None
    if planned.count is not None:
        count = conn.execute(planned.count, params).fetchone()[0]  # type: ignore[index]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    next_query = None
    if len(rows) > options.top:
        rows = rows[: options.top]
        if rows:
            last = [rows[-1][k] for k, _ in keys]
            next_query = {"$skiptoken": encode_cursor(options.orderby_text, last)}
    page = Page(rows, count, next_query)
    page.expanded = expand_batch(conn, es, rows, options, tenant=tenant, now=now) if options.expand else []
    return page


def fetch_entity(
    conn: psycopg.Connection,
    es: EntitySet,
    key: Any,
    options: Options,
    *,
    tenant: str | None,
    now: datetime,
    parent: tuple[Nav, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """One entity by its key (and under ``parent``), with its expansions; None when the caller may not see it."""
    alias = sql.Identifier("e")
    params: dict[str, Any] = {"tenant": _confined(tenant, parent)}
    try:
        where = _conditions(es, alias, Options(), params, parent=parent, key=key, now=now)
    except NotFoundKey:
        return None
    query = sql.SQL("SELECT {} FROM {} {} WHERE {} LIMIT 1").format(
        es.output(alias), _base(es), alias, sql.SQL(" AND ").join(where)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, params).fetchone()
    if row is None:
        return None
    return row, expand_batch(conn, es, [row], options, tenant=tenant, now=now)[0]


def fetch_related(
    conn: psycopg.Connection,
    es: EntitySet,
    row: dict[str, Any],
    nav_name: str,
    options: Options,
    *,
    tenant: str | None,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]] | Page | None:
    """What ``row``'s navigation property ``nav_name`` leads to: one entity (or None), or a page."""
    nav = es.navs[nav_name]
    target = ENTITY_SETS[nav.target]
    value = row[nav.local]
    if nav.to_one:
        if value is None:
            return None
        return fetch_entity(conn, target, value, options, tenant=tenant, now=now)
    return fetch_page(conn, target, options, tenant=tenant, now=now, parent=(nav, value))


def _spend(rows: int) -> None:
    budget = _budget.get(None)
    if budget is not None:
        budget[0] -= rows
        if budget[0] < 0:
            raise StaError(f"$expand would return more than {MAX_EXPANDED} entities: ask for smaller pages ($top)")


def expand_batch(
    conn: psycopg.Connection,
    es: EntitySet,
    rows: list[dict[str, Any]],
    options: Options,
    *,
    tenant: str | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The expansions of every row of a page (aligned with ``rows``): one query for each navigation property and
    level, whatever the page's length (a LATERAL join seeks each parent's page on its own index)."""
    out: list[dict[str, Any]] = [{} for _ in rows]
    for item in options.expand:
        nav = es.navs.get(item.nav)
        if nav is None:
            raise StaError(f"$expand: {es.singular} has no navigation property {item.nav[:60]!r}")
        if nav.through is not None or item.options.skiptoken is not None or (nav.to_one and nav.remote != "id"):
            for row, expanded in zip(rows, out, strict=True):  # the rare shapes: one query a row
                _spend(1)
                expanded[item.nav] = fetch_related(conn, es, row, item.nav, item.options, tenant=tenant, now=now)
            continue
        target = ENTITY_SETS[nav.target]
        values = list(dict.fromkeys(row[nav.local] for row in rows if row[nav.local] is not None))
        found = _children(conn, target, nav, values, item.options, tenant=tenant, now=now) if values else {}
        for row, expanded in zip(rows, out, strict=True):
            child = found.get(row[nav.local])
            if nav.to_one:
                expanded[item.nav] = child
            else:
                expanded[item.nav] = child if child is not None else Page([], 0 if item.options.count else None)
    return out


def _children(
    conn: psycopg.Connection,
    target: EntitySet,
    nav: Nav,
    values: list[Any],
    options: Options,
    *,
    tenant: str | None,
    now: datetime,
) -> dict[Any, Any]:
    """Parent value → its expansion: ``(row, expansions)`` for a to-one navigation, a Page for a collection."""
    alias = sql.Identifier("e")
    params: dict[str, Any] = {"tenant": tenant if nav.to_one else _confined(tenant, (nav, None)), "parents": values}
    where = _conditions(target, alias, options, params, parent=None, key=None, now=now)
    if nav.to_one:
        where.append(sql.SQL("{} = ANY(%(parents)s)").format(_column(alias, nav.remote)))
        query = sql.SQL("SELECT {} FROM {} {} WHERE {}").format(
            target.output(alias), _base(target), alias, sql.SQL(" AND ").join(where)
        )
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, params).fetchall()
        _spend(len(rows))
        nested = expand_batch(conn, target, rows, options, tenant=tenant, now=now)
        return {row["id"]: (row, x) for row, x in zip(rows, nested, strict=True)}
    keys = [k for k in _order(target, options) if k[0] != nav.remote]
    where.append(sql.SQL("{} = p.v").format(_column(alias, nav.remote)))
    order = sql.SQL(", ").join(
        sql.SQL("{} {}").format(_column(alias, k), sql.SQL("DESC" if desc else "ASC")) for k, desc in keys
    )
    inner = sql.SQL("SELECT {} FROM {} {} WHERE {} ORDER BY {} LIMIT %(limit)s OFFSET %(offset)s").format(
        target.output(alias), _base(target), alias, sql.SQL(" AND ").join(where), order
    )
    array = sql.SQL("%(parents)s::bigint[]" if isinstance(values[0], int) else "%(parents)s::text[]")
    query = sql.SQL("SELECT p.v AS _parent, x.* FROM unnest({}) WITH ORDINALITY AS p(v, n)"
                    " CROSS JOIN LATERAL ({}) x ORDER BY p.n").format(array, inner)  # fmt: skip
    params["limit"], params["offset"] = options.top + 1, options.skip
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    counts: dict[Any, int] = {}
    if options.count:
        count = sql.SQL("SELECT {0}, count(*) FROM {1} {2} WHERE {3} GROUP BY {0}").format(
            _column(alias, nav.remote),
            _base(target),
            alias,
            sql.SQL(" AND ").join([*where[:-1], sql.SQL("{} = ANY(%(parents)s)").format(_column(alias, nav.remote))]),
        )
        counts = dict(conn.execute(count, params).fetchall())  # type: ignore[arg-type]
    by_parent: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_parent.setdefault(row.pop("_parent"), []).append(row)
    pages: dict[Any, Page] = {}
    kept: list[dict[str, Any]] = []
    for value in values:
        children = by_parent.get(value, [])
        next_query = None
        if len(children) > options.top:
            children = children[: options.top]
            if children:
                last = [children[-1][k] for k, _ in keys]
                next_query = {"$skiptoken": encode_cursor(options.orderby_text, last)}
        pages[value] = Page(children, counts.get(value, 0) if options.count else None, next_query)
        kept += children
    _spend(len(kept))
    if options.expand:
        nested = expand_batch(conn, target, kept, options, tenant=tenant, now=now)
        at = 0
        for value in values:
            page = pages[value]
            page.expanded, at = nested[at : at + len(page.rows)], at + len(page.rows)
    return pages


def datastream_target(conn: psycopg.Connection, series_id: int, tenant: str | None) -> tuple[str, str] | None:
    """The (device, metric) of Datastream ``series_id`` when the caller's tenant owns it."""
    if not -(2**31) <= series_id < 2**31:
        return None
    row = conn.execute(
        "SELECT s.device_id, s.metric FROM series s JOIN devices d ON d.id = s.device_id"
        " WHERE s.series_id = %(series)s AND " + TENANT,
        {"series": series_id, "tenant": tenant},
    ).fetchone()
    return (row[0], row[1]) if row else None


def tenant_datastreams(conn: psycopg.Connection, tenant: str) -> list[tuple[str, int]]:
    """Every (Thing, Datastream id) of ``tenant``: what its STA MQTT reader may subscribe to."""
    rows = conn.execute(
        "SELECT s.device_id, s.series_id FROM series s JOIN devices d ON d.id = s.device_id"
        " WHERE d.tenant_id = %s ORDER BY s.series_id",
        (tenant,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def datastream_tenant(conn: psycopg.Connection, series_id: int) -> str | None:
    row = conn.execute(
        "SELECT d.tenant_id FROM series s JOIN devices d ON d.id = s.device_id WHERE s.series_id = %s", (series_id,)
    ).fetchone()
    return row[0] if row else None


def series_number(conn: psycopg.Connection, device_id: str, metric: str) -> int | None:
    row = conn.execute(
        "SELECT series_id FROM series WHERE device_id = %s AND metric = %s", (device_id, metric)
    ).fetchone()
    return row[0] if row else None


@dataclass
class One:
    """One entity: its set, row and expansions."""

    es: EntitySet
    row: dict[str, Any]
    expanded: dict[str, Any]


@dataclass
class Many:
    """A page of a set, as a resource path names it."""

    es: EntitySet
    page: Page


@dataclass
class Value:
    """One property of one entity (``/result``, or ``/result/$value``)."""

    es: EntitySet
    name: str
    value: Any


def read(
    conn: psycopg.Connection, path: ResourcePath, options: Options, *, tenant: str | None, now: datetime
) -> One | Many | Value | None:
    """What a resource path names, confined to ``tenant``; None when nothing (visible) is there."""
    token = _budget.set([MAX_EXPANDED])
    try:
        return _read(conn, path, options, tenant=tenant, now=now)
    finally:
        _budget.reset(token)


def _read(
    conn: psycopg.Connection, path: ResourcePath, options: Options, *, tenant: str | None, now: datetime
) -> One | Many | Value | None:
    first = path.steps[0]
    es = ENTITY_SETS.get(first.name)
    if es is None:
        raise StaError(f"{first.name[:60]!r} is not an entity set")
    current: One | None = None
    steps = path.steps
    last = len(steps) - 1
    for i, step in enumerate(steps):
        is_last = i == last
        if i == 0:
            if step.key is None:
                if not is_last:
                    raise StaError(f"{es.name} needs a key before {steps[1].name!r}")
                return Many(es, fetch_page(conn, es, options, tenant=tenant, now=now))
            found = fetch_entity(conn, es, step.key, options if is_last else Options(), tenant=tenant, now=now)
            if found is None:
                return None
            current = One(es, *found)
            continue
        assert current is not None
        if step.name in current.es.properties and step.key is None:
            if not is_last:
                raise StaError(f"{current.es.singular}/{step.name} has nothing below it")
            name = step.name
            kind = current.es.properties[name]
            value = (
                str(ObservationId(current.row["_series"], current.row["phenomenonTime"]))
                if kind == OBSID
                else current.row[name]
            )
            return Value(current.es, name, value)
        nav = current.es.navs.get(step.name)
        if nav is None:
            raise StaError(f"{current.es.singular} has no property or navigation {step.name[:60]!r}")
        target = ENTITY_SETS[nav.target]
        parent_value = current.row[nav.local]
        if nav.to_one:
            if step.key is not None:
                raise StaError(f"{current.es.singular}/{step.name} is one entity: it takes no key")
            if parent_value is None:
                return None
            found = fetch_entity(conn, target, parent_value, options if is_last else Options(), tenant=tenant, now=now)
        elif step.key is None:
            if not is_last:
                raise StaError(f"{current.es.singular}/{step.name} needs a key before {steps[i + 1].name!r}")
            return Many(target, fetch_page(conn, target, options, tenant=tenant, now=now, parent=(nav, parent_value)))
        else:
            found = fetch_entity(
                conn,
                target,
                step.key,
                options if is_last else Options(),
                tenant=tenant,
                now=now,
                parent=(nav, parent_value),
            )
        if found is None:
            return None
        current = One(target, *found)
    return current
