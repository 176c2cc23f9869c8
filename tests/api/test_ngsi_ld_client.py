"""The hub read by an NGSI-LD client from PyPI: ngsildclient (Orange's, Apache-2.0), the Python client FIWARE's
tutorials point to, over a real port. It reads entities, counts and pages them, runs geo-queries and reads temporal
values, raw and aggregated, as it would from Orion-LD, Scorpio or Stellio."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from ngsildclient import Client
from ngsildclient.api.constants import AggrMethod
from ngsildclient.api.helper.temporal import TemporalQuery
from requests.auth import AuthBase

from tests.api.test_ngsi_ld_entities import T, world  # noqa: F401  (the same seeded city)
from tests.geo_support import role_keys, served


class _ApiKey(AuthBase):
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, r):
        r.headers["X-API-Key"] = self.secret
        return r


@pytest.fixture
def ngsi(database_url, db, world):  # noqa: F811
    key = role_keys(db)["viewer"]["X-API-Key"]
    with served(database_url) as url:
        parts = urlsplit(url)
        client = Client(hostname=parts.hostname, port=parts.port, custom_auth=_ApiKey(key), verbose=False)
        try:
            yield client
        finally:
            client.close()


def test_the_client_reads_one_device_with_its_latest_value(ngsi):
    gauge = ngsi.get("urn:ngsi-ld:Device:gauge-1")
    assert gauge.id == "urn:ngsi-ld:Device:gauge-1"
    assert gauge.type == "Device"
    assert gauge["water_level.value"] == 3.42
    assert gauge["water_level.unitCode"] == "MTR"
    assert gauge["location.value.coordinates"] == [137.179, 35.094]


def test_the_client_counts_pages_and_queries_with_q(ngsi):
    assert ngsi.count(type="Device") == 3
    assert {e.id for e in ngsi.query(type="Device", limit=1)} == {
        "urn:ngsi-ld:Device:gauge-1",
        "urn:ngsi-ld:Device:rain-1",
        "urn:ngsi-ld:Device:acme-soil-1",
    }
    [gauge] = ngsi.query(type="Device", q='deviceCategory=="river_gauge"')
    assert gauge.id == "urn:ngsi-ld:Device:gauge-1"


def test_the_client_runs_a_geo_query(ngsi):
    near = ngsi.query(type="Device", gq="georel=near;maxDistance==2000&geometry=Point&coordinates=[137.18,35.095]")
    assert [e.id for e in near] == ["urn:ngsi-ld:Device:gauge-1"]
    [stand] = ngsi.query(type="ForestStand", gq="georel=intersects&geometry=Point&coordinates=[137.405,35.205]")
    assert stand.id == "urn:ngsi-ld:ForestStand:7-2"


def test_the_client_reads_temporal_values_raw_and_aggregated(ngsi):
    window = TemporalQuery().between(T, T + timedelta(hours=2))
    [troe] = ngsi.temporal.query(type="Device", attrs=["water_level"], tq=window, q='deviceCategory=="river_gauge"')
    assert troe["id"] == "urn:ngsi-ld:Device:gauge-1"
    assert [v for v, _ in troe["water_level"]["values"]] == [float(1 + i) for i in range(12)]

    result = ngsi.temporal.aggregate(
        type="Device",
        attrs=["water_level"],
        q='deviceCategory=="river_gauge"',
        tq=window,
        methods=[AggrMethod.AVERAGE, AggrMethod.MAXIMUM],
        period=timedelta(hours=1),
    )
    [aggregated] = result.result
    assert [v for v, _, _ in aggregated["water_level"]["avg"]] == [3.5, 9.5]
    assert [v for v, _, _ in aggregated["water_level"]["max"]] == [6.0, 12.0]
    assert datetime.fromisoformat(aggregated["water_level"]["avg"][0][1]) == T.astimezone(UTC)
