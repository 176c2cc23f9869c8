"""`mimamori stands`: import forest stand registers (森林簿) and make the synthetic sample register."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub.commands import plain
from hub.commands.rejections import report_rejections
from mimamori.settings import load_settings

app = typer.Typer(help="Forest stands (森林簿): import registers, make the synthetic sample.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="GeoPackage, Shapefile (.shp or zipped), GeoJSON, or CSV with WKT.")],
    crs: Annotated[str | None, typer.Option(help="The file's CRS, overriding what it says (e.g. EPSG:6675).")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer to read from a multi-layer GeoPackage.")] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding of CSV / DBF (e.g. cp932).")] = None,
    column_map: Annotated[
        Path | None, typer.Option(help="YAML column map for another register layout (see geo/stand_columns.yaml).")
    ] = None,
    rejects: Annotated[Path | None, typer.Option(help="Write every rejected row and its reason to this CSV.")] = None,
) -> None:
    """Import a stand register: reproject to EPSG:4326, repair geometry, map columns, upsert by stand id.

    Rows that cannot be imported are listed with their reason (all of them with --rejects); the rest are kept.
    Files without a CRS are read as MIMAMORI_STANDS_DEFAULT_CRS (EPSG:6675, JGD2011 zone VII, Aichi).
    """
    from geo import ColumnMap, import_register
    from mimamori.db import connect

    settings = load_settings()
    columns = ColumnMap.load(column_map)
    with connect(settings.dsn) as conn, _progress() as progress:
        task = progress.add_task(f"reading {file.name}", total=None)

        def on_read(total: int) -> None:
            progress.update(task, description=f"writing {file.name}", total=total, completed=0)

        report = import_register(
            conn,
            file,
            columns=columns,
            default_crs=settings.stands_default_crs,
            crs=crs,
            layer=layer,
            encoding=encoding,
            chunk_size=settings.stands_import_chunk,
            on_read=on_read,
            on_progress=lambda done: progress.update(task, completed=done),
        )
    out.print(
        f"{report.imported} stand(s) imported from {report.rows} row(s) of {plain(file.name)}"
        f" (source CRS {report.source_crs}); {len(report.rejections)} rejected"
    )
    rows = [(r.row, r.stand_id or "", r.reason) for r in report.rejections]
    report_rejections(out, rows, "stand_id", rejects)


@app.command("sample")
def sample(
    file: Annotated[Path, typer.Argument(help="Output: .gpkg (default choice), .shp, .geojson or .csv.")],
    count: Annotated[int, typer.Option(min=1, help="Number of stands.")] = 25_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same register).")] = 232114,
) -> None:
    """Write a SYNTHETIC stand register for Toyota City's mountain districts, in EPSG:6675 like a real one."""
    from simulators.stand_register import SampleOptions, generate, write

    with _progress() as progress:
        task = progress.add_task("generating stands", total=count)
        frame = generate(SampleOptions(count=count, seed=seed), lambda n: progress.update(task, completed=n))
        progress.update(task, description=f"writing {file.name}")
        write(frame, file)
    out.print(
        f"{len(frame)} synthetic stands written to {plain(file)} (EPSG:6675); import with `mimamori stands import`"
    )
