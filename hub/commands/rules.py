"""`mimamori rules`: check hazard rule files before they go live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hub.commands import plain

app = typer.Typer(help="Hazard rules (YAML): check files, list the rules in force.", no_args_is_help=True)
out = Console()


@app.command("check")
def check(files: Annotated[list[Path], typer.Argument(help="Rule files (YAML) or folders of them.")]) -> None:
    """Validate rule files and explain every mistake with its line number (exit 1 when any is wrong)."""
    from alerts import RuleFileError, load_rule_dir, load_rule_file

    failed = False
    for path in files:
        try:
            rules = load_rule_dir(path) if path.is_dir() else load_rule_file(path)
        except RuleFileError as exc:
            failed = True
            out.print(f"[red]{plain(path)}[/]: {len(exc.problems)} problem(s)", highlight=False)
            for problem in exc.problems:
                out.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
            continue
        except OSError as exc:
            failed = True
            out.print(f"[red]{plain(path)}[/]: cannot read: {plain(exc.strerror)}", highlight=False)
            continue
        out.print(f"[green]{plain(path)}[/]: {len(rules)} rule(s) OK", highlight=False)
    if failed:
        from mimamori.errors import ValidationError

        raise ValidationError("some rule files have problems (listed above)")


@app.command("list")
def list_(
    folder: Annotated[Path | None, typer.Option(help="Rule folder (default: MIMAMORI_ALERTS_RULES_DIR).")] = None,
) -> None:
    """The rules a hub would load from its folder."""
    from alerts import load_rule_dir, rules_directory
    from mimamori.settings import load_settings

    directory = folder or rules_directory(load_settings())
    table = Table("id", "kind", "hazard", "title", "target")
    for rule in load_rule_dir(directory):
        table.add_row(
            *map(plain, (rule.id, rule.kind, rule.hazard, rule.title.en)),
            plain(rule.target.model_dump_json(exclude_none=True)),
        )
    out.print(table)
