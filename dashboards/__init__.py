"""Grafana: dashboards generated from the schema, file provisioning, a query check, and sync over the HTTP API.

`sync` needs the optional extra ``mimamori[grafana]`` (grafana-client); everything else needs only the core.
"""

from dashboards.check import QueryRun, check_dashboards, query_count, resolve_variables
from dashboards.dashboards import DashboardOptions, build_dashboards
from dashboards.macros import (
    TimeRange,
    VariableValue,
    auto_interval,
    expand_macros,
    format_duration,
    parse_duration,
    render_sql,
    substitute_variables,
)
from dashboards.model import DATASOURCE_TYPE, SCHEMA_VERSION
from dashboards.provisioning import (
    DASHBOARDS_PATH,
    DATASOURCE_ENV,
    FOLDER_UID,
    DatasourceSettings,
    dashboards_yaml,
    datasource_yaml,
    export,
)
from dashboards.sync import SyncReport, sync

__all__ = [
    "DASHBOARDS_PATH",
    "DATASOURCE_ENV",
    "DATASOURCE_TYPE",
    "FOLDER_UID",
    "SCHEMA_VERSION",
    "DashboardOptions",
    "DatasourceSettings",
    "QueryRun",
    "SyncReport",
    "TimeRange",
    "VariableValue",
    "auto_interval",
    "build_dashboards",
    "check_dashboards",
    "dashboards_yaml",
    "datasource_yaml",
    "expand_macros",
    "export",
    "format_duration",
    "parse_duration",
    "query_count",
    "render_sql",
    "resolve_variables",
    "substitute_variables",
    "sync",
]
