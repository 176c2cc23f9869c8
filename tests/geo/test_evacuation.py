"""Evacuation sites in PostGIS: import, nearest sites against pyproj's geodesic, hazard filters, upserts, the
export → import round trip, and the `mimamori evacuation` command through its installed entry point."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from pyproj import Geod

from geo.evacuation import (
    count_sites,
    export_sites,
    import_sites,
    load_sites,
    nearest_sites,
    site_feature,
    sites_for_hazard,
    upsert_sites,
)
from geo.evacuation_format import HAZARDS, EvacuationColumns, EvacuationSite, parse_csv, write_csv
from geo.geometry import BBox
from mimamori.errors import ValidationError
from tests.services import TEST_TIMESCALEDB

SAMPLES = Path(__file__).resolve().parents[2] / "geo" / "samples"
EMERGENCY = SAMPLES / "toyota_emergency_sites.sample.csv"
SHELTERS = SAMPLES / "toyota_shelters.sample.csv"
WGS84 = Geod(ellps="WGS84")
HEADERS = EvacuationColumns.load().kinds["emergency_site"].headers


@pytest.fixture
def sites_db(db: psycopg.Connection) -> psycopg.Connection:
    db.execute("TRUNCATE evacuation_sites")
    return db


def random_sites(count: int, seed: int) -> list[EvacuationSite]:
    """Sites scattered over Toyota City (918 km²), each with a random set of hazards."""
    rng = random.Random(seed)
    kinds = ("emergency_site", "shelter")
    sites = []
    for i in range(count):
        kind = kinds[i % 2]
        sites.append(
            EvacuationSite(
                id=f"232114-{kind}-{i}",
                kind=kind,
                name=f"site {i}",
                lon=rng.uniform(137.05, 137.55),
                lat=rng.uniform(35.00, 35.26),
                municipality_code="232114",
                site_no=str(i),
                hazards=tuple(h for h in HAZARDS if rng.random() < 0.4),
                capacity=rng.randint(50, 2000),
                headers=HEADERS,
            )
        )
    return sites


def geodesic_order(sites: list[EvacuationSite], lon: float, lat: float) -> list[tuple[str, float]]:
    distances = [(s.id, WGS84.inv(lon, lat, s.lon, s.lat)[2]) for s in sites]
    return sorted(distances, key=lambda d: (d[1], d[0]))


def test_the_sample_lists_import_and_their_features_are_geojson(sites_db):
    emergency = import_sites(sites_db, EMERGENCY)
    shelters = import_sites(sites_db, SHELTERS)
    assert (emergency.kind, emergency.imported, emergency.rejections) == ("emergency_site", 10, [])
    assert (shelters.kind, shelters.imported) == ("shelter", 5)
    assert count_sites(sites_db) == 15 and count_sites(sites_db, "shelter") == 5
    feature = site_feature(sites_db, "232114-emergency_site-2")
    assert feature is not None
    assert feature["type"] == "Feature" and feature["geometry"] == {"type": "Point", "coordinates": [137.1707, 35.0846]}
    assert feature["properties"]["name"] == "豊田スタジアム"
    assert feature["properties"]["hazards"] == ["earthquake", "large_fire"]
    assert "SAMPLE DATA" in feature["properties"]["attributes"]["備考"]
    row = sites_db.execute(
        "SELECT source_file, ST_SRID(geom), kind FROM evacuation_sites WHERE id = '232114-shelter-1'"
    ).fetchone()
    assert row == ("toyota_shelters.sample.csv", 4326, "shelter")
    assert site_feature(sites_db, "nope") is None


@pytest.mark.parametrize(("lon", "lat"), [(137.156, 35.082), (137.42, 35.236), (137.30, 35.10), (137.6, 35.3)])
def test_nearest_sites_are_in_the_order_of_geodesic_distance(sites_db, lon: float, lat: float):
    sites = random_sites(400, seed=232114)
    assert upsert_sites(sites_db, sites, source_file="random") == 400
    nearest = nearest_sites(sites_db, lon, lat, limit=25)
    expected = geodesic_order(sites, lon, lat)[:25]
    assert [f["id"] for f in nearest] == [i for i, _ in expected]
    for feature, (_, metres) in zip(nearest, expected, strict=True):
        assert feature["properties"]["distance_m"] == pytest.approx(metres, abs=0.1)


def test_nearest_sites_of_a_kind_for_a_hazard(sites_db):
    sites = random_sites(300, seed=7)
    upsert_sites(sites_db, sites, source_file="random")
    lon, lat = 137.179, 35.094  # 高橋町
    for hazard in HAZARDS:
        chosen = [s for s in sites if hazard in s.hazards and s.kind == "shelter"]
        got = nearest_sites(sites_db, lon, lat, limit=10, kind="shelter", hazard=hazard)
        assert [f["id"] for f in got] == [i for i, _ in geodesic_order(chosen, lon, lat)[:10]]
        assert all(hazard in f["properties"]["hazards"] and f["properties"]["kind"] == "shelter" for f in got)


def test_nearest_sites_uses_the_geography_index(sites_db):
    upsert_sites(sites_db, random_sites(2000, seed=3), source_file="random")
    sites_db.execute("ANALYZE evacuation_sites")
    plan = "\n".join(
        r[0]
        for r in sites_db.execute(
            "EXPLAIN SELECT id FROM evacuation_sites"
            " ORDER BY geom::geography <-> ST_SetSRID(ST_MakePoint(137.15, 35.08), 4326)::geography LIMIT 5"
        )
    )
    assert "evacuation_sites_geog_idx" in plan


def test_sites_for_a_hazard_are_exactly_those_designated_for_it(sites_db):
    sites = random_sites(200, seed=11)
    upsert_sites(sites_db, sites, source_file="random")
    for hazard in HAZARDS:
        got = sites_for_hazard(sites_db, hazard)
        assert [f["id"] for f in got] == sorted(s.id for s in sites if hazard in s.hazards)
    box = BBox(137.1, 35.0, 137.3, 35.15)
    got = sites_for_hazard(sites_db, "flood", kind="emergency_site", bbox=box)
    assert {f["id"] for f in got} == {
        s.id
        for s in sites
        if "flood" in s.hazards and s.kind == "emergency_site" and 137.1 <= s.lon <= 137.3 and 35.0 <= s.lat <= 35.15
    }
    assert len(sites_for_hazard(sites_db, "flood", limit=3, offset=1)) == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: nearest_sites(c, 137.1, 35.1, hazard="zombies"), "unknown hazard"),
        (lambda c: nearest_sites(c, 137.1, 35.1, kind="bunker"), "unknown kind"),
        (lambda c: nearest_sites(c, 137.1, 35.1, limit=0), "limit"),
        (lambda c: nearest_sites(c, 237.1, 35.1), "not a WGS84 position"),
        (lambda c: sites_for_hazard(c, "'; DROP TABLE evacuation_sites; --"), "unknown hazard"),
    ],
)
def test_bad_arguments_are_validation_errors(sites_db, call, message: str):
    with pytest.raises(ValidationError, match=message):
        call(sites_db)


def test_reimporting_a_list_upserts_by_id(sites_db, tmp_path: Path):
    import_sites(sites_db, EMERGENCY)
    before = sites_db.execute("SELECT max(imported_at) FROM evacuation_sites").fetchone()[0]
    parsed = parse_csv(EMERGENCY.read_bytes())
    changed = [replace(parsed.sites[0], name="豊田市役所 東庁舎", hazards=("flood",)), *parsed.sites[1:]]
    edited = tmp_path / "edited.csv"
    edited.write_bytes(write_csv(changed, kind="emergency_site"))
    report = import_sites(sites_db, edited)
    assert report.imported == 10 and count_sites(sites_db) == 10
    feature = site_feature(sites_db, "232114-emergency_site-1")
    assert feature is not None
    assert feature["properties"]["name"] == "豊田市役所 東庁舎" and feature["properties"]["hazards"] == ["flood"]
    after = sites_db.execute("SELECT min(imported_at), max(source_file) FROM evacuation_sites").fetchone()
    assert after[0] > before and after[1] == "edited.csv"


def test_export_then_import_gives_the_same_sites_and_the_same_file(sites_db, tmp_path: Path):
    import_sites(sites_db, EMERGENCY)
    import_sites(sites_db, SHELTERS)
    first = load_sites(sites_db)
    assert first == [*parse_csv(EMERGENCY.read_bytes()).sites, *parse_csv(SHELTERS.read_bytes()).sites]
    files = {kind: tmp_path / f"{kind}.csv" for kind in ("emergency_site", "shelter")}
    for kind, path in files.items():
        export_sites(sites_db, path, kind=kind, bom=True)
    sites_db.execute("TRUNCATE evacuation_sites")
    for path in files.values():
        import_sites(sites_db, path)
    assert load_sites(sites_db) == first
    again = tmp_path / "again.csv"
    export_sites(sites_db, again, kind="shelter", bom=True)
    assert again.read_bytes() == files["shelter"].read_bytes()


def test_the_command_imports_with_rejects_and_exports(database_url, sites_db, tmp_path: Path):
    env = os.environ | {
        "MIMAMORI_DATABASE_URL": database_url,
        "MIMAMORI_TIMESCALEDB": TEST_TIMESCALEDB,
        "COLUMNS": "200",  # Rich wraps at the terminal's width
    }
    mimamori = str(Path(sys.executable).parent / "mimamori")  # the console script pyproject.toml installs
    parsed = parse_csv(EMERGENCY.read_bytes())
    text = write_csv(parsed.sites, kind="emergency_site").decode("utf-8")
    bad = ",".join(f'"{c}"' for c in ["232114", "99", "", *[""] * (len(HEADERS) - 3)])
    broken = tmp_path / "list.csv"
    broken.write_bytes(text.encode("cp932") + bad.encode() + b"\r\n")
    rejects = tmp_path / "bad.csv"
    done = subprocess.run(
        [mimamori, "evacuation", "import", str(broken), "--rejects", str(rejects)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "10 emergency_site site(s) imported from 11 row(s) of list.csv (cp932); 1 rejected" in done.stdout
    assert list(csv.reader(rejects.open(encoding="utf-8")))[1] == [
        "11",
        "232114-emergency_site-99",
        "missing 名称 (the site's name)",
    ]
    assert count_sites(sites_db, "emergency_site") == 10

    out = tmp_path / "out.csv"
    exported = subprocess.run(
        [mimamori, "evacuation", "export", str(out), "--kind", "emergency_site", "--bom"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    assert parse_csv(out.read_bytes()).sites == parsed.sites
    refused = subprocess.run(
        [mimamori, "evacuation", "import", str(tmp_path / "nope.csv")], env=env, capture_output=True, text=True
    )
    assert refused.returncode != 0 and "cannot read" in refused.stderr


def test_the_laptop_hub_imports_the_sample_lists_as_a_city_file_would_be(database_url, sites_db, monkeypatch):
    from hub import cli

    monkeypatch.setenv("MIMAMORI_DATABASE_URL", database_url)
    monkeypatch.setenv("MIMAMORI_TIMESCALEDB", TEST_TIMESCALEDB)
    cli._import_sample_evacuation_sites()
    assert (count_sites(sites_db, "emergency_site"), count_sites(sites_db, "shelter")) == (10, 5)
    [nearest] = nearest_sites(sites_db, 137.156, 35.082, limit=1, hazard="earthquake")
    assert nearest["properties"]["name"] == "豊田市役所"


def test_the_table_refuses_a_hazard_outside_the_list(sites_db):
    with pytest.raises(psycopg.errors.CheckViolation):
        sites_db.execute(
            "INSERT INTO evacuation_sites (id, kind, name, hazards, geom)"
            " VALUES ('x', 'shelter', 'x', '{zombies}', 'SRID=4326;POINT(137.1 35.1)')"
        )
