"""`mimamori grafana`: export the dashboards and provisioning files, check every query, sync to a Grafana."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hub.commands import plain
from mimamori.settings import Settings, load_settings

app = typer.Typer(
    help="Grafana dashboards generated from the schema: export, check against the database, sync over the API.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


class Mode(StrEnum):
    auto = "auto"  # as the database says (plain when it cannot be reached)
    plain = "plain"
    timescaledb = "timescaledb"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


def _timescaledb(settings: Settings, mode: Mode) -> bool:
    if mode is not Mode.auto:
        return mode is Mode.timescaledb
    from mimamori.db import connect
    from mimamori.errors import MimamoriError
    from mimamori.migrate import TIMESCALEDB, storage_mode

    try:
        with connect(settings.dsn) as conn:
            return storage_mode(conn) == TIMESCALEDB
    except MimamoriError as exc:
        why = plain(exc)
        err.print(f"[yellow]storage mode unknown ({why}); writing plain-mode dashboards (--mode to choose)[/]")
        return False


_MODE = typer.Option(help="Storage mode the SQL is written for: auto reads it from the database.")


@app.command("export")
def export_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (Grafana's provisioning layout).")] = Path(
        "deploy/grafana"
    ),
    mode: Annotated[Mode, _MODE] = Mode.auto,
) -> None:
    """Write provisioning/datasources, provisioning/dashboards and dashboards/*.json under --out.

    Mount <out>/provisioning as Grafana's provisioning folder and <out>/dashboards at
    /var/lib/grafana/dashboards/mimamori; Grafana reads the database address and credentials from
    MIMAMORI_GRAFANA_DB_* in its own environment (docs/grafana.md).
    """
    from dashboards import DashboardOptions, build_dashboards, export

    settings = load_settings()
    options = DashboardOptions.from_settings(settings, timescaledb=_timescaledb(settings, mode))
    paths = export(
        out_dir,
        build_dashboards(options),
        options,
        folder=settings.grafana_folder,
        datasource_name=settings.grafana_datasource_name,
    )
    for path in paths:
        out.print(f"wrote {plain(path)}")
    out.print(f"{len(paths) - 2} dashboard(s), {'TimescaleDB' if options.timescaledb else 'plain'} mode")


@app.command("check")
def check_cmd(
    hours: Annotated[float, typer.Option(help="Time range: this many hours up to now.")] = 24.0,
    mode: Annotated[Mode, _MODE] = Mode.auto,
    show_sql: Annotated[bool, typer.Option(help="Print the SQL of failed queries as Grafana would send it.")] = False,
) -> None:
    """Run every panel's SQL with Grafana's macros expanded against the database (read-only, rolled back).

    Exits 1 when a query fails. Empty results are listed but are not failures: there may be no data yet.
    """
    from dashboards import DashboardOptions, TimeRange, build_dashboards, check_dashboards, query_count
    from mimamori.db import connect

    settings = load_settings()
    options = DashboardOptions.from_settings(settings, timescaledb=_timescaledb(settings, mode))
    dashboards = build_dashboards(options)
    now = datetime.now(UTC)
    time_range = TimeRange(now - timedelta(hours=hours), now)
    with connect(settings.dsn, autocommit=True) as conn, _progress() as progress:
        task = progress.add_task("running panel queries", total=query_count(dashboards))
        runs = check_dashboards(
            conn,
            dashboards,
            time_range,
            timescaledb=options.timescaledb,
            on_target=lambda _runs: progress.advance(task),
        )
    table = Table("dashboard", "panel", "query", "rows", "result", title=f"panel queries over the last {hours:g} h")
    for run in runs:
        failure = f"[red]{plain(run.error or '')}[/]"
        verdict = "[green]ok[/]" if run.ok and run.rows else ("[yellow]no rows[/]" if run.ok else failure)
        table.add_row(plain(run.dashboard), plain(run.panel), plain(run.ref_id), str(run.rows), verdict)
    out.print(table)
    failed = [r for r in runs if not r.ok]
    if show_sql:
        for run in failed:
            out.print(f"[bold]{plain(f'{run.dashboard} / {run.panel} / {run.ref_id}')}[/]\n{plain(run.sql)}\n")
    # Runs, not panel queries, are counted here: a panel repeated per gauge runs its queries once per gauge.
    out.print(
        f"{len(runs) - len(failed)} of {len(runs)} queries ran"
        f" ({query_count(dashboards)} panel queries; a repeated panel's queries run once per value)"
    )
    if failed:
        raise typer.Exit(1)


@app.command("sync")
def sync_cmd(
    url: Annotated[str | None, typer.Option(help="Grafana's base URL (MIMAMORI_GRAFANA_URL).")] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Service-account token; prefer MIMAMORI_GRAFANA_TOKEN, which stays out of shell history."),
    ] = None,
    mode: Annotated[Mode, _MODE] = Mode.auto,
) -> None:
    r"""Create or update the data source, the folder and every dashboard in a running Grafana.

    Needs the optional extra: pip install 'mimamori\[grafana]'. The data source connects with
    MIMAMORI_GRAFANA_DATABASE_URL (a read-only role, as Grafana reaches the database), else the hub's own URL.
    """
    from dashboards import DashboardOptions, DatasourceSettings, build_dashboards, sync

    settings = load_settings()
    timescaledb = _timescaledb(settings, mode)
    options = DashboardOptions.from_settings(settings, timescaledb=timescaledb)
    dashboards = build_dashboards(options)
    db_url = settings.grafana_database_url or settings.database_url
    datasource = DatasourceSettings.from_url(
        db_url.get_secret_value(),
        name=settings.grafana_datasource_name,
        uid=settings.grafana_datasource_uid,
        sslmode=settings.grafana_database_sslmode,
        timescaledb=timescaledb,
    )
    if settings.grafana_database_url is None:
        err.print("[yellow]MIMAMORI_GRAFANA_DATABASE_URL is unset: Grafana gets the hub's own database account[/]")
    secret = token or (settings.grafana_token.get_secret_value() if settings.grafana_token else None)
    with _progress() as progress:
        task = progress.add_task("pushing dashboards", total=len(dashboards))
        report = sync(
            url=url or settings.grafana_url,
            token=secret,
            dashboards=dashboards,
            datasource=datasource,
            folder=settings.grafana_folder,
            timeout_s=settings.grafana_timeout_s,
            on_dashboard=lambda _uid: progress.advance(task),
        )
    out.print(plain(f"Grafana {report.grafana_version}: data source {report.datasource}, folder {report.folder}"))
    table = Table("dashboard", "version", "url")
    for uid, path, version in report.dashboards:
        table.add_row(plain(uid), str(version), plain(path))
    out.print(table)
