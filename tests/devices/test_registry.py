"""The device registry: validation against the catalogue, tenant-confined changes, retire, bulk import."""

from __future__ import annotations

import json
import stat
import subprocess
import sys

import pytest

from devices import load_catalogue
from devices.broker import BrokerAdmin
from devices.importer import parse_csv, parse_geojson
from devices.manage import (
    Caller,
    create_device,
    get_device,
    import_rows,
    provision_device,
    retire_device,
    update_device,
)
from devices.validation import DeviceSpec, device_problems
from mimamori.errors import Forbidden, NotFound, ValidationError
from tests.services import outside_environment

CATALOGUE = load_catalogue()
ADMIN = Caller("test-admin", None)
ACME = Caller("test-acme", "acme")


def gauge(**changes) -> DeviceSpec:
    base = DeviceSpec(
        "g-new",
        "toyota-city",
        "river_gauge",
        "new gauge",
        137.18,
        35.09,
        metadata={"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8, "river": "Yahagi"},
    )
    return base.with_changes(**changes)


# -- pure validation ------------------------------------------------------------------------------------------


def test_a_complete_river_gauge_is_valid():
    assert device_problems(gauge(), CATALOGUE) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"device_type": "lava_lamp"}, "unknown device type"),
        ({"id": "bad id/with slash"}, "id 'bad id/with slash'"),
        ({"tenant_id": "Not A Tenant"}, "not a valid tenant id"),
        ({"lon": None}, "both lon and lat"),
        ({"lat": 95.0}, "lat 95.0 is outside"),
        ({"expected_interval_s": 0}, "expected interval"),
        ({"metadata": {"caution_m": "high"}}, "metadata.caution_m must be a number"),
        ({"metadata": {"river": 12}}, "metadata.river must be a string"),
        ({"metadata": {"caution_m": 5.0, "evacuation_m": 4.0}}, "metadata.caution_m (5.0) must be below"),
    ],
)
def test_invalid_devices_are_explained(changes, problem):
    problems = device_problems(gauge(**changes), CATALOGUE)
    assert any(problem in p for p in problems), problems


def test_site_metadata_follows_the_type_and_free_notes_are_allowed():
    slope = DeviceSpec("ext-9", "toyota-city", "extensometer", metadata={"slope_id": 7, "note": "anything"})
    assert device_problems(slope, CATALOGUE) == ["metadata.slope_id must be a string for extensometer, got 7"]
    assert device_problems(slope.with_changes(metadata={"slope_id": "asahi-s1", "note": 1}), CATALOGUE) == []


# -- the registry in the database ------------------------------------------------------------------------------


def test_create_then_update_then_retire(db, city):
    created = create_device(db, ADMIN, gauge())
    assert (created.tenant_id, created.status, created.lon, created.lat) == ("toyota-city", "active", 137.18, 35.09)
    updated = update_device(db, ADMIN, "g-new", {"name": "renamed", "status": "maintenance"})
    assert (updated.name, updated.status, updated.metadata["danger_m"]) == ("renamed", "maintenance", 6.8)
    retired = retire_device(db, ADMIN, "g-new")
    assert retired.status == "retired"
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE target = 'g-new' ORDER BY id")]
    assert actions == ["device.create", "device.update", "device.retire"]


def test_a_taken_id_is_refused(db, city):
    with pytest.raises(ValidationError, match="already taken"):
        create_device(db, ADMIN, gauge(id="gauge-1"))


def test_a_device_cannot_move_between_tenants(db, city):
    with pytest.raises(ValidationError, match="cannot move"):
        update_device(db, ADMIN, "gauge-1", {"tenant_id": "acme"})


def test_an_update_is_validated_against_the_catalogue(db, city):
    with pytest.raises(ValidationError, match="must be below"):
        update_device(db, ADMIN, "gauge-1", {"metadata": {"caution_m": 5.0, "evacuation_m": 4.0}})


def test_a_partner_changes_only_its_own_tenant(db, city):
    with pytest.raises(Forbidden):
        create_device(db, ACME, gauge())
    create_device(db, ACME, gauge(id="acme-g", tenant_id="acme"))
    for action in (
        lambda: update_device(db, ACME, "gauge-1", {"name": "mine now"}),
        lambda: retire_device(db, ACME, "gauge-1"),
        lambda: get_device(db, ACME, "gauge-1"),
    ):
        with pytest.raises(NotFound, match="'gauge-1' not found"):
            action()
    assert get_device(db, ADMIN, "gauge-1").name == ""


def test_retiring_a_provisioned_device_revokes_its_broker_account(db, city, settings, broker):
    from tests.devices.test_broker_acl import connect, refused

    def admin():
        return BrokerAdmin(settings)

    creds = provision_device(db, ADMIN, "rain-1", admin)
    assert get_device(db, ADMIN, "rain-1").has_credentials
    live = connect(broker, creds.username, creds.password, "rain-1")
    assert not live.connack[0].is_failure
    retire_device(db, ADMIN, "rain-1", admin)
    assert live.disconnected.wait(5)
    again = connect(broker, creds.username, creds.password)
    assert refused(again)
    again.close()
    live.close()
    assert not get_device(db, ADMIN, "rain-1").has_credentials
    with pytest.raises(ValidationError, match="retired"):
        provision_device(db, ADMIN, "rain-1", admin)


def test_the_hub_stores_no_device_password(db, city, settings):
    creds = provision_device(db, ADMIN, "gauge-1", lambda: BrokerAdmin(settings))
    dump = "\n".join(
        str(row)
        for table in ("devices", "device_credentials", "audit_log")
        for row in db.execute(f"SELECT * FROM {table}")
    )
    assert "gauge-1" in dump and creds.password not in dump
    with BrokerAdmin(settings) as a:
        a.revoke_device("gauge-1")


# -- bulk import --------------------------------------------------------------------------------------------


def _csv(n: int, bad_every: int = 0, name_suffix: str = "") -> tuple[str, set[int]]:
    lines = ["id,tenant,type,name,lon,lat,interval_s,installed_on,meta.caution_m,meta.danger_m,meta.river"]
    bad: set[int] = set()
    for i in range(1, n + 1):
        row = [
            f"imp-{i:05d}",
            "toyota-city",
            "river_gauge",
            f"gauge {i}{name_suffix}",
            f"{137 + i / 100000:.6f}",
            f"{35 + i / 100000:.6f}",
            "600",
            "2025-04-01",
            "4.5",
            "6.8",
            "Yahagi",
        ]
        if bad_every and i % bad_every == 0:
            kind = (i // bad_every) % 4
            if kind == 0:
                row[2] = "no_such_type"
            elif kind == 1:
                row[5] = "north"
            elif kind == 2:
                row[8], row[9] = "7.0", "6.8"  # caution above danger
            else:
                row[1] = "nobody"
            bad.add(i)
        lines.append(",".join(row))
    return "\n".join(lines) + "\n", bad


def test_importing_10000_rows_reports_each_bad_row_and_a_second_run_changes_nothing(db, city):
    text, bad = _csv(10_000, bad_every=97)
    advanced: list[int] = []
    first = import_rows(db, ADMIN, parse_csv(text), progress=advanced.append)
    assert sum(advanced) == 10_000
    assert first.created == 10_000 - len(bad) and first.updated == 0
    assert [b.row for b in first.bad] == sorted(bad)
    reasons = {b.row: b.reason for b in first.bad}
    assert "unknown device type 'no_such_type'" in reasons[97 * 4]
    assert "lon and lat must be numbers" in reasons[97 * 1]
    assert "metadata.caution_m (7.0) must be below metadata.danger_m (6.8)" in reasons[97 * 2]
    assert "unknown tenant 'nobody'" in reasons[97 * 3]
    assert db.execute("SELECT count(*) FROM devices WHERE id LIKE 'imp-%'").fetchone()[0] == 10_000 - len(bad)
    stamp = db.execute("SELECT max(updated_at), count(*) FROM devices").fetchone()

    again = import_rows(db, ADMIN, parse_csv(text))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 10_000 - len(bad))
    assert len(again.bad) == len(bad)
    assert db.execute("SELECT max(updated_at), count(*) FROM devices").fetchone() == stamp


def test_a_reimport_updates_changed_rows_keeps_statuses_and_refuses_duplicates(db, city):
    text, _ = _csv(50)
    import_rows(db, ADMIN, parse_csv(text))
    retire_device(db, ADMIN, "imp-00007")
    changed = text.replace("gauge 3,", "gauge three,") + "imp-00001,toyota-city,rain_gauge,dup,,,600,,,,\n"
    report = import_rows(db, ADMIN, parse_csv(changed))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 49)
    assert [(b.row, b.reason) for b in report.bad] == [(51, "duplicate id (first on row 1)")]
    assert get_device(db, ADMIN, "imp-00003").name == "gauge three"
    assert get_device(db, ADMIN, "imp-00007").status == "retired"  # a row without status does not revive it


def test_a_partner_imports_only_into_its_own_tenant(db, city):
    rows = parse_csv(
        "id,tenant,type,lon,lat\n"
        "acme-new,acme,soil_moisture,137.5,35.2\n"
        "city-new,toyota-city,rain_gauge,137.5,35.2\n"
        "gauge-1,acme,river_gauge,137.5,35.2\n"
    )
    report = import_rows(db, ACME, rows)
    assert report.created == 1
    assert [(b.row, b.reason) for b in report.bad] == [
        (2, "a partner may import devices only into its own tenant"),
        (3, "device id is already taken by another tenant"),
    ]
    assert get_device(db, ADMIN, "gauge-1").tenant_id == "toyota-city"


def test_geojson_import(db, city):
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [137.31, 35.13]},
                "properties": {
                    "id": "geo-1",
                    "tenant": "toyota-city",
                    "type": "extensometer",
                    "metadata": {"slope_id": "asuke-s1"},
                    "status": "maintenance",
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
                "properties": {"id": "geo-2", "tenant": "toyota-city", "type": "extensometer"},
            },
        ],
    }
    report = import_rows(db, ADMIN, parse_geojson(json.dumps(doc)))
    assert report.created == 1 and [(b.row, b.reason) for b in report.bad] == [(2, "geometry must be a Point")]
    device = get_device(db, ADMIN, "geo-1")
    assert (device.lon, device.lat, device.status, device.metadata) == (
        137.31,
        35.13,
        "maintenance",
        {"slope_id": "asuke-s1"},
    )


# -- the CLI ----------------------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = outside_environment() | env | {"COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args], env=full, capture_output=True, text=True, timeout=60
    )


def test_cli_import_lists_bad_rows_and_exits_4(db, city, database_url, tmp_path):
    path = tmp_path / "devices.csv"
    path.write_text("id,tenant,type,lon,lat\ncli-1,toyota-city,rain_gauge,137.1,35.1\ncli-2,toyota-city,nope,,\n")
    result = _cli(
        "devices",
        "import",
        str(path),
        "--report",
        str(tmp_path / "bad.csv"),
        env={"MIMAMORI_DATABASE_URL": database_url},
    )
    assert result.returncode == 4, result.stderr
    assert "1 created, 0 updated, 0 unchanged, 1 bad row(s)" in result.stdout
    assert "unknown device type 'nope'" in result.stdout
    assert (tmp_path / "bad.csv").read_text().splitlines()[1] == "2,cli-2,unknown device type 'nope'"
    listed = _cli("devices", "list", "--type", "rain_gauge", "--json", env={"MIMAMORI_DATABASE_URL": database_url})
    assert {json.loads(line)["id"] for line in listed.stdout.splitlines()} == {"cli-1", "rain-1"}


def test_cli_provision_writes_a_private_file_and_rotate_replaces_it(db, city, database_url, settings, tmp_path):
    env = {
        "MIMAMORI_DATABASE_URL": database_url,
        "MIMAMORI_MQTT_URL": settings.mqtt_url,
        "MIMAMORI_MQTT_ADMIN_USERNAME": settings.mqtt_admin_username,
        "MIMAMORI_MQTT_ADMIN_PASSWORD": settings.mqtt_admin_password.get_secret_value(),
    }
    out = tmp_path / "creds.csv"
    result = _cli("devices", "provision", "acme-soil-1", "--output", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    password = out.read_text().splitlines()[1].split(",")[2]
    assert password not in result.stdout + result.stderr
    rotated = _cli("devices", "rotate", "acme-soil-1", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert "password=" in rotated.stdout and password not in rotated.stdout
    assert _cli("devices", "revoke", "acme-soil-1", env=env).returncode == 0


def test_cli_broker_init_writes_private_credentials_once(tmp_path):
    args = ("broker", "init", "--dir", str(tmp_path / "mosq"), "--port", "18999")
    first = _cli(*args, env={})
    assert first.returncode == 0, first.stderr
    creds = tmp_path / "mosq" / "hub-credentials.env"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    text = creds.read_text()
    password = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("MIMAMORI_MQTT_PASSWORD"))
    assert password not in first.stdout + first.stderr
    conf = (tmp_path / "mosq" / "mosquitto.conf").read_text()
    assert "listener 18999 127.0.0.1" in conf and "allow_anonymous false" in conf
    second = _cli(*args, env={})
    assert "kept" in second.stdout and creds.read_text() == text
