"""geo/reproject.py (a device's point in a served CRS) and bboxes given in a ``bbox-crs`` (geo.geometry). Pure."""

from __future__ import annotations

import pytest
from pyproj import Transformer

from geo.crs import EPSG_PREFIX, STORAGE, parse_crs
from geo.geometry import parse_bbox
from geo.reproject import point_in
from mimamori.errors import ValidationError

LON, LAT = 137.179, 35.094  # a gauge on the Yahagi


def test_crs84_is_the_stored_point_rounded() -> None:
    assert point_in(LON + 1e-9, LAT, STORAGE) == [LON, LAT]


def test_zone_vii_is_northing_first_in_metres() -> None:
    easting, northing = Transformer.from_crs("OGC:CRS84", "EPSG:6675", always_xy=True).transform(LON, LAT)
    assert point_in(LON, LAT, parse_crs(f"{EPSG_PREFIX}6675")) == [round(northing, 3), round(easting, 3)]


def test_epsg_4326_is_latitude_first_and_web_mercator_easting_first() -> None:
    assert point_in(LON, LAT, parse_crs(f"{EPSG_PREFIX}4326")) == [LAT, LON]
    x, y = point_in(LON, LAT, parse_crs(f"{EPSG_PREFIX}3857"))
    assert x == pytest.approx(6378137 * 137.179 * 3.141592653589793 / 180, abs=0.01) and y > 4_000_000


def test_a_latitude_first_bbox_becomes_a_crs84_one() -> None:
    box = parse_bbox("35.0,137.0,35.5,137.5", parse_crs(f"{EPSG_PREFIX}4326"))
    assert (box.as_tuple(), box.crs) == ((137.0, 35.0, 137.5, 35.5), STORAGE)
    jgd = parse_bbox("35.0,137.0,35.5,137.5", parse_crs(f"{EPSG_PREFIX}6668"))
    assert jgd.crs == STORAGE


def test_a_zone_vii_bbox_keeps_its_metres_east_north() -> None:
    zone = parse_crs(f"{EPSG_PREFIX}6675")
    box = parse_bbox("-100000,-20000,-90000,-10000", zone)  # X (northing) first
    assert box.as_tuple() == (-20000.0, -100000.0, -10000.0, -90000.0)
    assert box.crs == zone


@pytest.mark.parametrize("text", ["-90000,-20000,-100000,-10000", "1,2,3", "a,b,c,d", "nan,0,1,1"])
def test_bad_projected_boxes_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_bbox(text, parse_crs(f"{EPSG_PREFIX}6675"))


def test_a_latitude_first_box_out_of_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="outside"):
        parse_bbox("137.0,35.0,137.5,35.5", parse_crs(f"{EPSG_PREFIX}4326"))  # lon given where lat goes
