"""bench.ingest measures the hub's own client: on a paho that would send ingest down paho's public path it refuses,
with a clear message and a non-zero exit, before it starts a broker or makes a database."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ingest.mqtt_client
from bench import ingest as bench
from ingest.mqtt_client import PAHO_PRIVATE_NAMES
from tests.services import ROOT

_GONE = "_a_name_this_paho_does_not_have"


def _not_started(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the benchmark started something before refusing")


def test_the_pinned_paho_passes_the_guard() -> None:
    assert bench.refuse_without_fast_path() is None


def test_without_the_fast_path_main_refuses_before_starting_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest.mqtt_client, "PAHO_PRIVATE_NAMES", (*PAHO_PRIVATE_NAMES, _GONE))
    monkeypatch.setattr(bench, "Mosquitto", _not_started)
    monkeypatch.setattr(bench, "create_scratch_database", _not_started)
    monkeypatch.setattr(sys, "argv", ["bench.ingest"])
    with pytest.raises(SystemExit) as refused:
        bench.main()
    message = str(refused.value.code)
    assert _GONE in message and "public path" in message and "pins" in message


def test_python_m_bench_ingest_exits_non_zero_with_the_message() -> None:
    # The self-check made to fail in the real process, as a paho past the pin would make it.
    code = (
        "import runpy, ingest.mqtt_client as m; "
        f"m.PAHO_PRIVATE_NAMES = (*m.PAHO_PRIVATE_NAMES, {_GONE!r}); "
        "runpy.run_module('bench.ingest', run_name='__main__')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "lacks what the ingest fast path uses" in done.stderr and _GONE in done.stderr
    assert "round 1" not in done.stderr  # refused before the first measurement
