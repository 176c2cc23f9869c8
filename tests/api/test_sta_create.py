"""``POST /sta/v1.1/Observations``: partners create Observations through the same validation and exactly-once store
as MQTT and HTTP push."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from api.app import create_app
from devices.sta import ObservationId
from ingest import CommittedReadings
from tests.api.sta_support import RECENT, iso, seed
from tests.geo_support import api_client, geo_settings, role_keys

STA = "/sta/v1.1"


@pytest.fixture
def series(db, city):
    return seed(db)


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, series):
    with api_client(database_url) as c:
        yield c


def stored(db, series_id):
    return db.execute(
        "SELECT time, value FROM series_readings WHERE series_id = %s AND time >= %s ORDER BY time",
        (series_id, RECENT - timedelta(days=1)),
    ).fetchall()


def test_a_partner_posts_an_observation_and_a_repeat_is_stored_once(client, keys, series, db):
    ds = series["acme-soil-1/soil_moisture"]
    body = {"phenomenonTime": iso(RECENT), "result": 0.42, "Datastream": {"@iot.id": ds}}
    first = client.post(STA + "/Observations", json=body, headers=keys["partner"])
    assert first.status_code == 201, first.text
    assert first.headers["Location"].endswith(f"/Observations('{ObservationId(ds, RECENT)}')")
    assert first.json()["result"] == 0.42
    again = client.post(STA + "/Observations", json=body, headers=keys["partner"])
    assert again.status_code == 201
    assert again.headers["Location"] == first.headers["Location"]
    assert len(stored(db, ds)) == 1
    fetched = client.get(first.headers["Location"], headers=keys["partner"]).json()
    assert fetched["phenomenonTime"] == iso(RECENT)


def test_posting_into_a_datastream_by_its_path(client, keys, series, db):
    ds = series["acme-soil-1/soil_moisture"]
    answer = client.post(
        STA + f"/Datastreams({ds})/Observations",
        json={
            "phenomenonTime": (RECENT + timedelta(minutes=10)).isoformat().replace("+00:00", "+09:00"),
            "result": 0.2,
        },
        headers=keys["partner"],
    )
    assert answer.status_code == 201, answer.text
    assert db.execute(
        "SELECT value FROM series_readings WHERE series_id = %s AND time = %s",
        (ds, RECENT + timedelta(minutes=10) - timedelta(hours=9)),
    ).fetchone() == (0.2,)


def test_a_partner_cannot_post_into_another_tenants_datastream(client, keys, series, db):
    ds = series["gauge-1/water_level"]
    body = {"phenomenonTime": iso(RECENT), "result": 1.0, "Datastream": {"@iot.id": ds}}
    answer = client.post(STA + "/Observations", json=body, headers=keys["partner"])
    assert answer.status_code == 404
    assert answer.json()["type"] == "error"
    assert stored(db, ds) == []


def test_viewers_may_not_post(client, keys, series):
    body = {"result": 1.0, "Datastream": {"@iot.id": series["gauge-1/water_level"]}}
    assert client.post(STA + "/Observations", json=body, headers=keys["viewer"]).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"phenomenonTime": iso(RECENT), "result": 5.0},  # out of the catalogue's range (0..1)
        {"phenomenonTime": iso(RECENT), "result": "wet"},
        {"phenomenonTime": "yesterday", "result": 0.3},
        {"phenomenonTime": iso(RECENT) + "/" + iso(RECENT + timedelta(hours=1)), "result": 0.3},
        {"phenomenonTime": iso(RECENT), "result": 0.3, "colour": "red"},
        [1, 2],
    ],
)
def test_bad_observations_are_400s_and_store_nothing(client, keys, series, db, body):
    ds = series["acme-soil-1/soil_moisture"]
    answer = client.post(STA + f"/Datastreams({ds})/Observations", json=body, headers=keys["partner"])
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"]
    assert stored(db, ds) == []


def test_a_post_without_a_datastream_is_a_400(client, keys):
    answer = client.post(STA + "/Observations", json={"result": 0.3}, headers=keys["partner"])
    assert answer.status_code == 400


def test_a_posted_observation_is_handed_to_alerts_once(database_url, db, city, keys):
    """The committed-readings port (where the alert engine listens) hears a posted Observation once, not its repeat."""
    series = seed(db)
    committed = CommittedReadings()
    heard = []
    committed.subscribe(heard.extend)
    ds = series["acme-soil-1/soil_moisture"]
    body = {"phenomenonTime": iso(RECENT + timedelta(minutes=20)), "result": 0.5, "Datastream": {"@iot.id": ds}}
    pool = ConnectionPool(database_url, min_size=1, max_size=4, open=True)
    try:
        with TestClient(create_app(geo_settings(database_url), pool, committed)) as api:
            for _ in range(2):
                assert api.post(STA + "/Observations", json=body, headers=keys["partner"]).status_code == 201
    finally:
        pool.close()
    assert [(r.device_id, r.metric, r.value) for r in heard] == [("acme-soil-1", "soil_moisture", 0.5)]
