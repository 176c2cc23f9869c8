"""Open data at /open, over HTTP against the real database: what is published and only that, without a key, in
every format read back by a real reader (pandas, pyarrow, GDAL), with licences, caching and the rate limit."""

from __future__ import annotations

import io
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import pytest
import rdflib
from rdflib.namespace import DCAT, DCTERMS, RDF

from alerts.store import NewAlert, insert_alert, insert_event
from devices import upsert_device, upsert_tenant
from devices.keys import Role, create_key
from devkit.peer_env import CACHE, PeerEnvUnavailable, peer_python
from opendata import Kind, dcat, public_snapshot
from tests.cap_support import valid_cap
from tests.geo_support import api_client, role_keys, served

NOW = datetime.now(UTC).replace(microsecond=0)
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
JSON_LD = "application/ld+json"


def _alert(db, tenant: str, device: str | None, title: str, level: int = 2) -> int:
    alert_id = insert_alert(
        db,
        NewAlert(
            rule_id=f"river-{tenant}",
            subject=device or title,
            rule_kind="threshold",
            hazard="flood",
            title_en=title,
            title_ja=f"{title} 注意",
            device_id=device,
            tenant_id=tenant,
            level=level,
            value=4.8,
            device_time=NOW,
            location=(137.179, 35.094) if device else None,
            area_geojson=None,
            buffer_m=0,
        ),
    )
    insert_event(
        db,
        alert_id,
        "raised",
        level=level,
        previous=None,
        state="open",
        value=4.8,
        device_time=NOW,
        actor=f"rule:river-{tenant}",
    )
    return alert_id


@pytest.fixture
def world(db, city):
    db.execute("TRUNCATE alerts CASCADE")
    db.execute("TRUNCATE stands, audit_log")
    upsert_tenant(db, "beta", "Beta Forestry", "partner")
    upsert_device(
        db,
        device_id="gauge-1",
        tenant_id="toyota-city",
        device_type="river_gauge",
        name="平戸橋",
        lon=137.179,
        lat=35.094,
        metadata={"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8, "river": "矢作川"},
    )
    upsert_device(db, device_id="acme-gauge-1", tenant_id="acme", device_type="river_gauge_crisis", lon=137.5, lat=35.2)
    upsert_device(db, device_id="beta-rain-1", tenant_id="beta", device_type="rain_gauge", lon=137.6, lat=35.3)
    db.execute(
        "INSERT INTO latest_readings (device_id, metric, time, value) VALUES"
        " ('gauge-1', 'water_level', %(t)s, 4.8), ('rain-1', 'rainfall', %(t)s, 3.5),"
        " ('acme-gauge-1', 'water_level', %(t)s, 1.2), ('beta-rain-1', 'rainfall', %(t)s, 9.0)",
        {"t": NOW},
    )
    day = datetime(2026, 11, 1, tzinfo=UTC)  # 09:00 in Japan: the readings below fall on 1 and 2 November JST
    for i, v in enumerate([1.0, 2.0, 3.0, 4.0]):
        db.execute(
            "INSERT INTO readings (device_id, metric, time, value) VALUES ('gauge-1', 'water_level', %s, %s)",
            (day + timedelta(hours=8 * i), v),
        )
    city_alert = _alert(db, "toyota-city", "gauge-1", "Yahagi caution")
    acme_alert = _alert(db, "acme", "acme-gauge-1", "Acme creek")
    keys = role_keys(db)
    keys["beta"] = {"X-API-Key": create_key(db, "beta", Role.partner, "beta")[1]}
    return {"keys": keys, "city_alert": city_alert, "acme_alert": acme_alert}


@pytest.fixture
def api(database_url, world):
    with api_client(database_url, open_burst=1000) as client:
        yield client


def _define(api, who, dataset_id, kind, tenant=None, **extra):
    body = {
        "kind": kind,
        "title_ja": f"{dataset_id} ja",
        "title_en": f"{dataset_id} en",
        "attribution": "豊田市",
        **extra,
    }
    if tenant:
        body["tenant_id"] = tenant
    return api.put(f"/v1/open-datasets/{dataset_id}", json=body, headers=who)


def _publish(api, who, dataset_id):
    return api.post(f"/v1/open-datasets/{dataset_id}/publish", headers=who)


@pytest.fixture
def published(api, world):
    """The city's river levels, rainfall and alerts published by an admin; acme's river levels defined, not yet."""
    admin = world["keys"]["admin"]
    for dataset_id, kind in [("city-rivers", "river_levels"), ("city-rain", "rainfall"), ("city-alerts", "alerts")]:
        assert _define(api, admin, dataset_id, kind).status_code == 200
        assert _publish(api, admin, dataset_id).status_code == 200
    assert _define(api, world["keys"]["partner"], "acme-rivers", "river_levels").status_code == 200
    return world


# -- publication --------------------------------------------------------------------------------------------------


def test_nothing_is_public_until_published(api, world):
    admin = world["keys"]["admin"]
    _define(api, admin, "city-rivers", "river_levels")
    assert api.get("/open/datasets").json() == {"datasets": []}
    for path in ("", "/latest", "/history", "/download.csv", "/download.geojson", "/download.parquet"):
        assert api.get(f"/open/datasets/city-rivers{path}").status_code == 404, path
    assert "city-rivers" not in api.get("/open/catalog").text
    assert api.get(f"/open/alerts/{world['city_alert']}/cap").status_code == 404
    assert api.get("/open/alerts").json() == {"alerts": []}


def test_an_unpublished_dataset_goes_dark_again(api, published):
    assert api.get("/open/datasets/city-rivers/latest").status_code == 200
    r = api.post("/v1/open-datasets/city-rivers/unpublish", headers=published["keys"]["admin"])
    assert r.status_code == 200 and r.json()["published"] is False
    assert api.get("/open/datasets/city-rivers/latest").status_code == 404


def test_a_partners_data_is_public_only_when_the_partner_publishes_it(api, published):
    keys = published["keys"]
    assert _publish(api, keys["admin"], "acme-rivers").status_code == 403  # the city may not open acme's data
    assert api.get("/open/datasets/acme-rivers").status_code == 404
    assert _publish(api, keys["beta"], "acme-rivers").status_code == 404  # beta does not even see it
    assert _define(api, keys["beta"], "acme-rivers", "rainfall").status_code == 403  # nor take its id over
    assert _define(api, keys["partner"], "sneaky", "rainfall", tenant="beta").status_code == 403
    assert _publish(api, keys["partner"], "acme-rivers").status_code == 200
    items = api.get("/open/datasets/acme-rivers/latest").json()["items"]
    assert [i["id"] for i in items] == ["acme-gauge-1"]  # acme's own gauges, never the city's
    # an admin may take a partner's dataset down
    assert api.post("/v1/open-datasets/acme-rivers/unpublish", headers=keys["admin"]).status_code == 200
    assert api.get("/open/datasets/acme-rivers").status_code == 404


def test_another_tenants_data_never_appears_in_a_dataset(api, published):
    rivers = api.get("/open/datasets/city-rivers/latest").json()["items"]
    rain = api.get("/open/datasets/city-rain/latest").json()["items"]
    assert [i["id"] for i in rivers] == ["gauge-1"] and [i["id"] for i in rain] == ["rain-1"]
    alerts = api.get("/open/alerts").json()["alerts"]
    assert [a["id"] for a in alerts] == [published["city_alert"]]
    assert api.get(f"/open/alerts/{published['acme_alert']}/cap").status_code == 404


@pytest.mark.parametrize("role", ["viewer", "operator", "forestry"])
def test_only_admins_and_partners_manage_datasets(api, world, role):
    assert _define(api, world["keys"][role], "x", "rainfall").status_code == 403
    assert api.get("/v1/open-datasets", headers=world["keys"][role]).status_code == 403


def test_city_wide_kinds_belong_to_the_operator_tenant(api, world):
    r = _define(api, world["keys"]["partner"], "acme-stands", "stand_summaries")
    assert r.status_code == 422 and "city-wide" in r.text
    assert _define(api, world["keys"]["admin"], "bad", "rainfall", licence="proprietary").status_code == 422


def test_publication_is_audited(api, published, db):
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE target = 'city-rivers' ORDER BY id")]
    assert actions == ["open_dataset.save", "open_dataset.publish"]


# -- reading ------------------------------------------------------------------------------------------------------


def test_no_key_and_no_cookie_is_needed_and_a_bad_key_is_ignored(api, published):
    r = api.get("/open/datasets", headers={"X-API-Key": "mk_bogus.x"})
    assert r.status_code == 200 and "set-cookie" not in r.headers
    assert [d["id"] for d in r.json()["datasets"]] == ["city-alerts", "city-rain", "city-rivers"]


def test_latest_river_levels_carry_the_warning_level_and_the_credit(api, published):
    r = api.get("/open/datasets/city-rivers/latest")
    body = r.json()
    assert body["attribution"] == "豊田市" and body["licence"] == "CC-BY-4.0"
    assert r.headers["link"] == f'<{CC_BY}>; rel="license"'
    (gauge,) = body["items"]
    assert gauge["water_level_m"] == 4.8 and gauge["warning_level"] == 2 and gauge["warning_level_key"] == "2"
    assert gauge["warning_level_ja"] == "警戒レベル2" and gauge["river"] == "矢作川"
    assert (gauge["lon"], gauge["lat"]) == (137.179, 35.094)


def test_history_by_japanese_calendar_day(api, published):
    r = api.get("/open/datasets/city-rivers/history?bucket=day&start=2026-10-31&end=2026-11-05")
    assert r.status_code == 200
    buckets = r.json()["buckets"]
    # 1 Nov 09:00, 17:00 JST; 2 Nov 01:00, 09:00 JST
    assert [(b["bucket_start"][:10], b["count"], b["max"]) for b in buckets] == [
        ("2026-11-01", 2, 2.0),
        ("2026-11-02", 2, 4.0),
    ]
    # a date is Japan's midnight: from 2 November, the first day's readings are out
    later = api.get("/open/datasets/city-rivers/history?bucket=day&start=2026-11-02&end=2026-11-05").json()
    assert [b["bucket_start"] for b in later["buckets"]] == ["2026-11-02T00:00:00+09:00"]
    utc = api.get("/open/datasets/city-rivers/history?start=2026-11-01T12:00:00Z&end=2026-11-05").json()
    # an offset is taken as given: 12:00Z is 21:00 in Japan, so the 2 November readings (01:00, 09:00) alone count
    assert [(b["bucket_start"], b["count"]) for b in utc["buckets"]] == [("2026-11-02T00:00:00+09:00", 2)]
    month = api.get("/open/datasets/city-rivers/history?bucket=month&start=2026-01-01&end=2026-12-31").json()
    assert [(b["count"], b["mean"]) for b in month["buckets"]] == [(4, 2.5)]


@pytest.mark.parametrize(
    "query",
    ["bucket=week", "start=yesterday", "start=2026-11-05&end=2026-11-01", "bucket=day&start=2020-01-01&end=2026-01-01"],
)
def test_bad_history_parameters_are_400(api, published, query):
    r = api.get(f"/open/datasets/city-rivers/history?{query}")
    assert r.status_code == 400 and r.json()["error"] == "invalid"


def test_alerts_have_no_history_and_unknown_formats_are_404(api, published):
    assert api.get("/open/datasets/city-alerts/history").status_code == 400
    assert api.get("/open/datasets/city-rivers/download.xlsx").status_code == 404
    assert api.get("/open/datasets/city-rivers/download.csv?bom=maybe").status_code == 400
    assert api.get("/open/datasets/NOT_AN_ID/latest").status_code == 404
    assert api.get("/open/alerts/abc/cap").status_code == 404
    assert api.get("/open/alerts/99999999999999999999999/cap").status_code == 404


def test_csv_reads_in_pandas_with_and_without_the_bom(api, published):
    r = api.get("/open/datasets/city-rivers/download.csv")
    assert r.headers["content-type"].startswith("text/csv") and r.headers["link"] == f'<{CC_BY}>; rel="license"'
    assert r.headers["content-disposition"] == 'attachment; filename="city-rivers.csv"'
    assert not r.content.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(io.BytesIO(r.content), encoding="utf-8")
    assert frame.loc[0, "id"] == "gauge-1" and frame.loc[0, "name"] == "平戸橋"
    assert frame.loc[0, "attribution"] == "豊田市" and frame.loc[0, "licence_url"] == CC_BY
    excel = api.get("/open/datasets/city-rivers/download.csv?bom=1").content
    assert excel.startswith(b"\xef\xbb\xbf") and excel[3:] == r.content
    # read as Excel does with a BOM: the first column's name is clean
    assert pd.read_csv(io.BytesIO(excel), encoding="utf-8-sig").columns[0] == "id"


def test_parquet_reads_in_pyarrow(api, published):
    r = api.get("/open/datasets/city-rivers/download.parquet")
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column("water_level_m").to_pylist() == [4.8]
    assert table.schema.metadata[b"license"] == b"CC-BY-4.0"
    assert table.column("attribution").to_pylist() == ["豊田市"]


def test_geojson_reads_in_gdal(api, published, tmp_path):
    r = api.get("/open/datasets/city-alerts/download.geojson")
    assert r.headers["content-type"] == "application/geo+json"
    doc = r.json()
    assert doc["license"] == "CC-BY-4.0" and doc["attribution"] == "豊田市"
    path = tmp_path / "alerts.geojson"
    path.write_bytes(r.content)
    frame = pyogrio.read_dataframe(path)
    assert list(frame["title_en"]) == ["Yahagi caution"] and list(frame["attribution"]) == ["豊田市"]
    assert frame.geometry[0].x == pytest.approx(137.179)
    rivers = tmp_path / "rivers.geojson"
    rivers.write_bytes(api.get("/open/datasets/city-rivers/download.geojson").content)
    assert pyogrio.read_info(rivers)["features"] == 1


def test_etag_and_304(api, published):
    first = api.get("/open/datasets/city-rivers/latest")
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=60"
    again = api.get("/open/datasets/city-rivers/latest", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert api.get("/open/datasets/city-rivers/latest", headers={"If-None-Match": '"other"'}).status_code == 200
    for path in ("/open/datasets/city-rivers/download.parquet", "/open/catalog", "/open/alerts"):
        tag = api.get(path).headers["etag"]
        assert api.get(path, headers={"If-None-Match": f'W/{tag}, "x"'}).status_code == 304, path


def test_open_alerts_link_to_their_cap(api, published):
    (alert,) = api.get("/open/alerts").json()["alerts"]
    assert alert["level"] == 2 and alert["title_ja"] == "Yahagi caution 注意" and alert["attribution"] == "豊田市"
    assert alert["cap"].endswith(f"/open/alerts/{alert['id']}/cap")
    cap = api.get(f"/open/alerts/{alert['id']}/cap")
    assert cap.status_code == 200 and cap.headers["content-type"].startswith("application/cap+xml")
    valid_cap(cap.content)


def test_the_catalogue_is_dcat_that_rdflib_reads(api, published):
    r = api.get("/open/catalog")
    assert r.headers["content-type"].startswith("application/ld+json")
    g = rdflib.Graph().parse(data=r.text, format="json-ld")
    datasets = set(g.subjects(RDF.type, DCAT.Dataset))
    assert {str(d).rsplit("/", 1)[1] for d in datasets} == {"city-alerts", "city-rain", "city-rivers"}
    for d in datasets:
        assert g.value(d, DCTERMS.license) == rdflib.URIRef(CC_BY)
        assert {t.language for t in g.objects(d, DCTERMS.title)} == {"ja", "en"}
        urls = [str(g.value(x, DCAT.downloadURL)) for x in g.objects(d, DCAT.distribution)]
        assert len(urls) == 3
    # every download URL of the catalogue answers
    base = "http://127.0.0.1:8000"
    for url in g.objects(None, DCAT.downloadURL):
        assert api.get(str(url).removeprefix(base)).status_code == 200


def test_stand_summaries_hold_no_single_stand(api, world, db):
    from shapely.geometry import box

    from geo import Stand, upsert_stands

    upsert_stands(
        db,
        [
            Stand(
                stand_id="7-1",
                rinpan=7,
                shohan=1,
                geom=box(137.3, 35.1, 137.31, 35.11),
                species_1="スギ",
                ownership="private",
                area_ha=1.5,
                volume_m3=300.0,
            ),
            Stand(
                stand_id="7-2",
                rinpan=7,
                shohan=2,
                geom=box(137.31, 35.1, 137.32, 35.11),
                species_1="スギ",
                ownership="private",
                area_ha=2.5,
                volume_m3=100.0,
            ),
        ],
        source_file="test",
        source_crs="EPSG:4326",
    )
    admin = world["keys"]["admin"]
    _define(api, admin, "city-forest", "stand_summaries")
    _publish(api, admin, "city-forest")
    items = api.get("/open/datasets/city-forest/latest").json()["items"]
    assert items == [{"compartment": 7, "species": "スギ", "stands": 2, "area_ha": 4.0, "volume_m3": 400.0}]
    text = api.get("/open/datasets/city-forest/download.csv").text
    assert "private" not in text and "7-1" not in text


def test_evacuation_sites_are_served_only_once_their_table_exists(api, world, db):
    admin = world["keys"]["admin"]
    _define(api, admin, "city-shelters", "evacuation_sites")
    _publish(api, admin, "city-shelters")
    made_here = not db.execute("SELECT to_regclass('evacuation_sites') IS NOT NULL").fetchone()[0]
    if made_here:  # before migration 0063: no table, no sites, no error
        assert api.get("/open/datasets/city-shelters/latest").json()["items"] == []
        # the columns migration 0063 gives the table, made here for this test alone
        db.execute(
            "CREATE TABLE evacuation_sites (id text PRIMARY KEY, kind text, name text, name_kana text, name_en text,"
            " address text, phone text, hazards text[], capacity integer, elevation_m double precision,"
            " attributes jsonb, geom geometry (Point, 4326))"
        )
    try:
        db.execute(
            "INSERT INTO evacuation_sites (id, kind, name, name_kana, name_en, address, phone, hazards, capacity,"
            " elevation_m, attributes, geom) VALUES ('test-site-1', 'shelter', '豊田市役所', 'とよたしやくしょ',"
            " 'Toyota City Hall', '西町3-60', '0565-31-1212', ARRAY['flood', 'earthquake'], 500, 40.5, '{}',"
            " ST_SetSRID(ST_MakePoint(137.156, 35.082), 4326))"
        )
        items = api.get("/open/datasets/city-shelters/latest").json()["items"]
        site = next(i for i in items if i["id"] == "test-site-1")
        assert site["hazards"] == ["flood", "earthquake"] and site["name_en"] == "Toyota City Hall"
        csv_text = api.get("/open/datasets/city-shelters/download.csv").text
        assert "flood;earthquake" in csv_text
    finally:
        if made_here:
            db.execute("DROP TABLE evacuation_sites")
        else:
            db.execute("DELETE FROM evacuation_sites WHERE id = 'test-site-1'")


def test_public_snapshot_gathers_every_published_dataset(db, published):
    snap = public_snapshot(db, NOW)
    assert [d.id for d in snap.datasets] == ["city-alerts", "city-rain", "city-rivers"]
    (gauge,) = snap.river_gauges
    assert gauge.id == "gauge-1" and gauge.warning_level == 2 and gauge.source.attribution == "豊田市"
    assert [g.id for g in snap.rain_gauges] == ["rain-1"] and snap.rain_gauges[0].rainfall_mm == 3.5
    assert [a.id for a in snap.alerts] == [published["city_alert"]]
    assert snap.alerts[0].level_en == "Level 2: caution" and snap.evacuation_sites == ()


def test_rate_limit_per_address(database_url, world):
    with api_client(database_url, open_rate_per_s=0.01, open_burst=3) as client:
        codes = [client.get("/open/datasets").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/open/catalog")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # the limit is the anonymous face's alone: a keyed /v1 request is not counted against it
        assert client.get("/v1/open-datasets", headers=world["keys"]["admin"]).status_code == 200


def test_no_client_address_in_the_access_log(api, published, caplog):
    with caplog.at_level("INFO", logger="mimamori.api.access"):
        api.get("/open/datasets/city-rivers/latest")
    lines = [json.dumps(getattr(r, "fields", {})) + r.getMessage() for r in caplog.records]
    assert lines and all("testclient" not in line and "127.0.0.1" not in line for line in lines)
    assert any("/open/datasets/{dataset_id}/latest" in line for line in lines)


# -- built once, served from memory (api/answer_cache.py) --------------------------------------------------------


def _set_level(db, value: float) -> None:
    db.execute(
        "UPDATE latest_readings SET value = %s, time = %s WHERE device_id = 'gauge-1' AND metric = 'water_level'",
        (value, NOW + timedelta(seconds=1)),
    )


def _level(client) -> float:
    return client.get("/open/datasets/city-rivers/latest").json()["items"][0]["water_level_m"]


def test_a_new_reading_reaches_citizens_within_the_freshness_bound(database_url, published, db):
    with api_client(database_url, open_burst=1000, open_fresh_s=0.3) as client:
        assert _level(client) == 4.8
        _set_level(db, 5.1)
        assert _level(client) == 4.8  # served from memory: the database is not read again at once
        time.sleep(0.4)
        assert _level(client) == 5.1


def test_publication_changes_through_the_process_take_effect_at_once(database_url, published, db):
    admin = published["keys"]["admin"]
    with api_client(database_url, open_burst=1000, open_fresh_s=600) as client:
        assert client.get("/open/datasets/city-rivers/latest").status_code == 200
        assert "平戸橋" in client.get("/public?lang=ja").text
        assert client.post("/v1/open-datasets/city-rivers/unpublish", headers=admin).status_code == 200
        assert client.get("/open/datasets/city-rivers/latest").status_code == 404
        assert "平戸橋" not in client.get("/public?lang=ja").text
        _set_level(db, 5.5)
        assert _publish(client, admin, "city-rivers").status_code == 200
        assert _level(client) == 5.5


def test_without_the_cache_every_request_reads_the_database(database_url, published, db):
    with api_client(database_url, open_burst=1000, open_fresh_s=0) as client:
        assert _level(client) == 4.8
        _set_level(db, 5.2)
        assert _level(client) == 5.2


# -- a real harvester: CKAN's ckanext-dcat ------------------------------------------------------------------------

# CKAN and ckanext-dcat from PyPI, pinned (bump deliberately), in an environment of their own: CKAN pins its
# requirements (the `requirements` extra) apart from ours. Made on first use (~15 s), then reused.
CKAN_ENV = CACHE / "ckan-dcat"
CKAN_REQUIREMENTS = ("ckan[requirements]==2.12.0", "ckanext-dcat==2.4.4")
CKAN_PROFILES = ("euro_dcat_ap_2", "euro_dcat_ap_3")  # ckanext-dcat's DCAT-AP profiles; 3 is its default
PDL = "https://www.digital.go.jp/resources/open_data/public_data_license_v1.0"


@pytest.fixture(scope="session")
def ckan_python() -> Path:
    try:
        return peer_python(CKAN_ENV, CKAN_REQUIREMENTS, "import ckanext.dcat.processors", python="3.11")
    except PeerEnvUnavailable as e:
        if e.offline:
            pytest.skip(f"CKAN's environment cannot be built, the package index is out of reach: {e}")
        raise


def _ckan_harvest(python: Path, url: str, *profiles: str, **options: str) -> dict:
    """What ckanext-dcat's parser makes of the catalogue at ``url`` (tests/ckan_dcat_probe.py)."""
    flags = [arg for name, value in options.items() for arg in (f"--{name.replace('_', '-')}", value)]
    done = subprocess.run(
        [str(python), str(Path(__file__).parents[1] / "ckan_dcat_probe.py"), url, *profiles, *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _extras(dataset: dict) -> dict[str, str]:
    return {e["key"]: e["value"] for e in dataset["extras"]}


def test_ckans_dcat_harvester_makes_one_dataset_per_published_dataset(
    ckan_python, database_url, db, api, published, tmp_path
):
    admin = published["keys"]["admin"]
    upsert_device(db, device_id="rain-2", tenant_id="toyota-city", device_type="rain_gauge", lon=137.41, lat=35.3)
    description = "矢作川の雨量 / rainfall on the Yahagi"
    assert _define(api, admin, "city-rain", "rainfall", description=description).status_code == 200
    assert _define(api, admin, "city-forest", "stand_summaries", licence="PDL-1.0").status_code == 200
    assert _publish(api, admin, "city-forest").status_code == 200
    # a Japanese portal: its own licence register, which lists the deeds' URLs, and Japanese as its language
    register = tmp_path / "licenses.json"
    register.write_text(
        json.dumps(
            [
                {"id": "CC-BY-4.0", "title": "クリエイティブ・コモンズ 表示 4.0 国際", "url": CC_BY},
                {"id": "PDL-1.0", "title": "公共データ利用規約（第1.0版）", "url": PDL},
            ]
        )
    )
    with served(database_url) as url:
        stock = _ckan_harvest(ckan_python, f"{url}/open/catalog", *CKAN_PROFILES)
        # with the harvest source's config of docs/open-data.md
        ja = {"locale": "ja", "licenses": str(register), "rdf_format": JSON_LD}
        portal = _ckan_harvest(ckan_python, f"{url}/open/catalog", "euro_dcat_ap_3", **ja)
    assert stock["content_type"] == JSON_LD and stock["rdf_format_accepted"] and portal["rdf_format_accepted"]
    assert stock["head_status"] == 405  # the harvester then GETs, as it does for any server refusing HEAD

    base = "http://127.0.0.1:8000/open/datasets"
    kinds = {  # acme-rivers is defined, not published
        "city-alerts": Kind.alerts,
        "city-forest": Kind.stand_summaries,
        "city-rain": Kind.rainfall,
        "city-rivers": Kind.river_levels,
    }
    ids = sorted(kinds)
    runs = [*stock["profiles"].values(), *portal["profiles"].values()]
    assert len(runs) == 3
    downloads = set()
    for run in runs:
        assert sorted(run["guids"]) == [f"{base}/{i}" for i in ids]  # one CKAN dataset each, by its URI
        assert "acme-rivers" not in json.dumps(run) and run["next_page"] is None
        for d in run["datasets"]:
            extras = _extras(d)
            dataset_id = extras["identifier"]
            assert d["url"] == f"{base}/{dataset_id}" and extras["uri"] == d["url"]
            assert d["notes"] == (description if dataset_id == "city-rain" else f"{dataset_id} en")
            assert extras["publisher_name"] == "Toyota City"
            assert extras["publisher_uri"] == "http://127.0.0.1:8000/open/publishers/toyota-city"
            assert extras["access_rights"] == "http://publications.europa.eu/resource/authority/access-right/PUBLIC"
            assert datetime.fromisoformat(extras["issued"]) <= datetime.fromisoformat(extras["modified"])
            assert sorted(t["name"] for t in d["tags"]) == sorted(dcat.KEYWORDS[kinds[dataset_id]])
            licence = PDL if dataset_id == "city-forest" else CC_BY
            assert sorted((r["format"], r["url"]) for r in d["resources"]) == [
                ("CSV", f"{base}/{dataset_id}/download.csv"),
                ("GeoJSON", f"{base}/{dataset_id}/download.geojson"),
                ("Parquet", f"{base}/{dataset_id}/download.parquet"),
            ]
            for r in d["resources"]:
                assert r["download_url"] == r["url"] and r["license"] == licence and r["rights"] == "豊田市"
                assert r["mimetype"].startswith("http://www.iana.org/assignments/media-types/")
                downloads.add(r["url"])
            # the place: the gauges' extent (a point for one gauge), as GeoJSON, which ckanext-spatial indexes
            spatial = json.loads(extras["spatial"]) if "spatial" in extras else None
            ring = [[137.36, 35.23], [137.41, 35.23], [137.41, 35.3], [137.36, 35.3], [137.36, 35.23]]
            assert spatial == {
                "city-rivers": {"type": "Point", "coordinates": [137.179, 35.094]},
                "city-rain": {"type": "Polygon", "coordinates": [ring]},
            }.get(dataset_id)  # alerts come and go, and the register's summaries have no place of their own
            assert not {"temporal_start", "temporal_end"} & set(extras)  # no dataset states a period

    assert len(downloads) == 12
    for download in downloads:  # each resource's URL answers
        assert api.get(download.removeprefix("http://127.0.0.1:8000")).status_code == 200, download
    for run in stock["profiles"].values():
        # a stock CKAN (English): the English title, and its own licence ids, matched by the licence's title;
        # the public data licence it does not know
        by_id = {_extras(d)["identifier"]: d for d in run["datasets"]}
        assert {i: (d["title"], d["license_id"]) for i, d in by_id.items()} == {
            "city-alerts": ("city-alerts en", "cc-by"),
            "city-forest": ("city-forest en", ""),
            "city-rain": ("city-rain en", "cc-by"),
            "city-rivers": ("city-rivers en", "cc-by"),
        }
    by_id = {_extras(d)["identifier"]: d for d in portal["profiles"]["euro_dcat_ap_3"]["datasets"]}
    assert {i: (d["title"], d["license_id"]) for i, d in by_id.items()} == {  # the portal's: by the deed's URL
        "city-alerts": ("city-alerts ja", "CC-BY-4.0"),
        "city-forest": ("city-forest ja", "PDL-1.0"),
        "city-rain": ("city-rain ja", "CC-BY-4.0"),
        "city-rivers": ("city-rivers ja", "CC-BY-4.0"),
    }
