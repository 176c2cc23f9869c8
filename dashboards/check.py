"""Run every panel's SQL, as Grafana would send it, against a database: `mimamori grafana check`.

Variables are resolved by running their own queries and taking every value (Grafana's "All"); a repeated
panel runs once per value, as Grafana repeats it. Each statement runs in a read-only transaction that is
rolled back, so a check can be pointed at the production database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from dashboards.macros import TimeRange, VariableValue, auto_interval, render_sql
from dashboards.model import Json

DEFAULT_MAX_DATA_POINTS = 1000  # about a panel's width in pixels on a wall screen


@dataclass(frozen=True)
class QueryRun:
    dashboard: str
    panel: str
    ref_id: str
    fmt: str
    sql: str
    rows: int = 0
    columns: tuple[str, ...] = ()
    first_row: tuple[object, ...] | None = None
    error: str | None = None
    variables: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


def _run(conn: psycopg.Connection, sql: str) -> tuple[list[tuple[object, ...]], tuple[str, ...]]:
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        cur = conn.execute(sql.encode())  # bytes: psycopg then leaves '%' in the SQL alone
        rows = cur.fetchall() if cur.description else []
        columns = tuple(c.name for c in cur.description or ())
    return rows, columns


def _error(exc: psycopg.Error) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def resolve_variables(
    conn: psycopg.Connection, dashboard: Json, time_range: TimeRange, *, timescaledb: bool, interval: timedelta
) -> dict[str, VariableValue]:
    """Every query variable's values, in order (a later variable may use an earlier one)."""
    values: dict[str, VariableValue] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        sql = render_sql(var["query"], time_range, variables=values, interval=interval, timescaledb=timescaledb)
        rows, columns = _run(conn, sql)
        column = columns.index("__value") if "__value" in columns else 0
        found = tuple(str(row[column]) for row in rows if row[column] is not None)
        values[var["name"]] = VariableValue(found, multi=bool(var.get("multi") or var.get("includeAll")))
    return values


def _panel_runs(panel: Json, values: dict[str, VariableValue]) -> Iterator[dict[str, VariableValue]]:
    repeat = panel.get("repeat")
    if repeat and repeat in values:
        for one in values[repeat].values:
            yield {**values, repeat: VariableValue((one,), multi=values[repeat].multi)}
    else:
        yield values


def query_count(dashboards: list[Json]) -> int:
    """Panel queries (targets) in the dashboards; a repeated panel runs each of its own once per value."""
    return sum(len(p.get("targets", [])) for d in dashboards for p in d.get("panels", []))


def check_dashboards(
    conn: psycopg.Connection,
    dashboards: list[Json],
    time_range: TimeRange,
    *,
    timescaledb: bool,
    max_data_points: int = DEFAULT_MAX_DATA_POINTS,
    on_target: Callable[[list[QueryRun]], None] | None = None,
) -> list[QueryRun]:
    """Run every target of every panel; one QueryRun per target and (for repeated panels) per value.

    ``on_target`` is called once per target (``query_count`` of them) with that target's runs (none when the
    dashboard's variables failed), so a progress bar counts panel queries and ends at its total however many values
    repeated panels have.
    """
    interval = auto_interval(time_range, max_data_points)
    results: list[QueryRun] = []
    for dashboard in dashboards:
        try:
            values = resolve_variables(conn, dashboard, time_range, timescaledb=timescaledb, interval=interval)
        except psycopg.Error as exc:
            failed = QueryRun(dashboard["uid"], "(variables)", "-", "table", "", error=_error(exc))
            results.append(failed)
            if on_target:  # none of its queries can run: each is done, with no run
                for _target in range(query_count([dashboard])):
                    on_target([])
            continue
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                runs: list[QueryRun] = []
                for variables in _panel_runs(panel, values):
                    shown = {k: v.values for k, v in variables.items()}
                    base = QueryRun(
                        dashboard["uid"], panel["title"], target["refId"], target["format"], "", variables=shown
                    )
                    empty = [k for k, v in variables.items() if not v.values and f"${k}" in target["rawSql"]]
                    if empty:
                        # Grafana would send `IN ()` too; say why instead of showing PostgreSQL's syntax error.
                        result = _replace(base, error=f"no values for ${', $'.join(empty)} (nothing of that kind yet)")
                    else:
                        sql = render_sql(
                            target["rawSql"],
                            time_range,
                            variables=variables,
                            interval=interval,
                            timescaledb=timescaledb,
                        )
                        try:
                            rows, columns = _run(conn, sql)
                        except psycopg.Error as exc:
                            result = _replace(base, sql=sql, error=_error(exc))
                        else:
                            first = tuple(rows[0]) if rows else None
                            result = _replace(base, sql=sql, rows=len(rows), columns=columns, first_row=first)
                    runs.append(result)
                results += runs
                if on_target:
                    on_target(runs)
    return results


def _replace(run: QueryRun, **changes: object) -> QueryRun:
    from dataclasses import replace

    return replace(run, **changes)  # type: ignore[arg-type]
