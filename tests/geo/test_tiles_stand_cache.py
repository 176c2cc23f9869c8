"""Zoomed-out stand tiles draw compartments (林班); stand tiles are cached and the cache follows every change."""

from __future__ import annotations

import pytest
from shapely.geometry import box

from geo import Stand, upsert_stands
from tests.geo.test_tiles_mvt import decode, tile_of
from tests.geo_support import api_client, role_keys

# Compartment 7: two stands, the larger one スギ; compartment 8.1: one stand in protection forest.
STANDS = [
    Stand(
        stand_id="7-1", rinpan=7, shohan=1, geom=box(137.300, 35.130, 137.304, 35.134), species_1="スギ", area_ha=12.0
    ),
    Stand(
        stand_id="7-2", rinpan=7, shohan=2, geom=box(137.304, 35.130, 137.305, 35.134), species_1="ヒノキ", area_ha=3.0
    ),
    Stand(
        stand_id="8.1-1",
        rinpan=8,
        rinpan_branch=1,
        shohan=1,
        geom=box(137.310, 35.130, 137.312, 35.132),
        species_1="広葉樹",
        area_ha=4.0,
        protection_forest=("土砂流出防備保安林",),
    ),
]


@pytest.fixture
def forest(db, city):
    db.execute("TRUNCATE stands")
    upsert_stands(db, STANDS, source_file="test", source_crs="EPSG:4326")


@pytest.fixture
def keys(db, city):
    return role_keys(db)


@pytest.fixture
def client(database_url, forest):
    with api_client(database_url) as c:
        yield c


def test_zoomed_out_tiles_draw_one_feature_per_compartment(client, keys, tmp_path):
    z, x, y = tile_of(137.305, 35.132, 10)
    r = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"])
    assert r.status_code == 200
    features = sorted(decode(r.content, "stands", z, x, y, tmp_path), key=lambda f: f["compartment"])
    assert [(f["compartment"], f["stands"], f["area_ha"], f["species_1"], f["protected"]) for f in features] == [
        ("7", 2, 15.0, "スギ", False),
        ("8.1", 1, 4.0, "広葉樹", True),
    ]


def test_from_the_detail_zoom_tiles_draw_each_stand(client, keys, tmp_path):
    z, x, y = tile_of(137.305, 35.132, 12)
    r = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["viewer"])
    assert sorted(f["stand_id"] for f in decode(r.content, "stands", z, x, y, tmp_path)) == ["7-1", "7-2", "8.1-1"]


def test_the_detail_zoom_is_a_setting(database_url, forest, keys, tmp_path):
    z, x, y = tile_of(137.305, 35.132, 10)
    with api_client(database_url, tiles_stands_detail_zoom=10) as client:
        r = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["viewer"])
    assert len(decode(r.content, "stands", z, x, y, tmp_path)) == 3


def test_a_cached_tile_is_served_until_the_stands_change(client, keys, db, tmp_path):
    z, x, y = tile_of(137.302, 35.132, 14)
    first = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"])
    species = {f["stand_id"]: f["species_1"] for f in decode(first.content, "stands", z, x, y, tmp_path)}
    assert species == {"7-1": "スギ", "7-2": "ヒノキ"}
    # The answer comes from the cache: a marked body stored there is what the next caller gets.
    stored = db.execute("UPDATE tile_cache SET body = 'cached' WHERE z = %s AND x = %s AND y = %s", (z, x, y))
    assert stored.rowcount == 1
    assert client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"]).content == b"cached"

    upsert_stands(
        db, [Stand(**{**STANDS[0].__dict__, "species_1": "アカマツ"})], source_file="t", source_crs="EPSG:4326"
    )
    again = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"])
    species = {f["stand_id"]: f["species_1"] for f in decode(again.content, "stands", z, x, y, tmp_path)}
    assert species == {"7-1": "アカマツ", "7-2": "ヒノキ"}


def test_compartments_follow_updates_and_deletes(client, keys, db, tmp_path):
    z, x, y = tile_of(137.305, 35.132, 10)
    client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"])  # cached now
    db.execute("DELETE FROM stands WHERE stand_id = '7-1'")
    r = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"])
    features = sorted(decode(r.content, "stands", z, x, y, tmp_path), key=lambda f: f["compartment"])
    assert [(f["compartment"], f["stands"], f["species_1"]) for f in features] == [
        ("7", 1, "ヒノキ"),
        ("8.1", 1, "広葉樹"),
    ]


def test_emptied_stands_give_empty_tiles(client, keys, db):
    z, x, y = tile_of(137.305, 35.132, 10)
    assert client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"]).status_code == 200
    db.execute("TRUNCATE stands")
    assert client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"]).status_code == 204
    assert db.execute("SELECT count(*) FROM stand_compartments").fetchone()[0] == 0


def test_a_tile_stored_under_an_older_version_is_not_served(client, keys, db, tmp_path):
    # What a render racing an import leaves behind: a tile of the old stands under the old version.
    z, x, y = tile_of(137.302, 35.132, 14)
    db.execute(
        "INSERT INTO tile_cache (layer, version, z, x, y, body)"
        " SELECT 'stands', version - 1, %s, %s, %s, 'stale' FROM tile_layer_versions WHERE layer = 'stands'",
        (z, x, y),
    )
    r = client.get(f"/v1/tiles/stands/{z}/{x}/{y}.mvt", headers=keys["forestry"])
    assert sorted(f["stand_id"] for f in decode(r.content, "stands", z, x, y, tmp_path)) == ["7-1", "7-2"]
