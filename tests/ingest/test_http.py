"""HTTP push: the same contract, validation and exactly-once store as MQTT."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from devices.keys import Role, create_key
from ingest import CommittedReadings, MqttIngestor
from ingest.codecs import encode_native, encode_senml
from ingest.contract import RawReading
from tests.services import dsn_address, settings_via, wait_until

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
READINGS = [RawReading(T0 + timedelta(minutes=10 * i), "soil_moisture", 0.20 + i / 100, None) for i in range(6)]


@pytest.fixture
def api(settings, pool, city):
    committed = CommittedReadings()
    with TestClient(create_app(settings, pool, committed)) as client:
        client.committed = committed
        yield client


@pytest.fixture
def partner_key(db, city):
    return create_key(db, "acme", Role.partner, "acme gateway")[1]


def rows(db, device):
    return db.execute(
        "SELECT metric, time, value FROM readings WHERE device_id = %s ORDER BY 1, 2", (device,)
    ).fetchall()


def test_http_push_stores_the_same_rows_as_mqtt(settings, pool, db, broker, city, api, partner_key):
    db.execute("INSERT INTO devices (id, tenant_id, device_type) VALUES ('acme-soil-2', 'acme', 'soil_moisture')")
    answer = api.post(
        "/v1/telemetry",
        params={"device": "acme-soil-1"},
        content=encode_native(READINGS),
        headers={"X-API-Key": partner_key, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 6, "stored": 6, "duplicates": 0, "rejected": []}

    ingestor = MqttIngestor(settings, pool)
    ingestor.connect()
    stop = threading.Event()
    worker = threading.Thread(target=ingestor.run, args=(stop,), daemon=True)
    worker.start()
    try:
        client = broker.client()
        client.publish("mimamori/v1/acme/acme-soil-2/telemetry", encode_native(READINGS), qos=1).wait_for_publish(5)
        client.loop_stop()
        wait_until(lambda: len(rows(db, "acme-soil-2")) == 6, what="the MQTT copy")
    finally:
        stop.set()
        worker.join(timeout=30)
    assert rows(db, "acme-soil-1") == rows(db, "acme-soil-2")


def test_a_retried_push_is_stored_once_and_not_handed_on_twice(db, api, partner_key):
    seen: list = []
    api.committed.subscribe(seen.extend)
    body = encode_senml("urn:dev:acme-soil-1:", READINGS)
    headers = {"X-API-Key": partner_key, "Content-Type": "application/senml+json"}
    first = api.post("/v1/telemetry", params={"device": "acme-soil-1"}, content=body, headers=headers)
    again = api.post("/v1/telemetry", params={"device": "acme-soil-1"}, content=body, headers=headers)
    assert first.json()["stored"] == 6
    assert again.status_code == 200 and again.json() == {"received": 6, "stored": 0, "duplicates": 6, "rejected": []}
    assert len(rows(db, "acme-soil-1")) == 6
    assert len(seen) == 6


def test_bad_readings_are_reported_and_dead_lettered_beside_good_ones(db, api, partner_key):
    body = json.dumps(
        {"ts": T0.isoformat(), "values": {"soil_moisture": 7, "soil_temperature": 12.5, "water_level": 1}}
    ).encode()
    answer = api.post(
        "/v1/telemetry",
        params={"device": "acme-soil-1"},
        content=body,
        headers={"X-API-Key": partner_key, "Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    got = answer.json()
    assert got["stored"] == 1
    assert sorted(r["reason"] for r in got["rejected"]) == ["out_of_range", "unknown_metric"]
    assert all(r["count"] == 1 for r in got["rejected"])
    # One dead letter for the message, its payload once, both reasons summarised in it.
    rows = db.execute("SELECT reasons, payload, rejected FROM dead_letters WHERE source = 'http'").fetchall()
    assert len(rows) == 1
    reasons, payload, rejected = rows[0]
    assert set(reasons) == {"out_of_range", "unknown_metric"} and bytes(payload) == body and rejected == 2


def test_senml_soil_moisture_with_the_ratio_unit_is_stored_not_dead_lettered(db, api, partner_key):
    pack = [
        {"bn": "urn:dev:acme-soil-1:", "bt": T0.timestamp(), "bu": "/", "n": "soil_moisture", "v": 0.27},
        {"n": "soil_moisture", "t": 600, "v": 0.29},
    ]
    answer = api.post(
        "/v1/telemetry",
        params={"device": "acme-soil-1"},
        content=json.dumps(pack),
        headers={"X-API-Key": partner_key, "Content-Type": "application/senml+json"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 2, "stored": 2, "duplicates": 0, "rejected": []}
    stored = [(m, t, round(v, 9)) for m, t, v in rows(db, "acme-soil-1")]
    assert stored == [("soil_moisture", T0, 0.27), ("soil_moisture", T0 + timedelta(minutes=10), 0.29)]
    assert db.execute("SELECT count(*) FROM dead_letters").fetchone() == (0,)


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{oops", "application/json", "malformed"),
        (b'[{"n": "soil_moisture", "vs": "wet"}]', "application/senml+json", "non_numeric"),
    ],
)
def test_nothing_valid_is_422_with_reasons(db, api, partner_key, body, content_type, reason):
    answer = api.post(
        "/v1/telemetry",
        params={"device": "acme-soil-1"},
        content=body,
        headers={"X-API-Key": partner_key, "Content-Type": content_type},
    )
    assert answer.status_code == 422
    assert [r["reason"] for r in answer.json()["rejected"]] == [reason]


def test_an_oversized_body_is_refused_and_kept_as_evidence(settings, db, api, partner_key):
    body = b"[" + b" " * settings.ingest_max_payload_bytes * 2 + b"]"
    answer = api.post(
        "/v1/telemetry",
        params={"device": "acme-soil-1"},
        content=body,
        headers={"X-API-Key": partner_key, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["rejected"][0]["reason"] == "oversized"
    kept = db.execute("SELECT length(payload) FROM dead_letters WHERE reason = 'oversized'").fetchone()[0]
    assert kept == settings.ingest_max_payload_bytes


def test_a_partner_cannot_push_for_another_tenants_device_nor_learn_it_exists(db, api, partner_key):
    answer = api.post(
        "/v1/telemetry",
        params={"device": "gauge-1"},
        content=b'{"values": {"water_level": 9}}',
        headers={"X-API-Key": partner_key, "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["rejected"][0]["reason"] == "unknown_device"
    ghost = api.post(
        "/v1/telemetry",
        params={"device": "no-such-device"},
        content=b'{"values": {"water_level": 9}}',
        headers={"X-API-Key": partner_key, "Content-Type": "application/json"},
    )
    assert ghost.json()["rejected"][0]["reason"] == "unknown_device"
    assert rows(db, "gauge-1") == []
    assert db.execute("SELECT reason FROM dead_letters WHERE device_id = 'gauge-1'").fetchone() == ("tenant_mismatch",)


def test_push_needs_a_key_and_the_right_role(db, api):
    body = encode_native(READINGS)
    assert api.post("/v1/telemetry", params={"device": "acme-soil-1"}, content=body).status_code == 401
    viewer = create_key(db, "acme", Role.viewer)[1]
    assert (
        api.post(
            "/v1/telemetry", params={"device": "acme-soil-1"}, content=body, headers={"X-API-Key": viewer}
        ).status_code
        == 403
    )
    assert rows(db, "acme-soil-1") == []


def test_push_answers_503_while_the_database_is_away_and_stores_the_retry_once(settings, db, city, partner_key):
    from psycopg_pool import ConnectionPool

    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(*reversed(dsn_address(settings.dsn)))
    s = settings_via(settings, proxy.port, api_push_db_wait_s=1.0)
    dsn = s.dsn
    pool = ConnectionPool(dsn, min_size=1, max_size=4, open=True, timeout=1)
    body = encode_native(READINGS)
    headers = {"X-API-Key": partner_key, "Content-Type": "application/json"}
    try:
        with TestClient(create_app(s, pool)) as client:
            assert (
                client.post(
                    "/v1/telemetry", params={"device": "acme-soil-1"}, content=body, headers=headers
                ).status_code
                == 200
            )  # keys and registry are known now
            db.execute("DELETE FROM readings")
            proxy.cut()
            down = client.post("/v1/telemetry", params={"device": "acme-soil-1"}, content=body, headers=headers)
            assert down.status_code == 503, down.text
            assert "database" in down.text and partner_key not in down.text
            assert rows(db, "acme-soil-1") == []
            proxy.restore()
            back = wait_until(
                lambda: (
                    (
                        r := client.post(
                            "/v1/telemetry", params={"device": "acme-soil-1"}, content=body, headers=headers
                        )
                    ).status_code
                    == 200
                    and r
                ),
                timeout=30,
                what="the push to succeed again",
            )
    finally:
        pool.close()
        proxy.close()
    assert back.json()["stored"] == 6
    assert len(rows(db, "acme-soil-1")) == 6
