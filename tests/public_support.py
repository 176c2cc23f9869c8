"""Seeded data for the citizens' page tests: published and unpublished datasets of two tenants, gauges at several
levels, one active alert per tenant, the sample evacuation lists, and hostile names everywhere a name can go."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from alerts.evaluate import Observation
from alerts.store import NewAlert, insert_alert
from devices import upsert_device
from geo.evacuation import import_sites, upsert_sites
from geo.evacuation_format import EvacuationSite
from opendata import DatasetDraft, Kind
from opendata.queries import save_dataset, set_published
from tests.alerts_helpers import SITE, clean_alert_tables, store

SAMPLES = Path(__file__).resolve().parent.parent / "geo" / "samples"
HOSTILE_GAUGE = '<script>alert("gauge")</script>&amp;'
HOSTILE_SITE = '<img src=x onerror="alert(1)">避難所'
HOSTILE_ATTRIBUTION = '豊田市 <b onclick="x()">"Toyota"</b>'
SECRET = "SECRET-PARTNER"  # in every unpublished item: it must appear on no page
# The gauge at level 4 (its danger level, 6.8 m, passed), near the Takahashi gauge (shared/domain.md section 5).
HIGH = "yahagi-takahashi"
HIGH_PLACE = (137.179, 35.094)


def seed_public(db: psycopg.Connection, now: datetime) -> None:
    clean_alert_tables(db)
    db.execute("TRUNCATE evacuation_sites")
    upsert_device(
        db,
        device_id=HIGH,
        tenant_id="toyota-city",
        device_type="river_gauge",
        name="矢作川 高橋",
        lon=HIGH_PLACE[0],
        lat=HIGH_PLACE[1],
        metadata={**SITE, "river": "矢作川"},
    )
    upsert_device(
        db,
        device_id="hostile-gauge",
        tenant_id="toyota-city",
        device_type="river_gauge",
        name=HOSTILE_GAUGE,
        lon=137.16,
        lat=35.04,
        metadata=SITE,
    )
    upsert_device(
        db, device_id="acme-river", tenant_id="acme", device_type="river_gauge", name=f"{SECRET} gauge", metadata=SITE
    )
    store(
        db,
        [
            Observation(HIGH, "water_level", now - timedelta(minutes=12), 6.9),
            Observation("hostile-gauge", "water_level", now - timedelta(hours=3), 1.25),
            Observation("acme-river", "water_level", now - timedelta(minutes=5), 7.77),
            Observation("rain-1", "rainfall", now - timedelta(minutes=5), 12.5),
        ],
    )
    datasets = [
        ("toyota-river-levels", Kind.river_levels, "toyota-city", "CC-BY-4.0", HOSTILE_ATTRIBUTION, True),
        ("toyota-alerts", Kind.alerts, "toyota-city", "CC-BY-4.0", "豊田市 / Toyota City", True),
        ("toyota-evacuation", Kind.evacuation_sites, "toyota-city", "PDL-1.0", "豊田市 防災対策課", True),
        ("toyota-rainfall", Kind.rainfall, "toyota-city", "CC-BY-4.0", f"{SECRET} rain draft", False),
        ("acme-river-levels", Kind.river_levels, "acme", "CC-BY-4.0", f"{SECRET} Acme", False),
        ("acme-alerts", Kind.alerts, "acme", "CC-BY-4.0", f"{SECRET} Acme alerts", False),
    ]
    for dataset_id, kind, tenant, licence, attribution, published in datasets:
        title = f"{SECRET} {dataset_id}" if not published else dataset_id
        save_dataset(db, DatasetDraft(dataset_id, kind, tenant, f"{title}（日本語）", title, attribution, "", licence))
        if published:
            set_published(db, dataset_id, True, "test")
    for tenant, device, title, level in (
        ("toyota-city", HIGH, "River water level", 4),
        ("acme", "acme-river", SECRET, 5),
    ):
        insert_alert(
            db,
            NewAlert(
                rule_id="river-level",
                subject=device,
                rule_kind="threshold",
                hazard="flood",
                title_en=title,
                title_ja="河川水位" if tenant == "toyota-city" else SECRET,
                device_id=device,
                tenant_id=tenant,
                level=level,
                value=6.9,
                device_time=now - timedelta(minutes=12),
                location=HIGH_PLACE,
                area_geojson=None,
                buffer_m=0.0,
            ),
        )
    for sample in sorted(SAMPLES.glob("*.csv")):
        import_sites(db, sample)
    hostile = EvacuationSite(
        id="232114-shelter-999",
        kind="shelter",
        name=HOSTILE_SITE,
        lon=137.2,
        lat=35.1,
        municipality_code="232114",
        site_no="999",
        address='愛知県豊田市"><script>x()</script>町1-2',
        hazards=("flood",),
        capacity=10,
    )
    upsert_sites(db, [hostile], source_file="test")
