"""`mimamori simulate` as a user runs it: a scenario played to the broker, stored by a running ingestor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.services import outside_environment
from tests.test_simulators_broker import ingesting  # noqa: F401  (fixture)

MIMAMORI = [sys.executable, "-m", "mimamori.cli"]


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = outside_environment() | env
    return subprocess.run([*MIMAMORI, *args], env=full_env, capture_output=True, text=True, timeout=timeout)


def test_an_unknown_scenario_is_one_clear_line():
    result = run_cli("simulate", "--scenario", "hurricane", env={})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no scenario 'hurricane'" in result.stderr and "typhoon" in result.stderr


@pytest.mark.slow
def test_simulate_plays_the_calm_day_to_the_hub(settings, broker, db, ingesting, tmp_path):  # noqa: F811
    logins = tmp_path / "logins.json"
    logins.write_text(json.dumps({"default": {"username": broker.username, "password": broker.password}}))
    if broker.username is None:
        logins.write_text("{}")
    result = run_cli(
        "simulate",
        "--scenario",
        "calm",
        "--speed",
        "20000",
        "--credentials",
        str(logins),
        env={"MIMAMORI_MQTT_URL": settings.mqtt_url, "MIMAMORI_DATABASE_URL": settings.dsn},
    )
    assert result.returncode == 0, result.stderr
    assert "calm at 20000×" in result.stdout and "17 devices" in result.stdout
    assert "errors 0" in result.stdout and "refused 0" in result.stdout
    assert (broker.password or "no password") not in result.stdout + result.stderr
    from tests.services import wait_until

    # A calm day: 16 devices at 10-min intervals (and more metrics), the crisis gauges once each.
    wait_until(
        lambda: db.execute("SELECT count(DISTINCT device_id) FROM readings").fetchone()[0] == 17,
        timeout=30,
        what="every device's readings",
    )
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
