"""A local stand-in for the part of Grafana's HTTP API that `mimamori grafana sync` uses (no Grafana runs here).

It answers as Grafana's documented API does: bearer-token auth (401 otherwise), 404 with a message for a missing
data source or folder, 409 for a duplicate name or uid, and dashboards saved by uid with a version that grows
(412 without ``overwrite`` when the version is stale). Served by uvicorn on a free port over real HTTP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.services import free_port, wait_for_port


@dataclass
class GrafanaState:
    token: str
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)  # by uid: {"dashboard", "folderUid", ...}
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1


def _not_found(message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=404)


def create_standin(state: GrafanaState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def auth(request: Request, call_next: Any) -> Any:
        state.requests.append((request.method, request.url.path))
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return JSONResponse({"message": "invalid API key"}, status_code=401)
        return await call_next(request)

    @app.get("/api/frontend/settings")
    def frontend_settings() -> dict[str, Any]:
        return {"buildInfo": {"version": "11.3.0", "commit": "standin", "edition": "Open Source"}}

    @app.get("/api/datasources/uid/{uid}")
    def datasource_by_uid(uid: str) -> Any:
        ds = state.datasources.get(uid)
        return ds if ds else _not_found("Data source not found")

    @app.get("/api/datasources/name/{name}")
    def datasource_by_name(name: str) -> Any:
        for ds in state.datasources.values():
            if ds["name"] == name:
                return ds
        return _not_found("Data source not found")

    @app.post("/api/datasources")
    async def create_datasource(request: Request) -> Any:
        body = await request.json()
        if body.get("uid") in state.datasources or any(d["name"] == body["name"] for d in state.datasources.values()):
            return JSONResponse({"message": "data source with the same name or uid already exists"}, status_code=409)
        ds = {**body, "id": state.next_id, "version": 1}
        state.next_id += 1
        state.datasources[body["uid"]] = ds
        return {"datasource": ds, "id": ds["id"], "message": "Datasource added", "name": ds["name"]}

    @app.put("/api/datasources/uid/{uid}")
    async def update_datasource(uid: str, request: Request) -> Any:
        if uid not in state.datasources:
            return _not_found("Data source not found")
        body = await request.json()
        old = state.datasources[uid]
        # Grafana keeps the stored secret when an update carries no secureJsonData.
        ds = {**body, "id": old["id"], "version": old["version"] + 1}
        if "secureJsonData" not in body and "secureJsonData" in old:
            ds["secureJsonData"] = old["secureJsonData"]
        state.datasources[uid] = ds
        return {"datasource": ds, "id": ds["id"], "message": "Datasource updated", "name": ds["name"]}

    @app.get("/api/folders/{uid}")
    def folder(uid: str) -> Any:
        found = state.folders.get(uid)
        return found if found else _not_found("folder not found")

    @app.post("/api/folders")
    async def create_folder(request: Request) -> Any:
        body = await request.json()
        uid = body.get("uid") or f"f{state.next_id}"
        if uid in state.folders:
            return JSONResponse({"message": "a folder with the same uid already exists"}, status_code=409)
        created = {"id": state.next_id, "uid": uid, "title": body["title"], "version": 1}
        state.next_id += 1
        state.folders[uid] = created
        return created

    @app.post("/api/dashboards/db")
    async def save_dashboard(request: Request) -> Any:
        body = await request.json()
        dashboard = body.get("dashboard") or {}
        if not dashboard.get("title") or not dashboard.get("uid"):
            return JSONResponse({"message": "Dashboard title cannot be empty"}, status_code=400)
        folder_uid = body.get("folderUid")
        if folder_uid and folder_uid not in state.folders:
            return JSONResponse({"message": "folder not found"}, status_code=400)
        old = state.dashboards.get(dashboard["uid"])
        if old and not body.get("overwrite") and dashboard.get("version") != old["dashboard"]["version"]:
            return JSONResponse({"message": "The dashboard has been changed by someone else"}, status_code=412)
        version = old["dashboard"]["version"] + 1 if old else 1
        dash_id = old["dashboard"]["id"] if old else state.next_id
        if not old:
            state.next_id += 1
        state.dashboards[dashboard["uid"]] = {
            "dashboard": {**dashboard, "id": dash_id, "version": version},
            "folderUid": folder_uid,
            "message": body.get("message"),
        }
        return {
            "id": dash_id,
            "uid": dashboard["uid"],
            "url": f"/d/{dashboard['uid']}/x",
            "status": "success",
            "version": version,
        }

    @app.get("/api/dashboards/uid/{uid}")
    def dashboard(uid: str) -> Any:
        found = state.dashboards.get(uid)
        if not found:
            return _not_found("Dashboard not found")
        return {"dashboard": found["dashboard"], "meta": {"folderUid": found["folderUid"]}}

    return app


class GrafanaStandin:
    """Runs the stand-in in a thread; ``url`` is its base URL."""

    def __init__(self, token: str) -> None:
        self.state = GrafanaState(token=token)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_standin(self.state), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="grafana-standin", daemon=True)

    def __enter__(self) -> GrafanaStandin:
        self.thread.start()
        wait_for_port(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
