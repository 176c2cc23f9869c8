"""Geometry, CRS handling, forest stands (森林簿) import and queries, areas, evacuation sites and shelters
(指定緊急避難場所・指定避難所), feature pages and their registry, and tiles."""

from geo import queries
from geo.evacuation import (
    EvacuationImportReport,
    count_sites,
    export_sites,
    import_sites,
    load_sites,
    nearest_sites,
    site_feature,
    sites_for_hazard,
    upsert_sites,
)
from geo.evacuation_format import HAZARDS, EvacuationColumns, EvacuationSite, SiteRejection, parse_csv, write_csv
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
    "HAZARDS",
    "BBox",
    "Collection",
    "ColumnMap",
    "EvacuationColumns",
    "EvacuationImportReport",
    "EvacuationSite",
    "Feature",
    "FeaturePage",
    "FeatureQuery",
    "ImportReport",
    "Rejection",
    "SiteRejection",
    "Stand",
    "StandFilter",
    "age_class_of",
    "area_feature",
    "area_features",
    "as_multipolygon",
    "check_point",
    "count_sites",
    "count_stands",
    "export_sites",
    "import_register",
    "import_sites",
    "load_sites",
    "nearest_sites",
    "parse_bbox",
    "parse_csv",
    "parse_row",
    "prepare",
    "queries",
    "read_register",
    "site_feature",
    "sites_for_hazard",
    "stand_at",
    "stand_feature",
    "stand_features",
    "stand_geometry",
    "stand_id_of",
    "stands_in_area",
    "stands_intersecting",
    "upsert_area",
    "upsert_sites",
    "upsert_stands",
    "write_csv",
]
