"""/healthz, /readyz, /metrics and request ids, against the real app, database and broker."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from devices.keys import Role, create_key
from mimamori.logs import JsonFormatter
from tests.services import dsn_address, free_port, settings_via, wait_until


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_healthz_and_readyz_answer_without_a_key(settings, pool, city):
    with TestClient(create_app(settings, pool)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert {name for name, c in ready.json()["checks"].items() if c["ok"]} == {"database", "broker"}


def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(settings, pool, city):
    away = settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"})
    with TestClient(create_app(away, pool)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["database"]["ok"] is True
    assert "127.0.0.1" not in ready.text  # no addresses for anonymous callers


def test_metrics_count_pushed_readings_and_dead_letters_by_reason_without_tenant_labels(settings, pool, db, city):
    partner = create_key(db, "acme", Role.partner)[1]
    headers = {"X-API-Key": partner, "Content-Type": "application/json"}
    with TestClient(create_app(settings, pool)) as client:
        before = samples(client.get("/metrics").text)
        client.post("/v1/telemetry?device=acme-soil-1", headers=headers, content=b'{"values": {"soil_moisture": 0.3}}')
        client.post("/v1/telemetry?device=acme-soil-1", headers=headers, content=b"{not json")
        client.get("/v1/devices/acme-soil-1", headers={"X-API-Key": partner})
        text = client.get("/metrics").text
    after = samples(text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("mimamori_ingest_readings_stored_total", source="http") == 1
    assert delta("mimamori_ingest_dead_letters_total", source="http", reason="malformed") == 1
    assert delta("mimamori_api_request_seconds_count", method="POST", route="/v1/telemetry", status="200") == 1
    assert delta("mimamori_api_request_seconds_count", method="POST", route="/v1/telemetry", status="422") == 1
    assert delta("mimamori_api_request_seconds_count", method="GET", route="/v1/devices/{device_id}", status="200") == 1
    for secret_or_tenant in ("acme", "acme-soil-1", partner):
        assert secret_or_tenant not in text


def test_static_files_are_labelled_by_their_mount_not_unmatched(settings, pool, city, caplog):
    with TestClient(create_app(settings, pool)) as client, caplog.at_level(logging.INFO, "mimamori.api.access"):
        before = samples(client.get("/metrics").text)
        answers = [
            client.get(path).status_code
            for path in ("/web/app.js", "/web/app.css", "/web/vendor/maplibre-gl.js", "/web/no-such.js", "/nowhere")
        ]
        after = samples(client.get("/metrics").text)
    assert answers == [200, 200, 200, 404, 404]

    def delta(route: str, status: str) -> float:
        key = ("mimamori_api_request_seconds_count", (("method", "GET"), ("route", route), ("status", status)))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("/web", "200") == 2 and delta("/web/vendor", "200") == 1
    assert delta("/web", "404") == 1 and delta("unmatched", "404") == 1
    logged = [(r.fields["route"], r.fields["status"]) for r in caplog.records if hasattr(r, "fields")]
    assert [x for x in logged if x[0] != "/metrics"] == [
        ("/web", 200),
        ("/web", 200),
        ("/web/vendor", 200),
        ("/web", 404),
        ("unmatched", 404),
    ]


def test_request_id_is_echoed_generated_and_logged(settings, pool, city, caplog):
    with TestClient(create_app(settings, pool)) as client, caplog.at_level(logging.INFO, "mimamori.api.access"):
        given = client.get("/healthz", headers={"X-Request-ID": "trace-42.a"})
        made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces\n"})
    assert given.headers["x-request-id"] == "trace-42.a"
    assert made.headers["x-request-id"] != "bad id with spaces\n" and len(made.headers["x-request-id"]) == 32
    record = next(r for r in caplog.records if getattr(r, "request_id", None) == "trace-42.a")
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "trace-42.a" and line["route"] == "/healthz" and line["status"] == 200


def test_api_answers_503_with_a_clear_body_while_the_database_is_away(settings, city):
    from mimamori.db import make_pool
    from tests.tcp_proxy import TcpProxy

    proxy = TcpProxy(*reversed(dsn_address(settings.dsn)))
    try:
        via = settings_via(settings, proxy.port, db_pool_timeout_s=1.0)
        pool = make_pool(via)
        with TestClient(create_app(via, pool)) as client:
            assert client.get("/readyz").status_code == 200
            proxy.cut()
            down = client.get("/v1/devices", headers={"X-API-Key": "mk_0123456789abcdef.anything"})
            not_ready = client.get("/readyz")
            alive = client.get("/healthz")
            proxy.restore()
            # The pool reconnects with back-off (psycopg_pool: 1 s, doubling, jittered), so readiness comes back
            # within seconds of the database, not at once.
            again = wait_until(
                lambda: (r := client.get("/readyz")).status_code == 200 and r,
                interval=0.25,
                timeout=30,
                what="readiness after the database came back",
            )
        pool.close()
    finally:
        proxy.close()
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    assert down.json() == {"error": "unavailable", "detail": "the database is not answering; try again shortly"}
    assert not_ready.status_code == 503 and not_ready.json()["checks"]["database"]["ok"] is False
    assert alive.status_code == 200
    assert again.status_code == 200
