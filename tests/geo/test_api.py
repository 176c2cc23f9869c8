"""Forestry endpoints: stands by attributes and areas, the stand at a point, sensors inside and their summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import box

from devices import upsert_device
from geo import Stand, upsert_area, upsert_stands
from tests.geo_support import api_client, role_keys

T = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


@pytest.fixture
def forest(db, city):
    db.execute("TRUNCATE stands, areas")
    upsert_stands(
        db,
        [
            Stand(
                stand_id="5-1",
                rinpan=5,
                shohan=1,
                geom=box(137.30, 35.13, 137.31, 35.14),
                species_1="スギ",
                age_1=45,
                age_reference_year=2024,
                ownership="private",
                protection_forest=("水源かん養保安林",),
            ),
            Stand(
                stand_id="5-2",
                rinpan=5,
                shohan=2,
                geom=box(137.31, 35.13, 137.32, 35.14),
                species_1="ヒノキ",
                age_1=70,
                age_reference_year=2024,
                ownership="municipal",
                attributes={"備考": "memo", "調査年": 2023},
            ),
            # a species geo/species.yaml does not list: its register value still finds it
            Stand(stand_id="6-1", rinpan=6, shohan=1, geom=box(137.40, 35.13, 137.41, 35.14), species_1="イチイガシ"),
        ],
        source_file="test",
        source_crs="EPSG:4326",
    )
    upsert_device(
        db, device_id="soil-5-1", tenant_id="toyota-city", device_type="soil_moisture", lon=137.305, lat=35.135
    )
    upsert_area(db, area_id="slope-a", kind="slope", name="A", geometry=box(137.315, 35.135, 137.33, 35.15))
    db.execute(
        "INSERT INTO readings (time, device_id, metric, value) VALUES (%(t0)s, 'soil-5-1', 'soil_moisture', 0.2),"
        " (%(t1)s, 'soil-5-1', 'soil_moisture', 0.4)",
        {"t0": T - timedelta(hours=2), "t1": T - timedelta(hours=1)},
    )
    db.execute(
        "INSERT INTO latest_readings (device_id, metric, time, value) VALUES ('soil-5-1', 'soil_moisture', %s, 0.4)",
        (T - timedelta(hours=1),),
    )


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, forest):
    with api_client(database_url) as c:
        yield c


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [f["id"] for f in response.json()["features"]]


def test_stands_are_searched_by_attributes(client, keys):
    h = keys["forestry"]
    assert ids(client.get("/v1/stands", params={"species": "ヒノキ"}, headers=h)) == ["5-2"]
    assert ids(client.get("/v1/stands", params={"age_min": 60, "as_of_year": 2024}, headers=h)) == ["5-2"]
    assert ids(client.get("/v1/stands", params={"protection": "*"}, headers=h)) == ["5-1"]
    assert ids(client.get("/v1/stands", params={"ownership": "municipal"}, headers=h)) == ["5-2"]
    assert ids(client.get("/v1/stands", params={"bbox": "137.301,35.131,137.305,35.135"}, headers=h)) == ["5-1"]
    assert ids(client.get("/v1/stands", params={"area": "slope-a"}, headers=h)) == ["5-2"]
    assert client.get("/v1/stands", params={"bbox": "137.4,35,137.3,35.2"}, headers=h).status_code == 422
    assert client.get("/v1/stands", params={"area": "nope"}, headers=h).status_code == 404


@pytest.mark.parametrize(
    "name", ["ヒノキ", "檜", "hinoki", "Hinoki", "ｈｉｎｏｋｉ", "Japanese cypress", "japanese-cypress", " HINOKI "]
)
def test_a_species_is_found_by_its_register_romaji_or_english_name(client, keys, name):
    assert ids(client.get("/v1/stands", params={"species": name}, headers=keys["forestry"])) == ["5-2"]


def test_sugi_finds_the_stands_the_register_writes_as_スギ(client, keys):
    # issue 17, item 7c: this answered an empty collection
    assert ids(client.get("/v1/stands", params={"species": "sugi"}, headers=keys["forestry"])) == ["5-1"]


def test_a_register_value_outside_the_names_table_is_still_searchable(client, keys):
    assert ids(client.get("/v1/stands", params={"species": "イチイガシ"}, headers=keys["forestry"])) == ["6-1"]


def test_an_unknown_species_is_a_422_that_lists_the_accepted_names(client, keys):
    r = client.get("/v1/stands", params={"species": "oak tree"}, headers=keys["forestry"])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "unknown species 'oak tree'" in detail
    assert "スギ (杉, sugi, japanese cedar" in detail and "hinoki" in detail
    assert "also in the register: イチイガシ" in detail


def test_every_stand_output_gives_attributes_as_an_object(client, keys):
    h = keys["forestry"]
    features = [
        *client.get("/v1/stands", params={"species": "hinoki"}, headers=h).json()["features"],
        *client.get("/v1/stands", params={"area": "slope-a"}, headers=h).json()["features"],
        client.get("/v1/stands/5-2", headers=h).json(),
        client.get("/v1/stands/at", params={"lon": 137.315, "lat": 35.135}, headers=h).json(),
        *client.get("/ogc/collections/stands/items", params={"species_1": "ヒノキ"}, headers=h).json()["features"],
        client.get("/ogc/collections/stands/items/5-2", headers=h).json(),
    ]
    assert len(features) == 6
    for feature in features:
        assert feature["id"] == "5-2"
        assert feature["properties"]["attributes"] == {"備考": "memo", "調査年": 2023}
    first = client.get("/v1/stands", params={"species": "sugi"}, headers=h).json()["features"][0]
    assert first["properties"]["attributes"] == {}


def test_the_stand_at_a_point(client, keys):
    r = client.get("/v1/stands/at", params={"lon": 137.315, "lat": 35.135}, headers=keys["viewer"])
    assert r.json()["id"] == "5-2"
    assert r.json()["properties"]["species_1"] == "ヒノキ"
    assert client.get("/v1/stands/at", params={"lon": 136, "lat": 35}, headers=keys["viewer"]).status_code == 404
    assert client.get("/v1/stands/at", params={"lon": 200, "lat": 35}, headers=keys["viewer"]).status_code == 422


def test_sensors_inside_a_stand_come_with_their_latest_readings(client, keys):
    sensors = client.get("/v1/stands/5-1/sensors", headers=keys["forestry"]).json()
    assert [s["id"] for s in sensors] == ["soil-5-1"]
    assert sensors[0]["latest"]["soil_moisture"]["value"] == 0.4
    assert client.get("/v1/stands/5-2/sensors", headers=keys["forestry"]).json() == []
    assert client.get("/v1/stands/9-9/sensors", headers=keys["forestry"]).status_code == 404


def test_a_stand_summary_aggregates_its_sensors_readings(client, keys):
    params = {"start": (T - timedelta(days=1)).isoformat(), "end": T.isoformat()}
    body = client.get("/v1/stands/5-1/summary", params=params, headers=keys["forestry"]).json()
    [soil] = body["metrics"]
    assert (soil["metric"], soil["sensors"], soil["count"], soil["last"]) == ("soil_moisture", 1, 2, 0.4)
    assert soil["avg"] == pytest.approx(0.3)


def test_partners_may_not_read_the_forest_register(client, keys):
    assert client.get("/v1/stands", headers=keys["partner"]).status_code == 403
    assert client.get("/v1/stands/5-1", headers=keys["partner"]).status_code == 403
    assert client.get("/v1/stands/5-1").status_code == 401
    assert client.get("/v1/stands/5-1", headers=keys["viewer"]).status_code == 200
