"""A peer tool's own Python environment, outside the repository's, made with uv on first use and kept.

A peer (tipg for the OGC benchmark, CKAN with ckanext-dcat for the catalogue's harvest test) is another project's
code with pins of its own that must not enter the hub's lock: it gets an environment under
``~/.cache/mimamori/<name>`` (``uv venv`` + ``uv pip install``), reused while it still holds the same requirements
and still imports (a second run costs one ``python -c``). Made once at a time: a file lock beside it.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

CACHE = Path.home() / ".cache" / "mimamori"
_MARKER = "mimamori-requirements.txt"  # the requirements the environment was made with
# What uv says when it cannot reach the package index (no network, no DNS, a proxy refusing)
_OFFLINE_SIGNS = (
    "failed to fetch",
    "dns error",
    "failed to lookup address",
    "connection refused",
    "error sending request",
    "network is unreachable",
    "operation timed out",
)


class PeerEnvUnavailable(RuntimeError):
    """The environment could not be made; ``offline`` when the package index was out of reach."""

    def __init__(self, message: str, *, offline: bool) -> None:
        super().__init__(message)
        self.offline = offline


def _imports(python: Path, check: str) -> bool:
    return python.exists() and subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        text = (done.stderr or done.stdout).strip()
        offline = any(sign in text.lower() for sign in _OFFLINE_SIGNS)
        raise PeerEnvUnavailable(f"{' '.join(command[:3])} … failed: {text[-2000:]}", offline=offline)


def peer_python(env_dir: Path, requirements: Sequence[str], check: str, *, python: str | None = None) -> Path:
    """The interpreter of the environment at ``env_dir`` holding ``requirements``, made (or remade, when they
    changed or ``check``, a Python statement, fails in it) first; ``python`` the version uv makes it with
    (``"3.11"``), the uv default when None. PeerEnvUnavailable when uv is missing or the install fails."""
    interpreter = env_dir / "bin" / "python"
    wanted = "\n".join(requirements) + "\n"
    marker = env_dir / _MARKER
    if marker.exists() and marker.read_text() == wanted and _imports(interpreter, check):
        return interpreter
    uv = shutil.which("uv")
    if uv is None:
        raise PeerEnvUnavailable(f"uv is not on PATH: it makes the environment {env_dir}", offline=False)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(env_dir.parent / f".{env_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test worker may be making it now
        if marker.exists() and marker.read_text() == wanted and _imports(interpreter, check):
            return interpreter
        marker.unlink(missing_ok=True)
        _run([uv, "venv", "--quiet", "--clear", *(["--python", python] if python else []), str(env_dir)])
        _run([uv, "pip", "install", "--quiet", "--python", str(interpreter), *requirements])
        if not _imports(interpreter, check):
            raise PeerEnvUnavailable(f"{env_dir} was made but `{check}` fails in it", offline=False)
        marker.write_text(wanted)
    return interpreter
