"""`mimamori simulate` as a user runs it: a scenario played to the broker, stored by a running ingestor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.services import outside_environment
from tests.simulators.test_broker import ingesting  # noqa: F401  (fixture)

MIMAMORI = [sys.executable, "-m", "hub.cli"]


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


# --- a wrong broker (issue 17, item 7h): said at once, then exit code 3, never minutes of silence ----------------


def test_a_broker_address_nothing_listens_on_is_said_at_once_then_exit_3():
    import time

    from tests.services import free_port

    port = free_port()  # bound and released: nothing listens there
    started = time.monotonic()
    result = run_cli(
        "simulate",
        "--scenario",
        "calm",
        env={"MIMAMORI_MQTT_URL": f"mqtt://127.0.0.1:{port}", "MIMAMORI_SIMULATE_CONNECT_TIMEOUT_S": "1"},
        timeout=30,
    )
    took = time.monotonic() - started
    assert result.returncode == 3, result.stderr
    assert f"cannot connect to the MQTT broker at mqtt://127.0.0.1:{port}: Connection refused" in result.stderr
    assert "gave up after 1 s, nothing was sent" in result.stderr
    assert took < 15  # interpreter start-up plus the 1 s allowed; it was 25 s of nothing
    assert "devices →" not in result.stdout  # no run was started


def test_a_port_that_takes_connections_but_speaks_no_mqtt_ends_with_exit_3():
    import socket
    import threading

    held: list[socket.socket] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def accept_and_say_nothing() -> None:
        with server:
            server.settimeout(30)
            while True:
                try:
                    held.append(server.accept()[0])
                except OSError:
                    return

    threading.Thread(target=accept_and_say_nothing, daemon=True).start()
    try:
        result = run_cli(
            "simulate",
            "--scenario",
            "calm",
            env={"MIMAMORI_MQTT_URL": f"mqtt://127.0.0.1:{port}", "MIMAMORI_SIMULATE_CONNECT_TIMEOUT_S": "2"},
            timeout=60,
        )
    finally:
        server.close()
        for s in held:
            s.close()
    assert result.returncode == 3, result.stderr
    assert f"no device could connect to the MQTT broker at mqtt://127.0.0.1:{port}" in result.stderr
    assert "within 2 s" in result.stderr


def test_a_broker_refusing_every_login_ends_with_exit_3_naming_the_refusal(broker):
    if broker.username is None:
        pytest.skip("this broker takes anonymous clients: no login is refused")
    result = run_cli(
        "simulate",
        "--scenario",
        "calm",
        env={
            "MIMAMORI_MQTT_URL": broker.url,
            "MIMAMORI_MQTT_USERNAME": "nobody",
            "MIMAMORI_MQTT_PASSWORD": "not-a-password",
            "MIMAMORI_SIMULATE_CONNECT_TIMEOUT_S": "2",
        },
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "no device could connect to the MQTT broker" in result.stderr
    assert "refused the connection" in result.stderr
    assert "not-a-password" not in result.stdout + result.stderr
