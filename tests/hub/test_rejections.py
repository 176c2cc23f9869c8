"""An importer's rejects file: every importer's ids and reasons come from a file that may be hostile and the rejects
file is opened in a spreadsheet, so formula-like cells are neutralised and every cell quoted."""

from __future__ import annotations

import csv
import io

from rich.console import Console

from hub.commands.rejections import SHOWN_REJECTIONS, report_rejections


def test_the_rejects_file_neutralises_formulas_for_every_importer(tmp_path):
    path = tmp_path / "rejects.csv"
    hostile = '=HYPERLINK("http://evil.example","x")'
    rows = [(1, hostile, "unknown ownership"), (2, "+cmd|' /C calc'!A0", "@SUM(1)"), (3, "-7", "negative area")]
    report_rejections(Console(file=io.StringIO()), rows, "stand_id", path)
    text = path.read_text("utf-8")
    assert all(line.startswith('"') for line in text.splitlines())  # every cell quoted
    cells = list(csv.reader(io.StringIO(text)))
    assert cells[0] == ["row", "stand_id", "reason"]
    assert cells[1] == ["1", "'" + hostile, "unknown ownership"]
    assert cells[2] == ["2", "'+cmd|' /C calc'!A0", "'@SUM(1)"]
    assert cells[3] == ["3", "-7", "negative area"]  # a plain number is a number, not a formula


def test_the_table_shows_the_first_few_and_points_to_the_file():
    screen = io.StringIO()
    rows = [(i, f"s{i}", "bad") for i in range(SHOWN_REJECTIONS + 5)]
    report_rejections(Console(file=screen, width=120), rows, "site_id", None)
    shown = screen.getvalue()
    assert f"s{SHOWN_REJECTIONS - 1}" in shown and f"s{SHOWN_REJECTIONS}" not in shown
    assert "… and 5 more: pass --rejects FILE.csv for all" in shown
