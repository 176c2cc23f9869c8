"""Open data's pure rules: who may publish what, drafts, warning levels, the formats and the DCAT catalogue."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
import rdflib
from rdflib.namespace import DCAT, DCTERMS, RDF, RDFS

from mimamori.errors import Forbidden, ValidationError
from opendata import dcat
from opendata.rules import Dataset, DatasetDraft, Kind, check_draft, check_manage, check_publish, warning_level
from opendata.snapshot import RiverGauge, Source
from opendata.tables import BOM, table_of, to_csv, to_geojson, to_parquet

T = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def _dataset(**kw) -> Dataset:
    base = dict(
        id="toyota-rivers",
        kind=Kind.river_levels,
        tenant_id="toyota-city",
        title_ja="河川水位",
        title_en="River levels",
        description="",
        licence="CC-BY-4.0",
        attribution="豊田市 / Toyota City",
        published=True,
        published_by="mk_1",
        published_at=T,
        updated_at=T,
    )
    return Dataset(**{**base, **kw})


def test_a_partner_manages_and_publishes_only_its_own_tenants_datasets():
    check_manage("partner", "acme", "acme")
    check_publish("partner", "acme", "acme", "partner")
    with pytest.raises(Forbidden):
        check_manage("partner", "acme", "beta")
    with pytest.raises(Forbidden):
        check_publish("partner", "acme", "toyota-city", "operator")


def test_an_admin_publishes_the_citys_data_but_never_a_partners():
    check_publish("admin", "toyota-city", "toyota-city", "operator")
    check_publish("admin", "it-dept", "toyota-city", "operator")  # the operator tenant's, from another admin tenant
    with pytest.raises(Forbidden, match="published by acme itself"):
        check_publish("admin", "toyota-city", "acme", "partner")
    check_manage("admin", "toyota-city", "acme")  # ... but may define or take down a partner's dataset
    with pytest.raises(Forbidden):  # not even an admin key made for the partner's own tenant
        check_publish("admin", "acme", "acme", "partner")


@pytest.mark.parametrize("role", ["viewer", "operator", "forestry"])
def test_other_roles_manage_nothing(role):
    with pytest.raises(Forbidden):
        check_manage(role, "toyota-city", "toyota-city")


def _draft(**kw) -> DatasetDraft:
    base = dict(id="x", kind=Kind.rainfall, tenant_id="acme", title_ja="雨", title_en="Rain", attribution="Acme")
    return DatasetDraft(**{**base, **kw})


@pytest.mark.parametrize("bad", ["", "-x", "X", "a_b", "a" * 64, "ä", "a/b"])
def test_dataset_ids_are_checked(bad):
    with pytest.raises(ValidationError):
        check_draft(_draft(id=bad), "partner")


def test_drafts_refuse_unknown_licences_empty_titles_and_city_wide_kinds_of_partners():
    with pytest.raises(ValidationError, match="licence"):
        check_draft(_draft(licence="WTFPL"), "partner")
    with pytest.raises(ValidationError, match="title_en"):
        check_draft(_draft(title_en="  "), "partner")
    for kind in (Kind.stand_summaries, Kind.evacuation_sites):
        with pytest.raises(ValidationError, match="city-wide"):
            check_draft(_draft(kind=kind), "partner")
        assert check_draft(_draft(kind=kind, tenant_id="toyota-city"), "operator").kind is kind
    assert check_draft(_draft(title_ja=" 雨量 "), "partner").title_ja == "雨量"


@pytest.mark.parametrize(
    ("level", "expected"), [(None, None), (1.0, 0), (3.5, 1), (4.49, 1), (4.5, 2), (6.0, 3), (9.0, 4)]
)
def test_warning_level_follows_the_gauges_ladder(level, expected):
    site = {"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8}
    assert warning_level(level, site) == expected


def test_warning_level_ignores_missing_or_odd_thresholds():
    assert warning_level(5.0, {"caution_m": 4.5}) == 2
    assert warning_level(5.0, {"caution_m": "4.5", "standby_m": True}) == 0
    assert warning_level(5.0, None) == 0


def _table():
    d = _dataset()
    src = Source(d.id, d.tenant_id, d.licence, d.licence_url, d.attribution)
    gauges = [
        RiverGauge(
            "g1", "矢作川 平戸橋", "矢作川", 137.18, 35.09, 4.8, T, 2, "2", "警戒レベル2", "Level 2: caution", src
        ),
        RiverGauge("g2", "", None, None, None, None, None, None, None, None, None, src),
    ]
    return d, table_of(gauges, RiverGauge, d)


def test_csv_is_utf8_with_credit_columns_and_an_optional_bom():
    d, table = _table()
    plain, excel = to_csv(table), to_csv(table, bom=True)
    assert not plain.startswith(BOM.encode()) and excel == BOM.encode() + plain
    rows = list(csv.DictReader(io.StringIO(plain.decode("utf-8"))))
    assert rows[0]["name"] == "矢作川 平戸橋" and rows[0]["water_level_m"] == "4.8"
    assert {r["attribution"] for r in rows} == {d.attribution} and rows[0]["licence"] == "CC-BY-4.0"
    assert rows[1]["lon"] == "" and rows[0]["observed_at"] == T.isoformat()


def test_geojson_carries_the_licence_at_the_top_and_on_each_feature():
    d, table = _table()
    doc = json.loads(to_geojson(table, d))
    assert doc["license"] == "CC-BY-4.0" and doc["attribution"] == d.attribution
    assert doc["features"][0]["geometry"] == {"type": "Point", "coordinates": [137.18, 35.09]}
    assert doc["features"][1]["geometry"] is None
    assert doc["features"][0]["properties"]["licence_url"] == "https://creativecommons.org/licenses/by/4.0/"


def test_parquet_types_its_columns_and_keeps_the_credit_in_its_metadata():
    d, table = _table()
    read = pq.read_table(io.BytesIO(to_parquet(table, d)))
    assert read.schema.field("water_level_m").type == "double"
    assert read.schema.field("warning_level").type == "int64"
    assert str(read.schema.field("observed_at").type) == "timestamp[us, tz=UTC]"
    assert read.schema.metadata[b"attribution"].decode() == d.attribution
    assert read.column("attribution").to_pylist() == [d.attribution] * 2


def test_an_empty_table_still_names_its_columns():
    d = _dataset()
    table = table_of([], RiverGauge, d)
    assert "water_level_m" in table.columns and table.columns[-3:] == ("licence", "licence_url", "attribution")
    assert pq.read_table(io.BytesIO(to_parquet(table, d))).num_rows == 0


def test_the_dcat_catalogue_reads_as_rdf_with_titles_licences_and_downloads():
    d = _dataset(description="水位 / levels")
    doc = dcat.catalog([d], {"toyota-city": "豊田市"}, "https://hub.example", "toyota-city", "豊田市")
    g = rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")
    catalogue = rdflib.URIRef("https://hub.example/open/catalog")
    node = rdflib.URIRef("https://hub.example/open/datasets/toyota-rivers")
    assert (catalogue, RDF.type, DCAT.Catalog) in g
    assert (catalogue, DCAT.dataset, node) in g
    assert (node, RDF.type, DCAT.Dataset) in g
    titles = {(t.language, str(t)) for t in g.objects(node, DCTERMS.title)}
    assert titles == {("ja", "河川水位"), ("en", "River levels")}
    assert (node, DCTERMS.license, rdflib.URIRef(d.licence_url)) in g
    publisher = g.value(node, DCTERMS.publisher)
    assert str(g.value(publisher, rdflib.URIRef("http://xmlns.com/foaf/0.1/name"))) == "豊田市"
    downloads = {str(g.value(dist, DCAT.downloadURL)) for dist in g.objects(node, DCAT.distribution)}
    assert downloads == {
        f"https://hub.example/open/datasets/toyota-rivers/download.{f}" for f in ("csv", "geojson", "parquet")
    }
    media = {str(g.value(dist, DCAT.mediaType)) for dist in g.objects(node, DCAT.distribution)}
    assert "http://www.iana.org/assignments/media-types/text/csv" in media
    # what CKAN's harvester reads (tests/api/test_open_data.py runs it): the licence document's title, matched
    # against CKAN's licence register, the attribution as each distribution's rights statement, and access rights
    licence = rdflib.URIRef(d.licence_url)
    assert (licence, RDF.type, DCTERMS.LicenseDocument) in g
    assert str(g.value(licence, DCTERMS.title)) == "Creative Commons Attribution"  # CKAN's stock cc-by
    for dist in g.objects(node, DCAT.distribution):
        rights = g.value(dist, DCTERMS.rights)
        assert (rights, RDF.type, DCTERMS.RightsStatement) in g and str(g.value(rights, RDFS.label)) == d.attribution
    assert str(g.value(node, DCTERMS.accessRights)).endswith("/access-right/PUBLIC")


def test_a_datasets_places_are_its_spatial_coverage_in_wkt():
    assert dcat.extent([(137.2, 35.1), (None, 35.0), (137.4, None), (137.1, 35.3)]) == (137.1, 35.1, 137.2, 35.3)
    assert dcat.extent([(None, None)]) is None and dcat.extent([]) is None
    d = _dataset()
    doc = dcat.catalog([d], {}, "https://hub.example", "toyota-city", "豊田市", {d.id: (137.1, 35.1, 137.2, 35.3)})
    g = rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")
    place = g.value(rdflib.URIRef("https://hub.example/open/datasets/toyota-rivers"), DCTERMS.spatial)
    locn, gsp = (
        rdflib.Namespace("http://www.w3.org/ns/locn#"),
        rdflib.Namespace("http://www.opengis.net/ont/geosparql#"),
    )
    assert (place, RDF.type, DCTERMS.Location) in g
    box = g.value(place, DCAT.bbox)
    assert box.datatype == gsp.wktLiteral and g.value(place, locn.geometry) == box
    assert str(box) == "POLYGON ((137.1 35.1, 137.2 35.1, 137.2 35.3, 137.1 35.3, 137.1 35.1))"
    one = dcat.dataset_node(d, "https://hub.example", "豊田市", (137.1, 35.1, 137.1, 35.1))["dct:spatial"]
    point = {"@value": "POINT (137.1 35.1)", "@type": "gsp:wktLiteral"}
    assert one == {"@type": "dct:Location", "locn:geometry": point}
    assert "dct:spatial" not in dcat.dataset_node(d, "https://hub.example", "豊田市")


def test_history_requests_default_and_bound_their_span():
    from datetime import timedelta

    from opendata.service import history_request

    req = history_request(None, None, None, T)
    assert (req.bucket, req.end, req.end - req.start) == ("day", T, timedelta(days=30))
    assert history_request("month", None, None, T).end - history_request("month", None, None, T).start == timedelta(
        days=365
    )
    assert history_request("day", "2026-11-01", None, T).start.isoformat() == "2026-11-01T00:00:00+09:00"
    for bucket, start, end in [
        ("week", None, None),
        ("day", "2026-12-01", "2026-11-01"),
        ("day", "2020-01-01", "2026-01-01"),
        ("month", "2000-01-01", "2026-01-01"),
        ("day", "soon", None),
        ("day", None, "0001-01-01"),
    ]:
        with pytest.raises(ValidationError):
            history_request(bucket, start, end, T)
