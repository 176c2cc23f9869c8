"""The production layout: `mimamori ingest`, `mimamori alerts run` and `mimamori api` as separate processes
(docs/alerts.md, "Where evaluation runs"). A reading must reach the evaluator whichever way it came in: published over
MQTT to an ingestor, or pushed over HTTP to any API worker."""

from __future__ import annotations

import httpx
import pytest

from devices.keys import Role, create_key
from ingest.codecs import encode_native
from ingest.contract import RawReading
from tests.alerts_helpers import add_gauges, clean_alert_tables, write_rules
from tests.services import HubProcess, free_port, wait_until

pytestmark = pytest.mark.slow


def active_levels(db, device: str) -> list[int]:
    rows = db.execute(
        "SELECT level FROM alerts WHERE device_id = %s AND state IN ('open', 'acknowledged') ORDER BY level", (device,)
    ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def evaluator(settings, db, broker, tmp_path):
    clean_alert_tables(db)
    env = {
        "MIMAMORI_ALERTS_RULES_DIR": str(write_rules(tmp_path / "rules")),
        "MIMAMORI_ALERTS_TICK_S": "0.5",
        "MIMAMORI_ALERTS_MQTT_CLIENT_ID": broker.username,
        "MIMAMORI_ALERTS_MQTT_USERNAME": broker.username,
        "MIMAMORI_ALERTS_MQTT_PASSWORD": broker.password,
    }
    process = HubProcess(settings, "alerts", "run", env=env, ready="evaluating alert rules")
    yield process
    process.stop()


@pytest.mark.parametrize("workers", [1, 2], ids=["one-api-process", "two-api-workers"])
def test_a_reading_pushed_over_http_to_mimamori_api_raises_the_alert(settings, db, city, evaluator, workers):
    from datetime import UTC, datetime

    add_gauges(db, ("split-gauge", "toyota-city", 137.179, 35.094))
    key = create_key(db, "toyota-city", Role.partner, "river office gateway")[1]
    port = free_port()
    api = HubProcess(
        settings,
        "api",
        "--workers",
        str(workers),
        env={"MIMAMORI_API_PORT": str(port)},
        ready="Uvicorn running on" if workers == 1 else "Started parent process",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), what="the API to answer")
        body = encode_native([RawReading(datetime.now(UTC), "water_level", 6.2, None)])
        answer = httpx.post(
            url + "/v1/telemetry",
            params={"device": "split-gauge"},
            content=body,
            headers={"X-API-Key": key, "Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["stored"] == 1
        wait_until(lambda: active_levels(db, "split-gauge") == [3], timeout=30, what="the evacuation-level alert")
    finally:
        api.stop()
    assert any("evaluating alert rules" in line for line in evaluator.lines)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
