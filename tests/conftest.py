"""Fixtures: one scratch database and one private Mosquitto per test run, cleaned between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from devices import load_catalogue, sync_catalogue, upsert_device, upsert_tenant
from mimamori.migrate import migrate
from mimamori.settings import Settings
from tests.services import TEST_TIMESCALEDB, Mosquitto, create_scratch_database, drop_database

# A `make up` in this checkout leaves var/laptop.env (its broker, its accounts): the tests use their own.
os.environ["MIMAMORI_LAPTOP_ENV_FILE"] = ""

# Not `series`: its numbers are remembered by live connections (ingest/series_numbers.py), and never deleted.
_TABLES_TO_CLEAN = (
    "series_readings",
    "latest_readings",
    "dead_letters",
    "device_liveness",
    "devices",
    "tenants",
)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    dsn = create_scratch_database()
    settings = Settings(database_url=dsn, timescaledb=TEST_TIMESCALEDB)  # type: ignore[arg-type]
    print(f"\nthe run's database: {migrate(settings).mode} mode (MIMAMORI_TEST_TIMESCALEDB={TEST_TIMESCALEDB})")
    with psycopg.connect(dsn) as conn:
        sync_catalogue(conn, load_catalogue())
    yield dsn
    drop_database(dsn)


@pytest.fixture(scope="session")
def broker() -> Iterator[Mosquitto]:
    mosq = Mosquitto()
    mosq.start()
    yield mosq
    mosq.cleanup()


@pytest.fixture
def settings(database_url: str, broker: Mosquitto, request: pytest.FixtureRequest) -> Settings:
    # A client id per test, so one test's persistent session never leaks into the next.
    return Settings(
        database_url=database_url,  # type: ignore[arg-type]
        mqtt_url=broker.url,
        mqtt_client_id=f"ingest-{request.node.name[:40]}",
        mqtt_share_group=f"g{abs(hash(request.node.nodeid)) % 10**8}",
        mqtt_username=broker.ingest_username,
        mqtt_password=broker.ingest_password,  # type: ignore[arg-type]
        alerts_mqtt_username=broker.alerts_username,
        alerts_mqtt_password=broker.alerts_password,  # type: ignore[arg-type]
        mqtt_admin_username=broker.admin_username,
        mqtt_admin_password=broker.admin_password,  # type: ignore[arg-type]
        timescaledb=TEST_TIMESCALEDB,  # type: ignore[arg-type]
    )


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the run's database, emptied of tenants, devices and data first."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(_TABLES_TO_CLEAN) + " CASCADE")
        yield conn


@pytest.fixture
def pool(settings: Settings, db: psycopg.Connection) -> Iterator[ConnectionPool]:
    p = ConnectionPool(settings.dsn, min_size=1, max_size=4, open=True)
    yield p
    p.close()


@pytest.fixture
def city(db: psycopg.Connection) -> dict[str, str]:
    """The city tenant with one river gauge and one rain gauge; a partner with one soil probe."""
    upsert_tenant(db, "toyota-city", "Toyota City", "operator")
    upsert_tenant(db, "acme", "Acme Sensors", "partner")
    upsert_device(
        db,
        device_id="gauge-1",
        tenant_id="toyota-city",
        device_type="river_gauge",
        lon=137.179,
        lat=35.094,
        metadata={"caution_m": 4.5},
    )
    upsert_device(db, device_id="rain-1", tenant_id="toyota-city", device_type="rain_gauge", lon=137.36, lat=35.23)
    upsert_device(db, device_id="acme-soil-1", tenant_id="acme", device_type="soil_moisture", lon=137.5, lat=35.2)
    return {"gauge": "gauge-1", "rain": "rain-1", "partner_device": "acme-soil-1"}


# Fixtures that start or reach a real service (PostgreSQL, Mosquitto); a test needing none of them, directly or
# through another fixture, and not marked slow, is pure: `pytest -m "not services"` is the loop of seconds.
_SERVICE_FIXTURES = frozenset(
    {
        *("database_url", "broker", "settings", "db", "pool", "city", "own_broker", "fresh_dsn"),
        # Modules' own: a private TLS broker (ingest/test_mqtt_client.py), scratch databases of a storage mode
        # (mimamori/test_series_storage.py, mimamori/test_timescaledb_production.py).
        *("tls_broker", "scratch", "current", "tsdb"),
        *("nats_cluster", "nats_callout_cluster"),  # three-node NATS JetStream clusters (tests/nats_support.py)
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _SERVICE_FIXTURES or item.get_closest_marker("slow") or _module_uses_services(item):
            item.add_marker(pytest.mark.services)


def _module_uses_services(item: pytest.Item) -> bool:
    """Modules that start services themselves (a scratch database, a private broker, a `mimamori` process)."""
    return bool(getattr(item.module, "USES_SERVICES", False))
