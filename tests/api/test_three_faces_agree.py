"""The same store through three faces: the native API, SensorThings and NGSI-LD answer the same readings, the same
hourly means and the same devices for a key, on the same data (issue 18: "a test compares them")."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.api.sta_support import POINTS, seed
from tests.geo_support import api_client, role_keys

DAY = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}
PAIRS = [("gauge-1", "water_level"), ("gauge-1", "battery"), ("rain-1", "rainfall"), ("acme-soil-1", "soil_moisture")]


@pytest.fixture
def faces(database_url, db, city):
    series = seed(db)
    keys = role_keys(db)
    with api_client(database_url) as client:
        yield client, keys, series


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _native(client, key, device: str, metric: str, **extra: str) -> list[tuple[datetime, float]]:
    r = client.get(f"/v1/devices/{device}/readings", params={"metric": metric, **DAY, **extra}, headers=key)
    assert r.status_code == 200, r.text
    return [(_t(p["time"]), p["value"]) for p in r.json()["series"][metric]]


def _sta(client, key, series_id: int) -> list[tuple[datetime, float]]:
    window = f"phenomenonTime ge {DAY['start']} and phenomenonTime lt {DAY['end']}"
    url: str | None = f"/sta/v1.1/Datastreams({series_id})/Observations"
    params: dict[str, str] | None = {"$filter": window, "$orderby": "phenomenonTime asc", "$top": "50"}
    out = []
    while url:  # through the nextLinks, as a client pages
        r = client.get(url, params=params, headers=key)
        assert r.status_code == 200, r.text
        body = r.json()
        out += [(_t(o["phenomenonTime"]), o["result"]) for o in body["value"]]
        url, params = body.get("@iot.nextLink"), None
    return out


def _ngsi(client, key, device: str, metric: str, **extra: str) -> dict:
    params = {"attrs": metric, "timerel": "between", "timeAt": DAY["start"], "endTimeAt": DAY["end"], **extra}
    r = client.get(f"/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Device:{device}", params=params, headers=key)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(("device", "metric"), PAIRS)
def test_the_raw_readings_agree(faces, device, metric):
    client, keys, series = faces
    admin = keys["admin"]
    native = _native(client, admin, device, metric)
    assert len(native) == POINTS
    assert _sta(client, admin, series[f"{device}/{metric}"]) == native
    instances = _ngsi(client, admin, device, metric)[metric]
    assert [(_t(i["observedAt"]), i["value"]) for i in instances] == native


@pytest.mark.parametrize(("device", "metric"), PAIRS)
def test_the_hourly_means_agree(faces, device, metric):
    client, keys, _ = faces
    admin = keys["admin"]
    native = _native(client, admin, device, metric, bucket="1h", agg="avg")
    assert len(native) == 24
    aggregated = _ngsi(client, admin, device, metric, options="aggregatedValues", aggrMethods="avg",
                       aggrPeriodDuration="PT1H")[metric]["avg"]  # fmt: skip
    assert [(_t(start), value) for value, start, _end in aggregated] == native


def test_a_partner_sees_the_same_devices_through_every_face(faces):
    client, keys, _ = faces
    for who in ("partner", "admin"):
        key = keys[who]
        listed = client.get("/v1/devices", params={"limit": "1000"}, headers=key).json()
        native = {d["id"] for d in listed}
        things = client.get("/sta/v1.1/Things", params={"$top": "1000"}, headers=key).json()["value"]
        entities = client.get("/ngsi-ld/v1/entities", params={"type": "Device", "limit": "1000"}, headers=key).json()
        assert {t["@iot.id"] for t in things} == native
        assert {e["id"].removeprefix("urn:ngsi-ld:Device:") for e in entities} == native
        if who == "partner":
            assert native and all(d.startswith("acme-") for d in native)
