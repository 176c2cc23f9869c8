"""docs/open-data.md against the code: its settings are the Settings' open_* fields and its snapshot fields are the
dataclasses' own, so the page cannot drift."""

from __future__ import annotations

import dataclasses
import re

import pytest

from mimamori.settings import Settings
from opendata import snapshot
from opendata.rules import LICENCES, Kind
from tests.services import ROOT

DOC = (ROOT / "docs/open-data.md").read_text("utf-8")


def test_the_documented_settings_are_the_open_settings():
    documented = {m.lower() for m in re.findall(r"MIMAMORI_(OPEN_[A-Z_]+)", DOC)}
    assert documented == {name for name in Settings.model_fields if name.startswith("open_")}
    for name in documented:
        default = Settings.model_fields[name].default
        assert re.search(rf"`MIMAMORI_{name.upper()}` \| {default:g} \|", DOC), name


@pytest.mark.parametrize(
    "cls",
    [
        snapshot.PublicSnapshot,
        snapshot.RiverGauge,
        snapshot.RainGauge,
        snapshot.PublicAlert,
        snapshot.EvacuationSite,
        snapshot.Source,
    ],
)
def test_the_snapshots_fields_are_documented_exactly(cls):
    line = next(line for line in DOC.splitlines() if line.startswith(f"- `{cls.__name__}`"))
    i = DOC.index(line)
    item = DOC[i : min(DOC.find("\n- ", i + 1) % len(DOC), DOC.find("\n\n", i) % len(DOC))]
    named = re.findall(r"`([a-z_]+)`", item)
    assert named == [f.name for f in dataclasses.fields(cls)]


def test_every_kind_and_licence_is_documented():
    for kind in Kind:
        assert f"| `{kind}` |" in DOC
    for licence in LICENCES:
        assert f"`{licence}`" in DOC
