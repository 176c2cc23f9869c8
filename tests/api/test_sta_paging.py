"""Paging deep into a month of Observations stays a keyset seek: the plan of a page far into the month reads
one page of rows from the primary key's index, whatever the depth (counted in rows, not timed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devices.sta import ENTITY_SETS, encode_cursor, parse_options
from devices.sta.queries import page_query

MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
STEP_S = 10
ROWS = 30 * 86_400 // STEP_S  # 259 200 readings: a month every ten seconds


@pytest.fixture
def month(db, city):
    series_id = db.execute(
        "INSERT INTO series (device_id, metric) VALUES ('gauge-1', 'water_level')"
        " ON CONFLICT (device_id, metric) DO UPDATE SET metric = excluded.metric RETURNING series_id"
    ).fetchone()[0]
    db.execute(
        "INSERT INTO series_readings (time, value, series_id, delay_cs)"
        " SELECT %(start)s + i * interval '10 seconds', i / 1000.0, %(series)s, 5 FROM generate_series(0, %(n)s - 1) i",
        {"start": MONTH_START, "series": series_id, "n": ROWS},
    )
    db.execute("ANALYZE series_readings")
    db.execute("ANALYZE series")
    return series_id


def _scanned(plan: dict) -> list[tuple[str, int]]:
    """(node type, actual rows) of every node reading series_readings."""
    found = []
    if plan.get("Relation Name") == "series_readings":
        found.append((plan["Node Type"], plan["Actual Rows"] * plan.get("Actual Loops", 1)))
    for child in plan.get("Plans", []):
        found += _scanned(child)
    return found


@pytest.mark.parametrize(
    ("orderby", "deep"),
    [
        ("", [MONTH_START + timedelta(days=25)]),
        ("phenomenonTime desc", [MONTH_START + timedelta(days=3)]),
        ("phenomenonTime", [MONTH_START + timedelta(days=27)]),
    ],
)
@pytest.mark.parametrize("tenant", [None, "toyota-city"])
def test_a_page_deep_in_the_month_reads_one_page_of_rows(db, month, orderby, deep, tenant):
    observations = ENTITY_SETS["Observations"]
    nav = ENTITY_SETS["Datastreams"].navs["Observations"]
    query = {"$top": "100"} | ({"$orderby": orderby} if orderby else {})
    options = parse_options(query)
    planned = page_query(observations, options, tenant=tenant, now=datetime.now(UTC), parent=(nav, month))
    options = parse_options(query | {"$skiptoken": encode_cursor(options.orderby_text, deep)})
    planned = page_query(observations, options, tenant=tenant, now=datetime.now(UTC), parent=(nav, month))
    assert len(planned.keys) == 1  # the series is fixed by the Datastream: the cursor is the time alone
    explained = db.execute(sql_explain(planned.query), planned.params).fetchone()[0]
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    scans = _scanned(plan)
    assert scans, plan
    assert all("Index" in node for node, _ in scans), scans
    assert sum(rows for _, rows in scans) <= 101, scans


def sql_explain(query):
    from psycopg import sql

    return sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query


@pytest.mark.parametrize("tenant", [None, "toyota-city"])
def test_a_page_of_all_observations_deep_in_the_month_reads_one_page_of_rows(db, month, tenant):
    observations = ENTITY_SETS["Observations"]
    options = parse_options({"$top": "100"})
    cursor = encode_cursor(options.orderby_text, [month, MONTH_START + timedelta(days=20)])
    planned = page_query(observations, parse_options({"$top": "100", "$skiptoken": cursor}), tenant=tenant,
                         now=datetime.now(UTC))  # fmt: skip
    explained = db.execute(sql_explain(planned.query), planned.params).fetchone()[0]
    plan = (explained if isinstance(explained, list) else json.loads(explained))[0]["Plan"]
    scans = _scanned(plan)
    assert all("Index" in node for node, _ in scans), scans
    assert sum(rows for _, rows in scans) <= 101, scans
