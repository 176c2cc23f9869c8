"""The city's shipped forest sensors lie in the sample stands `mimamori up` imports, in the stand each one names.

The API finds a stand's sensors by location (device point in the stand polygon); the Grafana forestry dashboard
and the simulator go by the devices' ``stand_id`` metadata. For the README demo both must name the same stand.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import Point

from devices.queries import device_states_within
from devices.seed import seed_city
from devices.silence import SilencePolicy
from geo.queries import stand_geometry
from geo.stand_import import import_register, prepare, read_register
from geo.stand_model import ColumnMap, Stand
from hub import cli
from hub.commands import stands as stands_command
from simulators.fleet import SimDevice, city_devices
from simulators.stand_register import SOURCE_CRS, SampleOptions, generate, write

# Enough stands for the first few compartments (Inabu's centre compartment is the second one generated).
SAMPLE_COUNT = 100
# A few metres inside, so containment does not hang on reprojection or float rounding at the stand's edge.
EDGE_MARGIN_M = 5.0
TENANT = "toyota-city"

FOREST_SENSORS = [d for d in city_devices() if d.metadata.get("stand_id")]


def _demo_sample() -> tuple[int, int]:
    """The (count, seed) `mimamori up` makes its sample register with, read from the command itself."""
    count = inspect.signature(cli.up_cmd).parameters["sample_stands"].default
    asked: dict[str, int] = {}

    def sample(path: Path, *, count: int, seed: int) -> None:
        asked.update(count=count, seed=seed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stands_command, "sample", sample)
        patch.setattr(stands_command, "import_", lambda path: None)
        cli._import_sample_stands(count)
    return asked["count"], asked["seed"]


@pytest.fixture(scope="module")
def demo_sample() -> tuple[int, int]:
    return _demo_sample()


@pytest.fixture(scope="module")
def sample_file(demo_sample: tuple[int, int], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sample register with the demo's seed, written as `mimamori stands sample` writes it."""
    path = tmp_path_factory.mktemp("stands") / "sample-stands.gpkg"
    write(generate(SampleOptions(count=SAMPLE_COUNT, seed=demo_sample[1])), path)
    return path


@pytest.fixture(scope="module")
def imported(sample_file: Path) -> list[Stand]:
    """The sample's stands as the importer makes them: ids from 林班/小班, geometry repaired, in EPSG:4326."""
    register = read_register(sample_file, default_crs=SOURCE_CRS)
    prepared = prepare(register, ColumnMap.load())
    assert not prepared.rejections
    return prepared.stands


def test_the_small_sample_is_the_start_of_the_demo_register(demo_sample: tuple[int, int]) -> None:
    # The other tests use a small register; that is only sound if the demo's register begins with the same stands.
    count, seed = demo_sample
    assert count >= SAMPLE_COUNT
    small = generate(SampleOptions(count=SAMPLE_COUNT, seed=seed))
    demo: gpd.GeoDataFrame = generate(SampleOptions(count=count, seed=seed)).iloc[:SAMPLE_COUNT]
    attributes = small.columns.drop(small.geometry.name)
    assert small[attributes].equals(demo[attributes].reset_index(drop=True))
    assert shapely.equals_exact(small.geometry.array, demo.geometry.array, tolerance=0).all()


def test_forest_sensors_name_their_stand() -> None:
    # A dendrometer is strapped to a tree, so it always belongs to a stand.
    assert FOREST_SENSORS, "no city device carries a stand_id"
    dendrometers = [d.id for d in city_devices() if d.device_type == "dendrometer"]
    assert set(dendrometers) <= {d.id for d in FOREST_SENSORS}


@pytest.mark.parametrize("device", FOREST_SENSORS, ids=lambda d: d.id)
def test_a_city_forest_sensor_lies_inside_the_sample_stand_it_names(device: SimDevice, imported: list[Stand]) -> None:
    stand_id = device.metadata["stand_id"]
    by_id = {s.stand_id: s for s in imported}
    assert by_id.get(stand_id) is not None, f"{device.id}: stand {stand_id!r} is not in the sample register"
    here = Point(device.lon, device.lat)
    # Exactly one stand: the one the API's stand-at and sensors-in-stand would pick.
    assert [s.stand_id for s in imported if s.geom.intersects(here)] == [stand_id]
    to_plane = Transformer.from_crs("EPSG:4326", SOURCE_CRS, always_xy=True)
    plane = shapely.transform(by_id[stand_id].geom, to_plane.transform, interleaved=False)
    margin = plane.boundary.distance(Point(to_plane.transform(device.lon, device.lat)))
    assert margin >= EDGE_MARGIN_M, f"{device.id} is only {margin:.1f} m inside stand {stand_id}"


@pytest.fixture
def stands_db(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    db.execute("TRUNCATE stands")
    yield db
    db.execute("TRUNCATE stands")  # leave no sample stands for tests that do not clean them


def test_the_api_and_grafana_find_the_city_forest_sensors_in_the_same_stand(
    stands_db: psycopg.Connection, sample_file: Path
) -> None:
    import_register(stands_db, sample_file, columns=ColumnMap.load(), default_crs=SOURCE_CRS)
    seed_city(stands_db)
    named: dict[str, set[str]] = {}
    for d in FOREST_SENSORS:
        named.setdefault(str(d.metadata["stand_id"]), set()).add(d.id)
    for stand_id, devices in named.items():
        outline = stand_geometry(stands_db, stand_id)
        assert outline is not None, f"no stand {stand_id}"
        found = device_states_within(stands_db, outline, TENANT, SilencePolicy(), datetime.now(UTC))
        assert {s.device.id for s in found} == devices  # by location, as /v1/stands/{id}/sensors
    # The forestry dashboard's join (dashboards/queries.py STAND_SENSORS) finds a register row for each.
    joined = stands_db.execute(
        "SELECT d.id FROM devices d JOIN stands s ON s.stand_id = d.metadata->>'stand_id'"
        " WHERE d.metadata ? 'stand_id' AND ST_Intersects(d.location, s.geom)"
    ).fetchall()
    assert {r[0] for r in joined} == {d.id for d in FOREST_SENSORS}
