"""Helpers shared by the geo-API tests: an app on the run's database and one API key per role."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from devices.keys import Role, create_key
from devkit.api_server import ApiServer
from mimamori.settings import Settings
from tests.services import TEST_TIMESCALEDB


def geo_settings(database_url: str, **overrides: object) -> Settings:
    return Settings(database_url=database_url, timescaledb=TEST_TIMESCALEDB, **overrides)  # type: ignore[arg-type]


@contextmanager
def api_client(database_url: str, **overrides: object) -> Iterator[TestClient]:
    """A TestClient of a fresh app with its own small pool (the caller's `db` fixture has emptied the tables)."""
    pool = ConnectionPool(database_url, min_size=1, max_size=4, open=True)
    try:
        with TestClient(create_app(geo_settings(database_url, **overrides), pool)) as client:
            yield client
    finally:
        pool.close()


def role_keys(conn: psycopg.Connection) -> dict[str, dict[str, str]]:
    """Headers for a key of every city role (tenant toyota-city) and a partner key of tenant acme."""
    headers = {}
    for role in Role:
        tenant = "acme" if role is Role.partner else "toyota-city"
        _, secret = create_key(conn, tenant, role, f"test {role}")
        headers[str(role)] = {"X-API-Key": secret}
    return headers


@contextmanager
def served(database_url: str) -> Iterator[str]:
    """The app on a real port (uvicorn), as QGIS, ogrinfo or a browser reach it; its URL."""
    pool = ConnectionPool(database_url, min_size=1, max_size=4, open=True)
    try:
        with ApiServer(create_app(geo_settings(database_url), pool)) as server:
            yield server.url
    finally:
        pool.close()
