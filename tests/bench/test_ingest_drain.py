"""bench.ingest's drain phase and its Node-RED peer (#21): the flow is the shape the issue names, the targets are
checked in the right direction, and the smallest drain-only run stores, by SQL, every reading published, for
Mimamori and for Node-RED alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import ingest as bench
from bench import nodered_peer as peer
from tests.services import ROOT

USES_SERVICES = True  # the smoke run starts its own broker and scratch database

SMOKE = ["--drain-only", "--devices", "2", "--rounds", "1", "--drain-messages", "6000"]
SMOKE += ["--drain-batched-messages", "3000"]  # above ingest's batch of 2,000 messages: more than one commit


def _flow() -> dict[str, dict[str, object]]:
    """The generated flow's nodes by id."""
    login = peer.BrokerLogin(1883, "ingest", "secret")
    nodes = peer.flow(login, "nr-1", "$share/nr-1/mimamori/v1/+/+/telemetry", "postgresql://postgres@h:5433/db", 60)
    return {str(n["id"]): n for n in nodes}


def test_the_flow_is_mqtt5_persistent_shared_batched_and_parameterised() -> None:
    nodes = _flow()
    broker = nodes["broker"]
    assert (broker["protocolVersion"], broker["cleansession"], broker["sessionExpiry"]) == ("5", False, "60")
    assert "secret" not in json.dumps(nodes)  # the login goes to flows_cred.json, not into the flow
    assert nodes["in"]["topic"] == "$share/nr-1/mimamori/v1/+/+/telemetry" and nodes["in"]["qos"] == "1"
    assert (nodes["batch"]["count"], nodes["batch"]["timeout"], nodes["batch"]["build"]) == ("500", "0.05", "array")
    code = str(nodes["insert"]["func"])
    assert "unnest($1::timestamptz[], $2::float8[], $3::text[], $4::text[])" in code
    assert "ON CONFLICT DO NOTHING" in code and "[t, v, d, m]" in code  # bound values, no SQL built from data
    pool = str(nodes["insert"]["initialize"])
    assert '"host": "h"' in pool and '"port": 5433' in pool and '"database": "db"' in pool


def test_drain_targets_are_checked_each_in_its_direction_and_absent_ones_left_out() -> None:
    result = {
        "drain_nodered_ratio": 1.6,
        "drain_nodered_ratio_batched10": 1.2,
        "drain_cpu_nodered_ratio": 0.4,
        "drain_cpu_nodered_ratio_batched10": 0.7,
        "broker_limit_ratio": 0.5,
    }
    found = {name: by["one_process"][1] for name, by in bench.targets(result).items()}
    assert found == {
        "drain, 1 reading/msg: ≥ 1.5× Node-RED's": True,
        "drain, 10 readings/msg: ≥ 1.5× Node-RED's": False,
        "drain, 1 reading/msg: CPU per reading ≤ 0.5× Node-RED's": True,
        "drain, 10 readings/msg: CPU per reading ≤ 0.5× Node-RED's": False,
        "drain, 1 reading/msg: ≥ 80 % of the broker's delivery limit": False,
    }


def test_cpu_seconds_come_from_proc_and_grow_with_work() -> None:
    before = bench.cpu_seconds(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert bench.cpu_seconds(os.getpid()) > before


def test_without_npm_the_peer_is_skipped_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peer.shutil, "which", lambda tool: None if tool == "npm" else f"/usr/bin/{tool}")
    args = bench.parse_args(["--drain-only"])
    found, reason = bench.start_peer(args, bench.Mosquitto(), "postgresql:///x", Path("/nonexistent"))
    assert found is None and reason == "npm is not on PATH"


@pytest.mark.skipif(bool(peer.missing_tool()), reason=f"Node-RED peer cannot run: {peer.missing_tool()}")
@pytest.mark.timeout(600)
def test_the_smallest_drain_run_stores_every_published_reading_for_both() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest", *SMOKE], cwd=ROOT, capture_output=True, text=True, timeout=590
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if (result["nodered_skipped"] or "").startswith("npm install"):
        pytest.skip(f"Node-RED peer not installed: {result['nodered_skipped']}")
    assert result["nodered"].startswith("Node-RED 4.") and result["nodered_skipped"] is None
    assert result["drain_published_readings"] == 6000 and result["drain_published_readings_batched10"] == 30_000
    for s in ("", "_batched10"):
        published = result[f"drain_published_readings{s}"]
        assert result[f"drain_stored_readings{s}"] == [published]  # counted by SQL in series_readings
        assert result[f"nodered_drain_stored_readings{s}"] == [published]  # and in the peer's own table
        for key in ("drain", "nodered_drain", "broker_limit"):
            assert result[f"{key}_readings_per_s{s}"] > 0 and result[f"{key}_cpu_ms_per_1000{s}"] >= 0
    assert len(result["targets"]) == 5
    assert all(isinstance(ok, bool) for by in result["targets"].values() for _, ok in by.values())
    assert "drain of a queued backlog" in done.stdout and "mosquitto_sub" in done.stdout
