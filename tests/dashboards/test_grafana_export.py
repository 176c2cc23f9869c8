"""The exported dashboards and provisioning files: Grafana's dashboard model, its file-provisioning layout, no
secrets, and the files in deploy/grafana equal to a fresh export (so they cannot drift from the code)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from dashboards import DashboardOptions, build_dashboards, export
from mimamori.settings import Settings
from tests.services import ROOT

DEPLOY = ROOT / "deploy" / "grafana"
PANEL_TYPES = ["timeseries", "table", "stat", "bargauge", "geomap"]
DS_REF = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"const": "grafana-postgresql-datasource"}, "uid": {"const": "mimamori"}},
}
# Written from Grafana's dashboard JSON model documentation (schemaVersion 39): the fields Grafana needs to
# import a dashboard and run its SQL panels, with their types.
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "time", "templating", "tags", "timezone", "refresh"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "tags": {"type": "array", "items": {"type": "string"}},
        "timezone": {"enum": ["browser", "utc", ""]},
        "refresh": {"type": "string", "pattern": "^[0-9]+[smhd]$"},
        "time": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": {"type": "string", "pattern": "^now-[0-9]+[smhdwMy]$"}, "to": {"const": "now"}},
        },
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "type", "datasource", "query", "refresh", "multi", "includeAll"],
                        "properties": {
                            "name": {"type": "string", "pattern": "^[a-z_]+$"},
                            "type": {"const": "query"},
                            "datasource": DS_REF,
                            "query": {"type": "string", "pattern": "__value"},
                            "refresh": {"enum": [1, 2]},
                        },
                    },
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "datasource", "gridPos", "targets", "fieldConfig", "options"],
                "properties": {
                    "id": {"type": "integer", "minimum": 1},
                    "type": {"enum": PANEL_TYPES},
                    "title": {"type": "string", "minLength": 1},
                    "datasource": DS_REF,
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {
                            "h": {"type": "integer", "minimum": 1},
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                            "y": {"type": "integer", "minimum": 0},
                        },
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "datasource", "rawSql", "format", "rawQuery", "editorMode"],
                            "properties": {
                                "refId": {"type": "string", "pattern": "^[A-Z]$"},
                                "datasource": DS_REF,
                                "rawSql": {"type": "string", "minLength": 10},
                                "format": {"enum": ["time_series", "table"]},
                                "rawQuery": {"const": True},
                                "editorMode": {"const": "code"},
                            },
                        },
                    },
                    "fieldConfig": {"type": "object", "required": ["defaults", "overrides"]},
                    "repeat": {"type": "string"},
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def dashboards():
    return build_dashboards(DashboardOptions())


def test_every_dashboard_matches_the_dashboard_model(dashboards):
    jsonschema.Draft202012Validator.check_schema(DASHBOARD_SCHEMA)
    for dashboard in dashboards:
        jsonschema.validate(dashboard, DASHBOARD_SCHEMA)


def test_the_issue_s_six_dashboards_are_there(dashboards):
    assert [d["uid"] for d in dashboards] == [
        "mimamori-rivers",
        "mimamori-landslides",
        "mimamori-rainfall",
        "mimamori-forestry",
        "mimamori-alert-map",
        "mimamori-ingest",
    ]
    alert_map = dashboards[4]
    assert any(p["type"] == "geomap" for p in alert_map["panels"])


def test_panels_do_not_overlap_and_ids_are_unique(dashboards):
    for dashboard in dashboards:
        cells = set()
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for p in dashboard["panels"]:
            g = p["gridPos"]
            assert g["x"] + g["w"] <= 24
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{dashboard['uid']}: {p['title']} overlaps another panel"
            cells |= mine


def test_every_variable_a_panel_uses_is_defined_and_repeats_name_one(dashboards):
    for dashboard in dashboards:
        defined = {v["name"] for v in dashboard["templating"]["list"]}
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                used = set(re.findall(r"\$([a-z][a-z_]*)\b", target["rawSql"]))
                assert used <= defined, f"{dashboard['uid']} / {panel['title']}: {used - defined}"
            if "repeat" in panel:
                assert panel["repeat"] in defined


def test_geomap_layers_read_the_latitude_and_longitude_the_queries_return(dashboards):
    geomap = next(p for p in dashboards[4]["panels"] if p["type"] == "geomap")
    refs = {t["refId"] for t in geomap["targets"]}
    for layer in geomap["options"]["layers"]:
        assert layer["location"] == {"mode": "coords", "latitude": "latitude", "longitude": "longitude"}
        assert layer["filterData"]["options"] in refs
    for target in geomap["targets"]:
        assert "AS latitude" in target["rawSql"] and "AS longitude" in target["rawSql"]


def test_timescaledb_mode_rolls_city_days_up_from_the_hourly_aggregate():
    plain = json.dumps(build_dashboards(DashboardOptions()))
    tsdb = json.dumps(build_dashboards(DashboardOptions(timescaledb=True)))
    # readings_1d holds UTC days; a day of the city (JST) is 24 of its hours (issue 15, bug 3).
    assert "FROM readings_1h" in tsdb and "readings_1h" not in plain and "readings_1d" not in tsdb


def test_dashboard_options_defaults_are_the_settings_defaults():
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert DashboardOptions.from_settings(settings, timescaledb=False) == DashboardOptions()


def test_export_writes_grafana_s_provisioning_layout(tmp_path, dashboards):
    written = export(tmp_path, dashboards, DashboardOptions(), folder="Mimamori", datasource_name="Mimamori")
    names = sorted(str(p.relative_to(tmp_path)) for p in written)
    assert names == sorted(
        ["provisioning/datasources/mimamori.yaml", "provisioning/dashboards/mimamori.yaml"]
        + [f"dashboards/{d['uid']}.json" for d in dashboards]
    )
    ds = yaml.safe_load((tmp_path / "provisioning/datasources/mimamori.yaml").read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["uid"] == "mimamori" and source["type"] == "grafana-postgresql-datasource"
    assert source["jsonData"]["timescaledb"] is False
    providers = yaml.safe_load((tmp_path / "provisioning/dashboards/mimamori.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards/mimamori"
    for d in dashboards:
        assert json.loads((tmp_path / "dashboards" / f"{d['uid']}.json").read_text()) == d


def test_export_removes_a_dashboard_the_code_no_longer_makes(tmp_path, dashboards):
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "mimamori-old.json").write_text("{}")
    (tmp_path / "dashboards" / "someone-elses.json").write_text("{}")
    export(tmp_path, dashboards, DashboardOptions(), folder="Mimamori", datasource_name="Mimamori")
    assert not (tmp_path / "dashboards" / "mimamori-old.json").exists()
    assert (tmp_path / "dashboards" / "someone-elses.json").exists()


def _values(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _values(v)
    elif isinstance(node, list):
        for v in node:
            yield from _values(v)
    else:
        yield node


def test_the_provisioned_datasource_takes_credentials_from_grafana_s_environment_only():
    ds = yaml.safe_load((DEPLOY / "provisioning/datasources/mimamori.yaml").read_text())["datasources"][0]
    for key in ("url", "user"):
        assert re.fullmatch(r"\$\{MIMAMORI_GRAFANA_DB_[A-Z]+\}", ds[key])
    assert ds["secureJsonData"] == {"password": "${MIMAMORI_GRAFANA_DB_PASSWORD}"}
    assert "password" not in json.dumps(ds["jsonData"]).lower()


def test_nothing_under_deploy_grafana_holds_a_credential():
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"postgres(ql)?://[^\s\"']*:[^\s\"'@]*@", text), path
            assert "glsa_" not in text, path


def test_deploy_grafana_is_a_fresh_export(tmp_path):
    """Edit dashboards/ and run `mimamori grafana export --mode plain`; this test keeps them in step."""
    options = DashboardOptions()
    export(tmp_path, build_dashboards(options), options, folder="Mimamori", datasource_name="Mimamori")
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    shipped = {p.relative_to(DEPLOY): p.read_text() for p in DEPLOY.rglob("*") if p.suffix in (".json", ".yaml")}
    assert set(fresh) == set(shipped)
    for name, text in fresh.items():
        assert shipped[Path(name)] == text, f"deploy/grafana/{name} is stale: run `mimamori grafana export`"
