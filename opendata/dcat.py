"""The open datasets as a DCAT catalogue in JSON-LD (DCAT-AP style), which CKAN's ckanext-dcat harvester reads
(Japan's national and prefectural portals run CKAN). Pure: datasets and publishers in, a JSON-LD document out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from opendata.rules import Dataset, Kind

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "gsp": "http://www.opengis.net/ont/geosparql#",
    "locn": "http://www.w3.org/ns/locn#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
# Open to anyone (DCAT-AP's dct:accessRights, from the EU's access-right vocabulary)
PUBLIC = "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
# Each licence document's dct:title. A CKAN harvester (ckanext-dcat) gives a harvested dataset the licence of its
# portal's licence register whose URL, or else title, is a distribution's dct:license: CKAN's stock register knows
# these licences by opendefinition.org URLs, not by their deeds' URLs, so the title is the stock register's name
# where it has the licence (ckan/model/license.py); a portal with its own register matches the deed's URL.
LICENCE_TITLES: dict[str, str] = {
    "CC-BY-4.0": "Creative Commons Attribution",
    "CC0-1.0": "Creative Commons CCZero",
    "CC-BY-SA-4.0": "Creative Commons Attribution Share-Alike",
    "ODbL-1.0": "Open Data Commons Open Database License (ODbL)",
    "PDL-1.0": "公共データ利用規約（第1.0版）",
}
IANA = "http://www.iana.org/assignments/media-types/"
# format -> (IANA media type, dct:format label) of each distribution
DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv", "CSV"),
    "geojson": ("application/geo+json", "GeoJSON"),
    "parquet": ("application/vnd.apache.parquet", "Parquet"),
}
KEYWORDS: dict[Kind, tuple[str, ...]] = {
    Kind.river_levels: ("水位", "河川", "water level", "river"),
    Kind.rainfall: ("雨量", "rainfall"),
    Kind.alerts: ("防災", "警戒レベル", "alerts", "CAP"),
    Kind.stand_summaries: ("森林簿", "森林", "forest register"),
    Kind.evacuation_sites: ("指定緊急避難場所", "避難所", "evacuation sites"),
}


Box = tuple[float, float, float, float]  # west, south, east, north: WGS 84 degrees


def extent(points: Iterable[tuple[float | None, float | None]]) -> Box | None:
    """The bounding box of the (lon, lat) points that have both; None when none has."""
    placed = [(lon, lat) for lon, lat in points if lon is not None and lat is not None]
    if not placed:
        return None
    lons, lats = [p[0] for p in placed], [p[1] for p in placed]
    return min(lons), min(lats), max(lons), max(lats)


def _location(box: Box) -> dict[str, Any]:
    """A dct:Location in DCAT-AP's terms, as WKT (CRS84, lon lat): the box as locn:geometry (which CKAN's harvester
    makes the dataset's ``spatial`` GeoJSON, the one ckanext-spatial indexes) and dcat:bbox, or the point where the
    box is one place."""
    w, s, e, n = box
    if w == e and s == n:
        return {"@type": "dct:Location", "locn:geometry": {"@value": f"POINT ({w} {s})", "@type": "gsp:wktLiteral"}}
    wkt = {"@value": f"POLYGON (({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))", "@type": "gsp:wktLiteral"}
    return {"@type": "dct:Location", "locn:geometry": wkt, "dcat:bbox": wkt}


def _texts(ja: str, en: str) -> list[dict[str, str]]:
    return [{"@value": ja, "@language": "ja"}, {"@value": en, "@language": "en"}]


def _time(value: datetime) -> dict[str, str]:
    return {"@value": value.isoformat(), "@type": "xsd:dateTime"}


def _licence(d: Dataset) -> dict[str, Any]:
    return {"@id": d.licence_url, "@type": "dct:LicenseDocument", "dct:title": LICENCE_TITLES.get(d.licence, d.licence)}


def _rights(attribution: str) -> dict[str, Any]:
    """The attribution as a dct:RightsStatement (a blank node with an rdfs:label), which is how DCAT-AP and CKAN
    read a distribution's dct:rights."""
    return {"@type": "dct:RightsStatement", "rdfs:label": attribution}


def dataset_node(d: Dataset, base_url: str, publisher_name: str, box: Box | None = None) -> dict[str, Any]:
    """One dcat:Dataset with a distribution per download format; ``box`` its places' extent (dct:spatial)."""
    page = f"{base_url}/open/datasets/{d.id}"
    licence = _licence(d)
    distributions = [
        {
            "@id": f"{page}/download.{fmt}",
            "@type": "dcat:Distribution",
            "dct:title": f"{d.title_en} ({label})",
            "dcat:accessURL": {"@id": f"{page}/download.{fmt}"},
            "dcat:downloadURL": {"@id": f"{page}/download.{fmt}"},
            "dcat:mediaType": {"@id": IANA + media, "@type": "dct:MediaType"},
            "dct:format": label,
            "dct:license": licence,
            "dct:rights": _rights(d.attribution),
        }
        for fmt, (media, label) in DISTRIBUTIONS.items()
    ]
    node: dict[str, Any] = {
        "@id": page,
        "@type": "dcat:Dataset",
        "dct:identifier": d.id,
        "dct:title": _texts(d.title_ja, d.title_en),
        "dct:description": d.description or d.title_en,
        "dct:license": licence,
        "dct:rights": _rights(d.attribution),
        "dct:accessRights": {"@id": PUBLIC, "@type": "dct:RightsStatement"},
        "dct:publisher": {
            "@id": f"{base_url}/open/publishers/{d.tenant_id}",
            "@type": "foaf:Agent",
            "foaf:name": publisher_name,
        },
        "dcat:keyword": list(KEYWORDS.get(d.kind, ())),
        "dcat:landingPage": {"@id": page},
        "dct:modified": _time(d.updated_at),
        "dcat:distribution": distributions,
    }
    if d.published_at is not None:
        node["dct:issued"] = _time(d.published_at)
    if box is not None:
        node["dct:spatial"] = _location(box)
    return node


def catalog(
    datasets: Sequence[Dataset],
    publishers: Mapping[str, str],
    base_url: str,
    operator_id: str,
    operator_name: str,
    extents: Mapping[str, Box] | None = None,
) -> dict[str, Any]:
    """The dcat:Catalog of the published datasets; ``publishers`` names each tenant (tenants.name), ``extents`` the
    extent of a dataset's places by its id (none for a dataset without)."""
    extents = extents or {}
    return {
        "@context": CONTEXT,
        "@id": f"{base_url}/open/catalog",
        "@type": "dcat:Catalog",
        "dct:title": _texts("見守り オープンデータ", "Mimamori open data"),
        "dct:description": "River levels, rainfall, alerts and more, published by the city and its partners.",
        "dct:publisher": {
            "@id": f"{base_url}/open/publishers/{operator_id}",
            "@type": "foaf:Agent",
            "foaf:name": operator_name,
        },
        "foaf:homepage": {"@id": f"{base_url}/open/datasets"},
        "dcat:dataset": [
            dataset_node(d, base_url, publishers.get(d.tenant_id, d.tenant_id), extents.get(d.id)) for d in datasets
        ],
    }
