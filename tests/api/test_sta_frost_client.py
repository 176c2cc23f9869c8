"""Mimamori's STA face as FROST's own Python client (frost-sta-client) sees it, over a real port: list Things,
expand Datastreams, filter Observations by time and result, page through them, post an Observation as a partner."""

from __future__ import annotations

import frost_sta_client as fsc
import pytest

from devices.sta import ObservationId
from tests.api.sta_support import POINTS, RECENT, iso, seed
from tests.geo_support import role_keys, served


@pytest.fixture
def series(db, city):
    return seed(db)


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def url(database_url, series):
    with served(database_url) as base:
        yield base + "/sta/v1.1"


def service(url, key):
    # QGIS-style Basic authentication, the API key as the password: the only scheme the client offers.
    return fsc.SensorThingsService(url, auth_handler=fsc.AuthHandler(username="sta", password=key["X-API-Key"]))


def test_the_client_lists_things_and_expands_their_datastreams(url, keys):
    things = service(url, keys["viewer"]).things().query().expand("Datastreams").list()
    by_id = {t.id: t for t in things}
    assert set(by_id) == {"gauge-1", "rain-1", "acme-soil-1"}
    streams = sorted(d.name for d in by_id["gauge-1"].datastreams)
    assert streams == ["gauge-1 battery", "gauge-1 water_level"]
    unit = next(d for d in by_id["gauge-1"].datastreams if d.name.endswith("water_level")).unit_of_measurement
    assert unit.symbol == "m"


def test_the_client_filters_observations_by_time_and_result(url, keys, series):
    sta = service(url, keys["viewer"])
    ds = sta.datastreams().find(series["gauge-1/water_level"])
    found = (
        ds.get_observations()
        .query()
        .filter("phenomenonTime ge 2026-11-01T12:00:00Z and result gt 2")
        .orderby("phenomenonTime", "ASC")
        .list()
    )
    results = [o.result for o in found]
    assert results and all(r > 2 for r in results)
    assert len(results) == len([i for i in range(72, POINTS) if 1 + i / 100 > 2])


def test_the_client_pages_through_every_observation(url, keys, series):
    sta = service(url, keys["viewer"])
    ds = sta.datastreams().find(series["rain-1/rainfall"])
    observations = ds.get_observations().query().top(25).list()
    seen = [o.id for o in observations]  # iterating follows @iot.nextLink
    assert len(seen) == POINTS and len(set(seen)) == POINTS


def test_a_partner_posts_an_observation_with_the_client(url, keys, series, db):
    sta = service(url, keys["partner"])
    ds = sta.datastreams().find(series["acme-soil-1/soil_moisture"])
    observation = fsc.Observation(result=0.37, phenomenon_time=iso(RECENT), datastream=ds)
    sta.create(observation)
    assert observation.id == str(ObservationId(series["acme-soil-1/soil_moisture"], RECENT))
    assert sta.observations().find(observation.id).result == 0.37
    sta.create(fsc.Observation(result=0.37, phenomenon_time=iso(RECENT), datastream=ds))
    count = db.execute(
        "SELECT count(*) FROM series_readings WHERE series_id = %s AND time = %s",
        (series["acme-soil-1/soil_moisture"], RECENT),
    ).fetchone()[0]
    assert count == 1
