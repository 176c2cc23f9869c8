"""bench.api's faces' scenarios (issue 18): the native API, SensorThings and NGSI-LD are asked the same questions on
the same windows, each face's p99 is set against its question's native one, and the smallest `--faces` run prints
them beside the native ones in the table and in the JSON line."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from bench import api as bench
from tests.services import ROOT

USES_SERVICES = True  # the smoke run makes its own scratch database and starts `mimamori api`

SMOKE = ["--faces", "--devices", "8", "--reading-devices", "8", "--days", "2", "--requests", "20", "--clients", "1"]
SMOKE += ["--api-workers", "1"]
FACES = ["raw_day.sta", "raw_day.ngsi_ld", "hourly_week.ngsi_ld", "devices.sta", "devices.ngsi_ld"]
FACES += ["month_paging.sta", "month_first_page.sta"]


def test_each_face_is_set_against_its_own_questions_native_p99() -> None:
    results: dict[str, dict[str, float]] = {
        "baseline_conformance": {"p99_ms": 2.0},
        "raw_day.native": {"p99_ms": 10.0},
        "raw_day.sta": {"p99_ms": 12.0},
        "raw_day.ngsi_ld": {"p99_ms": 20.0},
        "devices.native": {"p99_ms": 0.0},  # a zero native p99 divides by 0.1 ms, not by zero
        "devices.sta": {"p99_ms": 0.1},
        "hourly_week.ngsi_ld": {"p99_ms": 5.0},  # no native beside it: no ratio
    }
    ratios = bench.faces_ratios(results)
    assert ratios == {"raw_day.sta": 1.2, "raw_day.ngsi_ld": 2.0, "devices.sta": 1.0}
    assert results["raw_day.sta"]["p99_vs_native"] == 1.2 and "p99_vs_native" not in results["raw_day.native"]


def test_the_faces_ask_the_same_windows() -> None:
    end = datetime(2026, 12, 1, tzinfo=UTC)
    bounds = {bench.DEVICE: (end - timedelta(days=30), end), bench.MINUTE_DEVICE: (end - timedelta(days=30), end)}
    page = ("/sta/v1.1/Datastreams(2)/Observations?%24skiptoken=x", end - timedelta(minutes=999), end)
    urls = bench.faces_scenarios(random.Random(0), 5, bounds, {bench.DEVICE: 1, bench.MINUTE_DEVICE: 2}, [page], page)
    for native, sta, ngsi in zip(urls["raw_day.native"], urls["raw_day.sta"], urls["raw_day.ngsi_ld"], strict=True):
        n, s, g = (parse_qs(urlsplit(u).query) for u in (native, sta, ngsi))
        start, stop = n["start"][0], n["end"][0]
        assert datetime.fromisoformat(stop) - datetime.fromisoformat(start) == timedelta(days=1)
        assert s["$filter"] == [f"phenomenonTime ge {start} and phenomenonTime lt {stop}"] and s["$top"] == ["1000"]
        assert (g["timeAt"], g["endTimeAt"]) == ([start], [stop])
    for native, ngsi in zip(urls["hourly_week.native"], urls["hourly_week.ngsi_ld"], strict=True):
        n, g = parse_qs(urlsplit(native).query), parse_qs(urlsplit(ngsi).query)
        assert (n["bucket"], n["agg"], g["aggrMethods"], g["aggrPeriodDuration"]) == (
            ["1h"],
            ["avg"],
            ["avg"],
            ["PT1H"],
        )
        assert (g["timeAt"], g["endTimeAt"]) == (n["start"], n["end"])
    assert urls["month_paging.sta"] == [page[0]] * 5
    assert all(f"/v1/devices/{bench.MINUTE_DEVICE}/readings?" in u for u in urls["month_paging.native"])
    assert "hourly_week.sta" not in urls and "hourly_week.sta" in bench.FACES_NOT_ASKED


@pytest.mark.timeout(600)
def test_the_smallest_faces_run_prints_the_faces_beside_the_native_ones() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.api", *SMOKE], cwd=ROOT, capture_output=True, text=True, timeout=590
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "api" and result["faces"] is True and result["stands"] == 0
    questions = {name.partition(".")[0] for name in result["results"]} - {"baseline_conformance"}
    assert questions == {"raw_day", "hourly_week", "devices", "month_paging", "month_first_page"}
    assert set(result["faces_ratios"]) == set(FACES)
    for name in FACES:
        face = result["results"][name]
        assert face["p99_vs_native"] == result["faces_ratios"][name] > 0
        assert face["requests"] == 20 and face["p50_ms"] <= face["p99_ms"]
    assert result["faces_minute_device_pages"] == 3  # two days of 1-minute readings, 1,000 a page
    assert result["faces_deep_pages_timed"] == 1 and result["faces_deep_vs_first_page_p99"] > 0
    assert result["faces_target_ratio"] == 1.5
    met = all(r <= 1.5 for r in result["faces_ratios"].values())
    assert result["faces_target_met"] is met
    for name in ["raw_day.native", *FACES, "p99 ÷ native", "hourly_week.sta: not asked"]:
        assert name in done.stderr  # the table and its notes
    assert "unexpected statuses" not in done.stderr
