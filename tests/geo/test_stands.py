"""Forest stands: the register model, geometry repair, and imports of real files made in EPSG:6675."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import LineString, MultiPolygon, Polygon, box

from geo import (
    BBox,
    ColumnMap,
    FeatureQuery,
    StandFilter,
    age_class_of,
    as_multipolygon,
    import_register,
    parse_row,
    stand_at,
    stand_features,
    stand_id_of,
)
from geo.feature_sql import as_doubles
from geo.features import COLLECTIONS
from geo.stand_model import Rejection, Stand
from simulators.stand_register import SampleOptions, generate
from tests.services import TEST_TIMESCALEDB

# EPSG:6675's false origin is 36°N, 137°10'E: a square around plane (0, 0) must land there, whatever pyproj says.
ORIGIN_LON, ORIGIN_LAT = 137 + 10 / 60, 36.0
COLUMNS = ColumnMap.load()
SQUARE = box(-100, -100, 100, 100)


@pytest.fixture
def stands_db(db):
    db.execute("TRUNCATE stands, areas")
    return db


def register_row(**extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "林班": 12,
        "小班": 3,
        "樹種1": "スギ",
        "林齢1": 48,
        "林齢基準年": 2024,
        "面積": 4.0,
        "材積": 1520,
        "林種": "人工林",
        "所有形態": "私有林",
        "保安林": "水源かん養保安林",
        "地位": 2,
        "疎密度": "中",
        "傾斜": 31.5,
        "標高": 620,
    }
    row.update(extra)
    return row


# --- the model -------------------------------------------------------------------------------------------------


def test_a_japanese_register_row_maps_onto_the_stand_model():
    stand = parse_row(1, register_row(備考="memo", 樹種2="ヒノキ", 林齢2=30), SQUARE, COLUMNS)
    assert isinstance(stand, Stand)
    assert stand.stand_id == "12-3"
    assert (stand.species_1, stand.species_2, stand.age_1, stand.age_2) == ("スギ", "ヒノキ", 48, 30)
    assert stand.age_class == 10  # 46–50 years: class X
    assert stand.ownership == "private"
    assert stand.protection_forest == ("水源かん養保安林",)
    assert (stand.area_ha, stand.volume_m3, stand.slope_deg, stand.elevation_m) == (4.0, 1520, 31.5, 620)
    assert stand.attributes == {"備考": "memo"}


def test_full_width_digits_and_text_numbers_are_read():
    stand = parse_row(1, register_row(林班="１２", 小班="３", 小班枝番="1", 面積="1,234.5"), SQUARE, COLUMNS)
    assert isinstance(stand, Stand)
    assert stand.stand_id == "12-3.1"
    assert stand.area_ha == 1234.5


def test_several_protection_designations_are_split():
    stand = parse_row(1, register_row(保安林="水源かん養保安林・土砂流出防備保安林"), SQUARE, COLUMNS)
    assert isinstance(stand, Stand)
    assert stand.protection_forest == ("水源かん養保安林", "土砂流出防備保安林")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"小班": None}, "missing 小班"),
        ({"林班": "", "小班": ""}, "missing 林班 (rinpan) and 小班"),
        ({"面積": "abc"}, "area_ha is not a number"),
        ({"林齢1": 4.5}, "age_1 is not a whole number"),
        ({"面積": -1}, "area_ha is negative"),
        ({"所有形態": "宇宙人"}, "unknown ownership '宇宙人'"),
        ({"傾斜": 95}, "slope_deg must be 0–90°"),
    ],
)
def test_a_bad_row_is_rejected_with_its_reason(change, reason):
    got = parse_row(7, register_row(**change), SQUARE, COLUMNS)
    assert isinstance(got, Rejection)
    assert got.row == 7
    assert reason in got.reason


def test_a_custom_column_map_reads_another_register_layout():
    columns = ColumnMap.from_mapping(
        {"columns": {"rinpan": ["COMPT"], "shohan": ["SUBCOMPT"], "species_1": ["SP1"]}, "ownership_values": {}}
    )
    stand = parse_row(1, {"COMPT": 5, "SUBCOMPT": 9, "SP1": "Hinoki"}, SQUARE, columns)
    assert isinstance(stand, Stand)
    assert (stand.stand_id, stand.species_1) == ("5-9", "Hinoki")


@given(st.integers(min_value=1, max_value=300))
def test_an_age_class_spans_five_years(age):
    klass = age_class_of(age)
    assert (klass - 1) * 5 < age <= klass * 5


@given(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 99), st.integers(0, 99))
def test_stand_ids_are_distinct_for_distinct_numbers(rinpan, shohan, rb, sb):
    sid = stand_id_of(rinpan, shohan, rb, sb)
    left, right = sid.split("-")
    assert left == (f"{rinpan}.{rb}" if rb else str(rinpan))
    assert right == (f"{shohan}.{sb}" if sb else str(shohan))


def test_a_self_crossing_polygon_is_repaired_into_a_valid_multipolygon():
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10), (0, 0)])
    assert not bowtie.is_valid
    fixed = as_multipolygon(bowtie)
    assert isinstance(fixed, MultiPolygon)
    assert fixed.is_valid
    assert fixed.area == pytest.approx(50)


def test_lines_and_empty_geometry_cannot_be_stands():
    assert as_multipolygon(LineString([(0, 0), (1, 1)])) == "geometry is a LineString, not a polygon"
    assert as_multipolygon(None) == "empty geometry"
    assert as_multipolygon(Polygon([(0, 0), (1, 1), (2, 2), (0, 0)])) == "geometry has no area after repair"


def test_the_sample_register_is_synthetic_in_epsg_6675_with_stands_of_1_to_20_ha():
    frame = generate(SampleOptions(count=600, seed=1))
    assert len(frame) == 600
    assert frame.crs.to_epsg() == 6675
    areas = frame.geometry.area / 10_000
    assert areas.min() >= 1.0
    assert areas.max() <= 20.0
    assert frame.geometry.is_valid.all()
    assert frame["備考"].str.contains("synthetic").all()
    assert frame.groupby(["林班", "小班", "小班枝番"]).ngroups == 600  # unique stand ids


# --- imports from files ----------------------------------------------------------------------------------------


def _frame(rows: list[dict[str, object]], geoms: list[object], crs: str | None = "EPSG:6675") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=crs)


def _write(frame: gpd.GeoDataFrame, path: Path, fmt: str) -> Path:
    if fmt == "gpkg":
        frame.to_file(path := path / "stands.gpkg", engine="pyogrio")
    elif fmt == "geojson":
        frame.to_file(path := path / "stands.geojson", engine="pyogrio", driver="GeoJSON")
    elif fmt == "shp.zip":
        folder = path / "shp"
        folder.mkdir()
        # Shapefile column names are at most 10 bytes: ASCII names via a column map would also do; here the
        # short Japanese names fit.
        frame[["林班", "小班", "樹種1", "geometry"]].to_file(folder / "stands.shp", engine="pyogrio", encoding="UTF-8")
        with zipfile.ZipFile(path := path / "stands.zip", "w") as archive:
            for part in folder.iterdir():
                archive.write(part, f"register/{part.name}")
    elif fmt == "csv":
        table = frame.drop(columns="geometry")
        table["WKT"] = frame.geometry.to_wkt()
        table.to_csv(path := path / "stands.csv", index=False, encoding="cp932")
    else:
        raise AssertionError(fmt)
    return path


def _import(conn, path: Path, **kwargs):
    return import_register(conn, path, columns=COLUMNS, default_crs="EPSG:6675", **kwargs)


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shp.zip", "csv"])
def test_a_register_in_epsg_6675_lands_in_wgs84_where_it_belongs(stands_db, tmp_path, fmt):
    path = _write(_frame([register_row()], [SQUARE]), tmp_path, fmt)
    report = _import(stands_db, path)
    assert (report.rows, report.imported, report.rejections) == (1, 1, [])
    assert report.source_crs == "EPSG:6675"
    lon, lat, species, crs = stands_db.execute(
        "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)), species_1, source_crs FROM stands"
        " WHERE stand_id = '12-3'"
    ).fetchone()
    assert lon == pytest.approx(ORIGIN_LON, abs=1e-6)
    assert lat == pytest.approx(ORIGIN_LAT, abs=1e-6)
    assert (species, crs) == ("スギ", "EPSG:6675")
    assert stand_at(stands_db, ORIGIN_LON, ORIGIN_LAT).id == "12-3"
    assert stand_at(stands_db, ORIGIN_LON + 0.01, ORIGIN_LAT) is None  # about 900 m east: outside the square


@pytest.mark.filterwarnings("ignore:'crs' was not provided")  # the file is made without a CRS on purpose
def test_a_file_without_a_crs_is_read_in_the_default_crs_and_crs_overrides(stands_db, tmp_path):
    path = _write(_frame([register_row()], [SQUARE], crs=None), tmp_path, "gpkg")
    assert _import(stands_db, path).source_crs == "EPSG:6675"
    # The same coordinates said to be zone VIII (origin 138°30'E) move the stand there.
    report = _import(stands_db, path, crs="EPSG:6676")
    assert report.source_crs == "EPSG:6676"
    lon = stands_db.execute("SELECT ST_X(ST_Centroid(geom)) FROM stands").fetchone()[0]
    assert lon == pytest.approx(138.5, abs=1e-6)


def test_coordinates_far_outside_the_crs_area_are_rejected(stands_db, tmp_path):
    # A register in UTM zone 53N mislabelled as zone VII: read as zone VII it would lie 3,900 km north of Aichi.
    utm = box(605_000, 3_883_000, 605_200, 3_883_200)
    path = _write(_frame([register_row()], [utm]), tmp_path, "gpkg")
    report = _import(stands_db, path)
    assert report.imported == 0
    assert "outside the area" in report.rejections[0].reason


def test_an_import_upserts_by_stand_id(stands_db, tmp_path):
    first = tmp_path / "a"
    first.mkdir()
    _import(stands_db, _write(_frame([register_row()], [SQUARE]), first, "gpkg"))
    second = tmp_path / "b"
    second.mkdir()
    rows = [register_row(林齢1=49, 林齢基準年=2025), register_row(小班=4)]
    report = _import(stands_db, _write(_frame(rows, [SQUARE, box(100, -100, 300, 100)]), second, "gpkg"))
    assert report.imported == 2
    assert stands_db.execute("SELECT count(*) FROM stands").fetchone()[0] == 2
    age, year = stands_db.execute("SELECT age_1, age_reference_year FROM stands WHERE stand_id = '12-3'").fetchone()
    assert (age, year) == (49, 2025)


def test_every_rejected_row_is_reported_with_its_reason_and_the_rest_imported(stands_db, tmp_path):
    bowtie = Polygon([(0, 0), (100, 100), (100, 0), (0, 100), (0, 0)])
    rows = [
        register_row(小班=1),
        register_row(小班=None),
        register_row(小班=1),
        register_row(小班=5),
        register_row(小班=6, 所有形態="不明"),
    ]
    geoms = [SQUARE, box(0, 0, 50, 50), box(200, 0, 300, 100), bowtie, box(400, 0, 500, 100)]
    report = _import(stands_db, _write(_frame(rows, geoms), tmp_path, "gpkg"))
    assert report.imported == 2
    assert [(r.row, r.reason) for r in report.rejections] == [
        (2, "missing 小班 (shohan)"),
        (3, "duplicate stand id 12-1 (first at row 1)"),
        (5, "unknown ownership '不明' (extend ownership_values)"),
    ]
    valid, kind = stands_db.execute(
        "SELECT ST_IsValid(geom), GeometryType(geom) FROM stands WHERE stand_id = '12-5'"
    ).fetchone()
    assert (valid, kind) == (True, "MULTIPOLYGON")


def test_unparsable_wkt_in_a_csv_is_a_rejected_row(stands_db, tmp_path):
    path = tmp_path / "register.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["林班", "小班", "wkt"])
        writer.writerow([1, 1, SQUARE.wkt])
        writer.writerow([1, 2, "POLYGON ((0 0, 1"])
    report = _import(stands_db, path)
    assert report.imported == 1
    assert [(r.row, r.reason) for r in report.rejections] == [(2, "WKT could not be parsed")]


def test_stands_are_found_by_bbox_species_age_ownership_and_protection(stands_db, tmp_path):
    rows = [
        register_row(小班=1, 樹種1="スギ", 林齢1=40, 所有形態="私有林", 保安林=""),
        register_row(小班=2, 樹種1="ヒノキ", 林齢1=60, 所有形態="市有林", 保安林="土砂流出防備保安林"),
        register_row(小班=3, 樹種1="広葉樹", 樹種2="スギ", 林齢1=80, 所有形態="国有林"),
    ]
    geoms = [box(0, 0, 200, 200), box(1000, 0, 1200, 200), box(2000, 0, 2200, 200)]
    _import(stands_db, _write(_frame(rows, geoms), tmp_path, "gpkg"))

    def ids(attrs: StandFilter, **q) -> list[str]:
        return [f.id for f in stand_features(stands_db, FeatureQuery(**q), attrs).features]

    assert ids(StandFilter(species="スギ")) == ["12-1", "12-3"]  # any of 樹種1–3
    assert ids(StandFilter(age_min=50, age_max=70)) == ["12-2"]
    # Ages move with time: in 2034 the 40-year-old stand (as of 2024) is 50.
    assert ids(StandFilter(age_min=50, age_max=55, as_of_year=2034)) == ["12-1"]
    assert ids(StandFilter(ownership="municipal")) == ["12-2"]
    assert ids(StandFilter(protection="*")) == ["12-2", "12-3"]
    assert ids(StandFilter(protection="土砂流出防備保安林")) == ["12-2"]
    assert ids(StandFilter(), bbox=BBox(ORIGIN_LON + 0.005, 35.9, ORIGIN_LON + 0.03, 36.1)) == ["12-2", "12-3"]


def test_the_cli_makes_a_sample_and_imports_it_with_rejections_listed(database_url, stands_db, tmp_path):
    env = os.environ | {"MIMAMORI_DATABASE_URL": database_url, "MIMAMORI_TIMESCALEDB": TEST_TIMESCALEDB}
    cli = [sys.executable, "-m", "hub.cli"]
    sample = tmp_path / "sample.gpkg"
    made = subprocess.run(
        [*cli, "stands", "sample", str(sample), "--count", "300"], env=env, capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    frame = gpd.read_file(sample)
    frame.loc[0, "所有形態"] = "不明"
    frame.to_file(sample, engine="pyogrio")
    rejects = tmp_path / "rejects.csv"
    done = subprocess.run(
        [*cli, "stands", "import", str(sample), "--rejects", str(rejects)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "299 stand(s) imported from 300 row(s)" in done.stdout
    assert "unknown ownership" in done.stdout
    assert list(csv.reader(rejects.open(encoding="utf-8")))[1][0] == "1"
    assert stands_db.execute("SELECT count(*) FROM stands").fetchone()[0] == 299
    missing = subprocess.run(
        [*cli, "stands", "import", str(tmp_path / "nope.gpkg")], env=env, capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1
    assert "no such file" in missing.stderr


def test_a_stand_feature_has_every_column_but_its_geometry_as_properties(stands_db, tmp_path):
    # The properties are built from a column list (not to_jsonb(s) - 'geom', which wrote the geometry as GeoJSON
    # first): a column a migration adds must be added there too, and the answer must stay what it was.
    _import(stands_db, _write(_frame([register_row(小班=1)], [box(0, 0, 200, 200)]), tmp_path, "gpkg"))
    columns = {
        r[0]
        for r in stands_db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'stands' AND column_name <> 'geom'"
        ).fetchall()
    }
    old = stands_db.execute("SELECT to_jsonb(s) - 'geom' FROM stands s").fetchone()[0]
    [by_bbox] = stand_features(stands_db, FeatureQuery()).features
    assert set(by_bbox.properties) == columns
    assert by_bbox.properties == as_doubles(old, COLLECTIONS["stands"].doubles())
    point = stand_at(stands_db, ORIGIN_LON + 0.001, ORIGIN_LAT + 0.0009)  # ~90 m east, ~100 m north
    assert point is not None and point.properties == by_bbox.properties
    assert by_bbox.geometry is not None and by_bbox.geometry["type"] == "MultiPolygon"
