"""Geometry, CRS handling, forest stands (森林簿) import and queries, areas, feature pages and their registry, and
tiles."""

from geo import queries
from geo.features import COLLECTIONS, Collection, Feature, FeaturePage, FeatureQuery
from geo.geometry import BBox, as_multipolygon, check_point, parse_bbox
from geo.queries import (
    StandFilter,
    area_feature,
    area_features,
    count_stands,
    stand_at,
    stand_feature,
    stand_features,
    stand_geometry,
    stands_in_area,
    stands_intersecting,
    upsert_area,
    upsert_stands,
)
from geo.stand_import import ImportReport, import_register, prepare, read_register
from geo.stand_model import ColumnMap, Rejection, Stand, age_class_of, parse_row, stand_id_of

__all__ = [
    "COLLECTIONS",
    "BBox",
    "Collection",
    "ColumnMap",
    "Feature",
    "FeaturePage",
    "FeatureQuery",
    "ImportReport",
    "Rejection",
    "Stand",
    "StandFilter",
    "age_class_of",
    "area_feature",
    "area_features",
    "as_multipolygon",
    "check_point",
    "count_stands",
    "import_register",
    "parse_bbox",
    "parse_row",
    "prepare",
    "queries",
    "read_register",
    "stand_at",
    "stand_feature",
    "stand_features",
    "stand_geometry",
    "stand_id_of",
    "stands_in_area",
    "stands_intersecting",
    "upsert_area",
    "upsert_stands",
]
