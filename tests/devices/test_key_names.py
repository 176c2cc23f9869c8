"""Keys held by people carry the person's name (alert history shows it): `mimamori keys create` and
`POST /v1/keys` refuse an admin, operator or forestry key without one; viewer and partner keys may go unnamed."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from api.app import create_app
from devices.keys import Role, create_key
from tests.alerts_helpers import ApiServer


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIMAMORI_")}
    env |= {"MIMAMORI_DATABASE_URL": database_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "keys", "create", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _names(db) -> dict[str, str]:
    return {r[0]: r[1] for r in db.execute("SELECT role, name FROM api_keys WHERE tenant_id = 'toyota-city'")}


def test_the_cli_wants_a_persons_name_for_an_operator_key(db, city, database_url):
    db.execute("DELETE FROM api_keys")
    refused = _cli("--tenant", "toyota-city", "--role", "operator", database_url=database_url)
    assert refused.returncode != 0
    assert "held by a person" in refused.stdout + refused.stderr
    assert _names(db) == {}
    blank = _cli("--tenant", "toyota-city", "--role", "admin", "--name", "   ", database_url=database_url)
    assert blank.returncode != 0 and _names(db) == {}
    made = _cli("--tenant", "toyota-city", "--role", "operator", "--name", " Sato\tHanako ", database_url=database_url)
    assert made.returncode == 0, made.stderr
    screen = _cli("--tenant", "toyota-city", "--role", "viewer", database_url=database_url)
    assert screen.returncode == 0, screen.stderr
    assert _names(db) == {"operator": "Sato Hanako", "viewer": ""}


@pytest.mark.parametrize(
    ("role", "name", "status"),
    [
        ("operator", "", 422),
        ("forestry", " ", 422),
        ("admin", "Ito Ken", 201),
        ("viewer", "", 201),
        ("partner", "", 201),
    ],
)
def test_the_api_wants_a_persons_name_for_a_person_key(settings, pool, db, city, role, name, status):
    admin = create_key(db, "toyota-city", Role.admin, "Mimamori admin")[1]
    with ApiServer(create_app(settings, pool)) as api:
        answer = httpx.post(
            api.url + "/v1/keys",
            headers={"X-API-Key": admin},
            json={"tenant_id": "toyota-city", "role": role, "name": name},
            timeout=10,
        )
    assert answer.status_code == status, answer.text
    if status == 422:
        assert "held by a person" in answer.text
