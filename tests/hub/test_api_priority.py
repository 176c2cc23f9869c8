"""`mimamori api` serves below ingest's CPU priority (MIMAMORI_API_NICE), lowered once the app is built so that its
start-up (the imports, most of it) is not slowed on a busy machine."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import os
from hub.compose import standalone_api
from mimamori.settings import Settings
before = os.nice(0)
standalone_api(Settings(api_nice={nice}))
print(before, os.nice(0))
"""


def _niceness(nice: int) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(nice=nice)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    return before, after


def test_the_api_process_lowers_its_priority_once_built():
    before, after = _niceness(5)
    assert after == min(19, before + 5)


def test_zero_leaves_the_priority_alone():
    before, after = _niceness(0)
    assert after == before
