"""The backbone: configuration errors, migrations, storage modes, and one reading end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import psycopg
import pytest

from mimamori.errors import ConfigError, MimamoriError
from mimamori.migrate import load_migrations, migrate, timescaledb_available
from mimamori.settings import Settings, load_settings
from tests.services import (
    TEST_TIMESCALEDB,
    create_scratch_database,
    drop_database,
    free_port,
    outside_environment,
    wait_for_port,
    wait_until,
)

MIMAMORI = [sys.executable, "-m", "hub.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = outside_environment() | (env or {})
    return subprocess.run([*MIMAMORI, *args], env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fresh_dsn():
    dsn = create_scratch_database("mimamori_fresh")
    yield dsn
    drop_database(dsn)


def test_settings_have_laptop_defaults(monkeypatch):
    for key in list(os.environ):
        if key.startswith("MIMAMORI_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MIMAMORI_LAPTOP_ENV_FILE", "")  # not a `make up`'s file in this checkout
    s = load_settings()
    assert s.dsn == "postgresql://postgres@127.0.0.1:5432/mimamori"
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls) == ("127.0.0.1", 1883, False)
    assert s.api_port == 8000


def test_settings_read_the_environment(monkeypatch):
    monkeypatch.setenv("MIMAMORI_MQTT_URL", "mqtts://broker.example:8884")
    monkeypatch.setenv("MIMAMORI_API_PORT", "9001")
    s = load_settings()
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls, s.api_port) == ("broker.example", 8884, True, 9001)


@pytest.mark.parametrize(
    ("variable", "value", "mentions"),
    [
        ("MIMAMORI_DATABASE_URL", "mysql://x@y/z", "MIMAMORI_DATABASE_URL"),
        ("MIMAMORI_MQTT_URL", "http://broker", "MIMAMORI_MQTT_URL"),
        ("MIMAMORI_API_PORT", "not-a-port", "MIMAMORI_API_PORT"),
    ],
)
def test_bad_configuration_is_one_clear_line(variable, value, mentions):
    result = run_cli("db", "info", env={variable: value})
    assert result.returncode == ConfigError.exit_code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert mentions in lines[0] and "Traceback" not in result.stderr


def test_unreachable_database_is_one_clear_line():
    port = free_port()  # nothing listens there
    url = f"postgresql://postgres:s3cret@127.0.0.1:{port}/mimamori"
    for command in (["db", "info"], ["db", "migrate"], ["ingest"]):
        result = run_cli(*command, env={"MIMAMORI_DATABASE_URL": url})
        assert result.returncode == 3, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"127.0.0.1:{port}" in lines[0] and "cannot connect to PostgreSQL" in lines[0]
        assert "s3cret" not in result.stderr  # the password never reaches the terminal


def test_unreachable_broker_is_one_clear_line(database_url):
    port = free_port()
    result = run_cli(
        "ingest", env={"MIMAMORI_DATABASE_URL": database_url, "MIMAMORI_MQTT_URL": f"mqtt://127.0.0.1:{port}"}
    )
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"mqtt://127.0.0.1:{port}" in lines[0], result.stderr


def test_migrate_creates_the_database_and_is_idempotent(fresh_dsn):
    missing = fresh_dsn + "_new"
    settings = Settings(database_url=missing, timescaledb=TEST_TIMESCALEDB)
    try:
        first = migrate(settings)
        assert first.created_database
        assert first.applied == [f"{m.version}_{m.name}" for m in load_migrations() if m.mode in (None, first.mode)]
        second = migrate(settings)
        assert second.applied == [] and not second.created_database
    finally:
        drop_database(missing)


def test_migrate_is_safe_from_several_processes_at_once(fresh_dsn):
    settings = Settings(database_url=fresh_dsn, timescaledb=TEST_TIMESCALEDB)
    start = threading.Barrier(4)

    def run():
        start.wait()
        return migrate(settings)

    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: run(), range(4)))
    applied = [r.applied for r in reports if r.applied]
    assert len(applied) == 1, "exactly one process applies the migrations, the others find them done"
    with psycopg.connect(fresh_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    mode = reports[0].mode
    assert versions == sorted({m.version for m in load_migrations() if m.mode in (None, mode)})


def test_concurrent_cli_migrations_all_succeed(fresh_dsn):
    env = {"MIMAMORI_DATABASE_URL": fresh_dsn, "MIMAMORI_TIMESCALEDB": TEST_TIMESCALEDB}
    procs = [
        subprocess.Popen(
            [*MIMAMORI, "db", "migrate"],
            env=os.environ | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results


def test_an_edited_migration_is_refused(fresh_dsn):
    settings = Settings(database_url=fresh_dsn, timescaledb=TEST_TIMESCALEDB)
    migrate(settings)
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001'")
    with pytest.raises(MimamoriError, match="edited after it was applied"):
        migrate(settings)


def test_plain_postgresql_mode_end_to_end(fresh_dsn):
    settings = Settings(database_url=fresh_dsn, timescaledb="off")
    assert migrate(settings).mode == "plain"
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT to_regclass('timescaledb_information.hypertables')").fetchone()[0] is None
        assert conn.execute("SELECT PostGIS_Version()").fetchone()[0]
        conn.execute("INSERT INTO tenants (id, name) VALUES ('t', 'T')")
        conn.execute("INSERT INTO device_types (id, name) VALUES ('g', 'gauge')")
        conn.execute(
            "INSERT INTO devices (id, tenant_id, device_type, location) VALUES "
            "('d1', 't', 'g', ST_SetSRID(ST_MakePoint(137.179, 35.094), 4326))"
        )
        conn.execute(
            "INSERT INTO readings (time, device_id, metric, value) SELECT "
            "timestamptz '2026-09-01 00:00Z' + make_interval(mins => i), 'd1', 'water_level', i "
            "FROM generate_series(0, 59) AS i"
        )
        buckets = conn.execute(
            "SELECT date_bin('10 minutes', time, timestamptz '2000-01-01Z') AS b, avg(value), count(*) "
            "FROM readings WHERE device_id = 'd1' GROUP BY b ORDER BY b"
        ).fetchall()
        assert [(row[1], row[2]) for row in buckets] == [(i * 10 + 4.5, 10) for i in range(6)]
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT * FROM readings WHERE device_id = 'd1' AND metric = 'water_level' "
                "AND time > now() - interval '1 day'"
            )
        )
        assert "Index" in plan
        # Readings carry the primary key and a BRIN index on time, and no btree on time alone (0040, 0060).
        indexes = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'series_readings'"))
        assert sorted(indexes) == ["series_readings_pkey", "series_readings_time_brin"]
        assert 'USING brin ("time")' in indexes["series_readings_time_brin"]
        conn.execute("SET enable_seqscan = off")  # sixty rows: the planner would rightly scan them all
        ranged = "\n".join(
            r[0] for r in conn.execute("EXPLAIN SELECT count(*) FROM readings WHERE time > now() - interval '1 day'")
        )
        assert "series_readings_time_brin" in ranged  # a range of time alone can still use an index
    result = run_cli("db", "info", env={"MIMAMORI_DATABASE_URL": fresh_dsn})
    assert result.returncode == 0, result.stderr
    assert "plain" in result.stdout and "readings" in result.stdout and "60" in result.stdout


def test_timescaledb_on_is_refused_clearly_where_the_extension_is_missing(fresh_dsn):
    with psycopg.connect(fresh_dsn) as conn:
        if timescaledb_available(conn):
            pytest.skip("TimescaleDB is installed here; this test is about its absence")
    with pytest.raises(ConfigError, match="timescaledb extension is not installed"):
        migrate(Settings(database_url=fresh_dsn, timescaledb="on"))


@pytest.mark.timescaledb
def test_timescaledb_mode_creates_hypertable_compression_and_aggregates(fresh_dsn):
    with psycopg.connect(fresh_dsn) as conn:
        if not timescaledb_available(conn):
            pytest.skip("no TimescaleDB on the test server: set MIMAMORI_TEST_ADMIN_DSN to one that preloads it")
    settings = Settings(database_url=fresh_dsn, timescaledb="on", retention_days=400, compress_after_days=3)
    assert migrate(settings).mode == "timescaledb"
    assert migrate(settings).applied == []  # policies are re-applied without error
    with psycopg.connect(fresh_dsn) as conn:
        hyper = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'series_readings'"
        ).fetchone()
        assert hyper == (True,)
        chunk = conn.execute(
            "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'series_readings'"
        ).fetchone()
        assert chunk == (timedelta(days=7),)  # MIMAMORI_CHUNK_DAYS
        caggs = {r[0] for r in conn.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates")}
        assert {"series_readings_10m", "series_readings_1h", "series_readings_1d"} <= caggs
        jobs = {r[0] for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs")}
        assert {"policy_retention", "policy_compression", "policy_refresh_continuous_aggregate"} <= jobs


def test_reading_published_to_mosquitto_is_served_over_http(database_url, broker, db):
    """`mimamori up` as a real process: a paho client publishes, its API serves the reading back."""
    port = free_port()
    env = os.environ | {
        "MIMAMORI_DATABASE_URL": database_url,
        "MIMAMORI_MQTT_URL": broker.url,
        "MIMAMORI_API_PORT": str(port),
        "MIMAMORI_MQTT_CLIENT_ID": "e2e-up",
        "MIMAMORI_TIMESCALEDB": TEST_TIMESCALEDB,
        "MIMAMORI_MQTT_USERNAME": broker.ingest_username,  # the broker refuses anonymous clients
        "MIMAMORI_MQTT_PASSWORD": broker.ingest_password,
    }
    hub = subprocess.Popen(
        [*MIMAMORI, "up", "--no-simulate", "--sample-stands", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(hub.stdout), daemon=True).start()
    try:
        wait_for_port(port, timeout=60)
        secret = wait_until(
            lambda: next((m[1] for ln in lines if (m := re.search(r"admin key \(.*\): (mk_\S+)", ln))), None),
            what="admin key",
        )
        publisher = broker.client()
        payload = {"ts": "2026-11-25T10:00:00+09:00", "values": {"water_level": 3.42, "battery": 3.61}}
        info = publisher.publish("mimamori/v1/toyota-city/yahagi-takahashi/telemetry", json.dumps(payload), qos=1)
        info.wait_for_publish(5)
        publisher.loop_stop()
        publisher.disconnect()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/v1/devices/yahagi-takahashi/latest").status_code == 401
            body = wait_until(
                lambda: (
                    (r := client.get("/v1/devices/yahagi-takahashi/latest", headers={"X-API-Key": secret}))
                    .json()
                    .get("readings")
                    and r.json()
                ),
                what="the reading served by the API",
            )
    finally:
        hub.terminate()
        _, stderr = hub.communicate(timeout=30)
    assert hub.returncode == 0, stderr
    assert body["readings"]["water_level"]["value"] == 3.42
    assert body["readings"]["water_level"]["time"].startswith("2026-11-25T01:00:00")
    assert body["readings"]["battery"]["value"] == 3.61
    assert secret not in stderr


def test_up_plays_the_typhoon_with_each_city_device_on_its_own_account(database_url, broker, db):
    """`mimamori up` provisions the city's devices on the broker and runs the simulator through it."""
    port = free_port()
    env = os.environ | {
        "MIMAMORI_DATABASE_URL": database_url,
        "MIMAMORI_MQTT_URL": broker.url,
        "MIMAMORI_API_PORT": str(port),
        "MIMAMORI_MQTT_CLIENT_ID": "e2e-up-sim",
        "MIMAMORI_TIMESCALEDB": TEST_TIMESCALEDB,
        "MIMAMORI_MQTT_USERNAME": broker.ingest_username,
        "MIMAMORI_MQTT_PASSWORD": broker.ingest_password,
        "MIMAMORI_MQTT_ADMIN_USERNAME": broker.admin_username,
        "MIMAMORI_MQTT_ADMIN_PASSWORD": broker.admin_password,
    }
    db.execute("DELETE FROM stands")
    hub = subprocess.Popen(
        [*MIMAMORI, "up", "--speed", "3600", "--sample-stands", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, timeout=60)
        devices = wait_until(
            lambda: (n := db.execute("SELECT count(DISTINCT device_id) FROM readings").fetchone()[0]) >= 15 and n,
            timeout=90,
            what="readings from the city's simulated devices",
        )
    finally:
        hub.terminate()
        stdout, stderr = hub.communicate(timeout=60)
    assert hub.returncode == 0, stderr
    assert devices >= 15
    assert "map       http://" in stdout and "simulator typhoon" in stdout
    assert db.execute("SELECT count(*) FROM stands").fetchone()[0] == 300  # the synthetic sample register
    # Each device published on its own topic with its own account: nothing was refused as another's.
    assert (
        db.execute(
            "SELECT count(*) FROM dead_letters WHERE reason IN ('tenant_mismatch', 'unknown_device')"
        ).fetchone()[0]
        == 0
    )


def test_api_workers_serve_one_port_from_several_processes_and_stop_together(database_url):
    port = free_port()
    env = os.environ | {"MIMAMORI_DATABASE_URL": database_url, "MIMAMORI_API_PORT": str(port)}
    proc = subprocess.Popen([*MIMAMORI, "api", "--workers", "2"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=60)

        def children() -> list[str]:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as listing:
                return listing.read().split()

        # uvicorn's supervisor and two workers (plus, on some versions, a resource tracker)
        workers = wait_until(lambda: len(children()) >= 2 and children(), timeout=30, what="two worker processes")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            answers = [client.get("/healthz").status_code for _ in range(20)]
        assert answers == [200] * 20
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        wait_until(
            lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers),
            timeout=15,
            what="the workers to stop with the supervisor",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_retention_no_longer_than_the_late_reading_window_is_refused():
    with pytest.raises(ValueError, match="MIMAMORI_RETENTION_DAYS"):
        Settings(retention_days=300, ingest_max_past_days=365, _env_file=None)  # type: ignore[call-arg]
    assert Settings(retention_days=400, ingest_max_past_days=365, _env_file=None).retention_days == 400  # type: ignore[call-arg]


def test_commands_in_a_checkout_with_a_running_laptop_hub_use_its_broker(monkeypatch, tmp_path):
    """`make up` writes var/laptop.env; any command run beside it reads it, and the environment still wins."""
    for key in list(os.environ):
        if key.startswith("MIMAMORI_"):
            monkeypatch.delenv(key)
    laptop = tmp_path / "laptop.env"
    laptop.write_text("MIMAMORI_MQTT_URL=mqtt://127.0.0.1:1884\nMIMAMORI_MQTT_USERNAME=mimamori-ingest-1\n")
    monkeypatch.setenv("MIMAMORI_LAPTOP_ENV_FILE", str(laptop))
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert (s.mqtt.port, s.mqtt_username) == (1884, "mimamori-ingest-1")
    monkeypatch.setenv("MIMAMORI_MQTT_URL", "mqtt://broker.example:1883")
    assert load_settings().mqtt.host == "broker.example"
    (tmp_path / ".env").write_text("MIMAMORI_MQTT_USERNAME=from-dot-env\n")
    assert load_settings().mqtt_username == "from-dot-env"  # ./.env is the operator's own: it wins over the laptop's
