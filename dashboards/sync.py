"""Push the data source, folder and dashboards to a running Grafana over its HTTP API (grafana-client).

grafana-client is an optional extra (``pip install 'mimamori[grafana]'``): it brings urllib3-future, which takes
over the ``urllib3`` import name, so it is imported here, inside `sync`, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from dashboards.model import Json
from dashboards.provisioning import FOLDER_UID, DatasourceSettings
from mimamori.errors import ConfigError, Forbidden, MimamoriError, UnreachableError
from mimamori.settings import redact_url


@dataclass
class SyncReport:
    grafana_version: str
    datasource: str  # created | updated
    folder: str  # created | kept
    dashboards: list[tuple[str, str, int | None]] = field(default_factory=list)  # uid, url, version


def _import_client() -> Any:
    try:
        from grafana_client import GrafanaApi, client
    except ImportError:
        raise ConfigError(
            "`mimamori grafana sync` needs grafana-client: install the extra, pip install 'mimamori[grafana]'"
        ) from None
    # The API class and the exceptions (which live in grafana_client.client) under one name.
    return SimpleNamespace(
        GrafanaApi=GrafanaApi,
        GrafanaException=client.GrafanaException,
        GrafanaClientError=client.GrafanaClientError,
        GrafanaTimeoutError=client.GrafanaTimeoutError,
    )


class _Translate:
    """Maps grafana-client's exceptions to the hub's, with the URL's password and the token kept out."""

    def __init__(self, client: Any, url: str, what: str) -> None:
        from niquests.exceptions import RequestException  # grafana-client's HTTP library (a dependency of it)

        self.transport_error = RequestException
        self.client = client
        self.url = redact_url(url)
        self.what = what

    def __enter__(self) -> _Translate:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, self.transport_error):  # refused, reset, DNS: grafana-client lets these through
            raise UnreachableError(
                f"Grafana at {self.url} cannot be reached ({self.what}): {type(exc).__name__}"
            ) from None
        if exc is None or not isinstance(exc, self.client.GrafanaException):
            return
        status = getattr(exc, "status_code", 0) or 0
        message = _message(getattr(exc, "response", None))
        if isinstance(exc, self.client.GrafanaTimeoutError) or status == 0:
            raise UnreachableError(f"Grafana at {self.url} did not answer ({self.what})") from None
        if status in (401, 403):
            raise Forbidden(f"Grafana at {self.url} refused the token while {self.what} ({status}{message})") from None
        raise MimamoriError(f"Grafana at {self.url} answered {status} while {self.what}{message}") from None


def _message(response: object) -> str:
    if isinstance(response, dict) and response.get("message"):
        return f": {str(response['message'])[:200]}"
    return ""


def _not_found(client_module: Any, exc: BaseException) -> bool:
    return isinstance(exc, client_module.GrafanaClientError) and getattr(exc, "status_code", None) == 404


def sync(
    *,
    url: str,
    token: str | None,
    dashboards: list[Json],
    datasource: DatasourceSettings,
    folder: str,
    timeout_s: float = 10.0,
    on_dashboard: Callable[[str], None] | None = None,
) -> SyncReport:
    """Create or update the data source (by uid), the folder, and every dashboard (overwriting by uid)."""
    gc = _import_client()
    try:
        api = gc.GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad Grafana URL {redact_url(url)}: {exc}") from None

    try:
        with _Translate(gc, url, "asking its version"):
            build = api.health.check() or {}
        report = SyncReport(grafana_version=str(build.get("version", "unknown")), datasource="", folder="")

        payload = datasource.api_payload()
        with _Translate(gc, url, "writing the data source"):
            try:
                api.datasource.get_datasource_by_uid(datasource.uid)
            except gc.GrafanaClientError as exc:
                if not _not_found(gc, exc):
                    raise
                try:
                    other = api.datasource.get_datasource_by_name(datasource.name)
                except gc.GrafanaClientError as exc2:
                    if not _not_found(gc, exc2):
                        raise
                    api.datasource.create_datasource(payload)
                    report.datasource = "created"
                else:
                    raise ConfigError(
                        f"Grafana already has a data source named {datasource.name!r} with uid {other.get('uid')!r}: "
                        "set MIMAMORI_GRAFANA_DATASOURCE_UID to it, or MIMAMORI_GRAFANA_DATASOURCE_NAME to another name"
                    ) from None
            else:
                api.datasource.update_datasource_by_uid(datasource.uid, payload)
                report.datasource = "updated"

        with _Translate(gc, url, "writing the folder"):
            try:
                api.folder.get_folder(FOLDER_UID)
                report.folder = "kept"
            except gc.GrafanaClientError as exc:
                if not _not_found(gc, exc):
                    raise
                api.folder.create_folder(folder, uid=FOLDER_UID)
                report.folder = "created"

        for dashboard in dashboards:
            with _Translate(gc, url, f"writing dashboard {dashboard['uid']}"):
                answer = api.dashboard.update_dashboard(
                    {
                        "dashboard": {**dashboard, "id": None},
                        "folderUid": FOLDER_UID,
                        "overwrite": True,  # the code is the source of these dashboards
                        "message": "mimamori grafana sync",
                    }
                )
            report.dashboards.append((dashboard["uid"], str(answer.get("url", "")), answer.get("version")))
            if on_dashboard:
                on_dashboard(dashboard["uid"])
        return report
    finally:
        api.client.s.close()
