"""An importer's rejected rows, as the stands and evacuation-site commands report them: the first few as a table,
all of them in a CSV file when ``--rejects`` asks for one. The ids and reasons quote the imported file, which may
be hostile, and the rejects file is opened in a spreadsheet: every cell is quoted and formula-like cells are
neutralised (OWASP's CSV-injection defence), for every importer."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hub.commands import plain

SHOWN_REJECTIONS = 20


def report_rejections(
    out: Console,
    rejections: Sequence[tuple[int, str, str]],
    id_column: str,
    rejects: Path | None,
) -> None:
    """``rejections`` are (row, id, reason); ``id_column`` names the id (``stand_id``)."""
    if rejections:
        table = Table("row", id_column.replace("_", " "), "reason", title="rejected rows")
        for row, rid, reason in rejections[:SHOWN_REJECTIONS]:
            table.add_row(str(row), plain(rid), plain(reason))
        out.print(table)
        if len(rejections) > SHOWN_REJECTIONS and rejects is None:
            out.print(f"… and {len(rejections) - SHOWN_REJECTIONS} more: pass --rejects FILE.csv for all")
    if rejects is not None:
        from geo.evacuation_format import neutralise  # here: `import geo` takes most of a second

        with rejects.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
            writer.writerow(["row", id_column, "reason"])
            writer.writerows((row, neutralise(rid), neutralise(reason)) for row, rid, reason in rejections)
        out.print(f"rejections written to {plain(rejects)}")
