"""`mimamori evacuation`: import and export designated evacuation sites (指定緊急避難場所) and shelters (指定避難所)
in the standard open-data set format (自治体標準オープンデータセット)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub.commands import plain
from hub.commands.rejections import report_rejections
from mimamori.settings import load_settings

app = typer.Typer(
    help="Evacuation sites and shelters (指定緊急避難場所・指定避難所): import and export the standard lists.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

SAMPLE_FILES = ("toyota_emergency_sites.sample.csv", "toyota_shelters.sample.csv")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="指定緊急避難場所一覧 or 指定避難所一覧 as CSV.")],
    kind: Annotated[str | None, typer.Option(help="emergency_site or shelter (default: told by the headers).")] = None,
    encoding: Annotated[
        str | None, typer.Option(help="Text encoding (default: UTF-8 with or without BOM, else cp932).")
    ] = None,
    municipality: Annotated[
        str, typer.Option(help="全国地方公共団体コード for rows whose file has none (default Toyota City).")
    ] = "232114",
    rejects: Annotated[Path | None, typer.Option(help="Write every rejected row and its reason to this CSV.")] = None,
) -> None:
    """Import a list: validate every row, upsert the sites by id (`<municipality>-<kind>-<ID>`).

    Rows that cannot be imported are listed with their reason (all of them with --rejects); the rest are kept.
    """
    from geo.evacuation import import_sites
    from mimamori.db import connect

    settings = load_settings()
    with connect(settings.dsn) as conn, _progress() as progress:
        task = progress.add_task(f"reading {file.name}", total=None)

        def on_read(total: int) -> None:
            progress.update(task, description=f"writing {file.name}", total=total, completed=0)

        report = import_sites(
            conn,
            file,
            kind=kind,
            encoding=encoding,
            default_municipality=municipality,
            on_read=on_read,
            on_progress=lambda done: progress.update(task, completed=done),
        )
    out.print(
        f"{report.imported} {report.kind} site(s) imported from {report.rows} row(s) of {plain(file.name)}"
        f" ({report.encoding}); {len(report.rejections)} rejected"
    )

    rows = [(r.row, r.site_id or "", r.reason) for r in report.rejections]
    report_rejections(out, rows, "site_id", rejects)


@app.command("export")
def export(
    file: Annotated[Path, typer.Argument(help="Output CSV.")],
    kind: Annotated[str, typer.Option(help="emergency_site or shelter.")],
    bom: Annotated[bool, typer.Option(help="Start with a UTF-8 BOM, so Excel in Japan reads it as UTF-8.")] = False,
) -> None:
    """Write every site of a kind in the standard format: the headers of the file it came from, in its order."""
    from geo.evacuation import export_sites
    from mimamori.db import connect

    settings = load_settings()
    with connect(settings.dsn) as conn:
        written = export_sites(conn, file, kind=kind, bom=bom)
    out.print(f"{written} {kind} site(s) written to {plain(file)}")


def sample_paths() -> list[Path]:
    """The SAMPLE lists for Toyota City shipped in geo/samples/ (made-up designations at real places)."""
    from importlib import resources

    folder = resources.files("geo").joinpath("samples")
    return [Path(str(folder.joinpath(name))) for name in SAMPLE_FILES]
