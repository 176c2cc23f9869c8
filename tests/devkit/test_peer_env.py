"""devkit/peer_env.py: a peer tool's environment is reused while it holds the same requirements and still imports,
and a failure to make it says whether the package index was out of reach (the only case a test may skip for)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devkit import peer_env
from devkit.peer_env import PeerEnvUnavailable, peer_python


def _ready_env(env_dir: Path, requirements: list[str]) -> Path:
    """An environment as peer_python leaves it: an interpreter (this one) and the marker of its requirements."""
    (env_dir / "bin").mkdir(parents=True)
    (env_dir / "bin" / "python").symlink_to(sys.executable)
    (env_dir / peer_env._MARKER).write_text("\n".join(requirements) + "\n")
    return env_dir / "bin" / "python"


def test_a_made_environment_is_reused_without_uv(tmp_path, monkeypatch):
    python = _ready_env(tmp_path / "peer", ["json-peer==1.0"])
    monkeypatch.setenv("PATH", str(tmp_path / "no-uv-here"))  # reuse must not need uv, nor the network
    assert peer_python(tmp_path / "peer", ["json-peer==1.0"], "import json") == python


@pytest.mark.parametrize(
    ("requirements", "check"),
    [(["json-peer==2.0"], "import json"), (["json-peer==1.0"], "import no_such_module_here")],
    ids=["the requirements changed", "it no longer imports"],
)
def test_a_stale_environment_is_made_again(tmp_path, monkeypatch, requirements, check):
    _ready_env(tmp_path / "peer", ["json-peer==1.0"])
    monkeypatch.setenv("PATH", str(tmp_path / "no-uv-here"))
    with pytest.raises(PeerEnvUnavailable, match="uv is not on PATH") as failed:  # so it went to remake it
        peer_python(tmp_path / "peer", requirements, check)
    assert not failed.value.offline


@pytest.mark.parametrize(
    ("stderr", "offline"),
    [
        ("error: Failed to fetch: `https://pypi.org/simple/ckan/`\n  Caused by: dns error", True),
        ("error: Request failed after 3 retries\n  Caused by: tcp connect error: Connection refused", True),
        ("error: No solution found when resolving dependencies: ckan==9.9 does not exist", False),
    ],
)
def test_a_failed_install_says_whether_the_index_was_out_of_reach(stderr, offline):
    command = [sys.executable, "-c", f"import sys; sys.stderr.write({stderr!r}); sys.exit(2)"]
    with pytest.raises(PeerEnvUnavailable) as failed:
        peer_env._run(command)
    assert failed.value.offline is offline and stderr.splitlines()[0] in str(failed.value)
