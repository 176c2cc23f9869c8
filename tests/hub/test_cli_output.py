"""What the `mimamori` command prints keeps the text it was given: Rich reads "[word]" as a markup tag and drops it,
so units like "[m]", a package extra like "mimamori[grafana]" or a name with brackets must be escaped (issue 17,
item 7 a and b)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import typer
from typer.testing import CliRunner

from devices.queries import catalogue_from_db
from hub.cli import app

MIMAMORI = [sys.executable, "-m", "hub.cli"]
WIDE = {"COLUMNS": "400"}  # no wrapping: each expected piece stays on one line
# A Rich tag in source text: "[word]", or "\[word]" where the source already escapes it.
_TAG = re.compile(r"\\?\[[A-Za-z#/@][^\[\]\s]*\]")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")} | WIDE | env
    return subprocess.run([*MIMAMORI, *args], env=full_env, capture_output=True, text=True, timeout=60)


def test_devices_types_shows_every_unit_in_its_brackets(db, database_url):
    result = run_cli("devices", "types", env={"MIMAMORI_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    catalogue = catalogue_from_db(db)
    units = {f"{m.metric} [{m.unit}]" for t in catalogue.values() for m in t.metrics.values()}
    assert {"water_level [m]", "rainfall [mm]", "signal [dBm]"} <= units
    missing = sorted(u for u in units if u not in result.stdout)
    assert missing == []


def test_a_device_name_with_brackets_is_listed_as_written(db, database_url, city):
    db.execute("UPDATE devices SET name = %s WHERE id = %s", ("Gauge [b] at the weir", city["gauge"]))
    result = run_cli("devices", "list", env={"MIMAMORI_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "Gauge [b] at the weir" in result.stdout


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    for name, sub in (getattr(command, "commands", None) or {}).items():  # typer's groups are no click.Group
        found += _commands(sub, (*path, name))
    return found


def test_every_help_page_keeps_the_bracketed_words_of_its_text():
    runner = CliRunner()
    checked = 0
    for path, command in _commands(typer.main.get_command(app)):
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        tags = [t for text in texts for t in _TAG.findall(text)]
        if not tags:
            continue
        result = runner.invoke(app, [*path, "--help"], env=WIDE)
        assert result.exit_code == 0, result.output
        for tag in tags:
            assert tag.removeprefix("\\") in result.output, (path, tag)
        assert "\\[" not in result.output, path
        checked += len(tags)
    assert checked >= 1  # `grafana sync` names the extra mimamori[grafana]


def test_grafana_sync_help_names_the_extra_to_install():
    result = CliRunner().invoke(app, ["grafana", "sync", "--help"], env=WIDE)
    assert result.exit_code == 0
    assert "pip install 'mimamori[grafana]'" in result.output


def test_plain_takes_any_value_and_escapes_its_text():
    from hub.commands import plain
    from mimamori.settings import Settings

    assert plain(None) == ""
    assert plain("water_level [m]") == "water_level \\[m]"
    assert plain(Settings(mqtt_url="mqtt://[::1]:1883").mqtt)  # an address object, not a str: no TypeError
