"""`mimamori grafana sync` with grafana-client against a local stand-in of Grafana's HTTP API, over real HTTP;
and the rest of the project's HTTP tools still working with grafana-client (and urllib3-future) installed."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from dashboards import FOLDER_UID, DashboardOptions, DatasourceSettings, build_dashboards, sync
from mimamori.errors import Forbidden, UnreachableError
from tests.grafana_standin import GrafanaStandin
from tests.services import free_port

pytest.importorskip("grafana_client", reason="grafana-client is the optional extra [grafana]: uv sync --extra grafana")

TOKEN = "glsa_standin_token_0123456789"
DB_PASSWORD = "s3cret-reader-pw"


@pytest.fixture
def grafana() -> Iterator[GrafanaStandin]:
    with GrafanaStandin(TOKEN) as standin:
        yield standin


def _datasource(timescaledb: bool = False) -> DatasourceSettings:
    return DatasourceSettings.from_url(
        f"postgresql://grafana_reader:{DB_PASSWORD}@db.internal:5433/mimamori",
        name="Mimamori",
        uid="mimamori",
        sslmode="require",
        timescaledb=timescaledb,
    )


def _sync(url: str, token: str | None = TOKEN, **kw):
    dashboards = build_dashboards(DashboardOptions())
    report = sync(url=url, token=token, dashboards=dashboards, datasource=_datasource(**kw), folder="Mimamori")
    return report, dashboards


def test_first_sync_creates_the_datasource_folder_and_every_dashboard(grafana):
    report, dashboards = _sync(grafana.url)

    assert report.grafana_version == "11.3.0"
    assert report.datasource == "created" and report.folder == "created"
    ds = grafana.state.datasources["mimamori"]
    assert ds["type"] == "grafana-postgresql-datasource"
    assert ds["url"] == "db.internal:5433" and ds["user"] == "grafana_reader"
    assert ds["jsonData"]["database"] == "mimamori" and ds["jsonData"]["sslmode"] == "require"
    assert ds["secureJsonData"] == {"password": DB_PASSWORD}  # the password travels only as a secure field
    assert DB_PASSWORD not in str(ds["jsonData"])
    assert grafana.state.folders[FOLDER_UID]["title"] == "Mimamori"
    assert set(grafana.state.dashboards) == {d["uid"] for d in dashboards}
    for d in dashboards:
        stored = grafana.state.dashboards[d["uid"]]
        assert stored["folderUid"] == FOLDER_UID
        assert stored["dashboard"]["panels"] == d["panels"]
    assert [(uid, version) for uid, _url, version in report.dashboards] == [(d["uid"], 1) for d in dashboards]


def test_second_sync_updates_in_place(grafana):
    _sync(grafana.url)
    report, dashboards = _sync(grafana.url, timescaledb=True)

    assert report.datasource == "updated" and report.folder == "kept"
    assert len(grafana.state.datasources) == 1 and len(grafana.state.folders) == 1
    assert grafana.state.datasources["mimamori"]["jsonData"]["timescaledb"] is True
    assert grafana.state.datasources["mimamori"]["version"] == 2
    assert all(version == 2 for _uid, _url, version in report.dashboards)
    assert len(grafana.state.dashboards) == len(dashboards)


def test_a_datasource_of_the_same_name_with_another_uid_is_not_taken_over(grafana):
    grafana.state.datasources["someone-elses"] = {"uid": "someone-elses", "name": "Mimamori", "id": 99, "version": 1}
    with pytest.raises(Exception, match="already has a data source named 'Mimamori'"):
        _sync(grafana.url)
    assert grafana.state.datasources["someone-elses"]["version"] == 1
    assert not grafana.state.dashboards


def test_a_wrong_token_is_refused_without_echoing_it(grafana):
    with pytest.raises(Forbidden) as caught:
        _sync(grafana.url, token="glsa_wrong_token")
    assert "401" in str(caught.value)
    assert "glsa_wrong_token" not in str(caught.value) and TOKEN not in str(caught.value)
    assert not grafana.state.datasources


def test_an_unreachable_grafana_is_one_clear_error():
    url = f"http://grafana:pw-in-url@127.0.0.1:{free_port()}"
    with pytest.raises(UnreachableError) as caught:
        _sync(url)
    assert "cannot be reached" in str(caught.value)
    assert "pw-in-url" not in str(caught.value)


def test_the_cli_syncs_with_settings_from_the_environment(grafana, monkeypatch, capsys):
    from hub.cli import main

    monkeypatch.setenv("MIMAMORI_GRAFANA_URL", grafana.url)
    monkeypatch.setenv("MIMAMORI_GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("MIMAMORI_GRAFANA_DATABASE_URL", f"postgresql://grafana_reader:{DB_PASSWORD}@db:5432/mimamori")
    main(["grafana", "sync", "--mode", "plain"])
    shown = capsys.readouterr()
    assert "data source created" in shown.out
    assert "mimamori-rivers" in shown.out
    assert DB_PASSWORD not in shown.out + shown.err and TOKEN not in shown.out + shown.err
    assert len(grafana.state.dashboards) == 6


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_httpx_requests_and_urllib3_keep_working_with_grafana_client_imported():
    # urllib3-future replaces the `urllib3` package at start-up; the project's other HTTP clients must not care.
    import grafana_client  # noqa: F401
    import httpx
    import urllib3

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert httpx.get(url, timeout=5).text == "hello"
        with httpx.Client(timeout=5) as client:
            assert client.get(url).status_code == 200
        assert urllib3.PoolManager().request("GET", url, timeout=5).data == b"hello"
        requests = pytest.importorskip("requests", reason="requests is not installed here")
        assert requests.get(url, timeout=5).text == "hello"
    finally:
        server.shutdown()
        server.server_close()


def test_fastapi_testclient_still_works_with_grafana_client_imported():
    import grafana_client  # noqa: F401
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    with TestClient(app) as client:
        assert client.get("/ping").json() == {"pong": "yes"}
