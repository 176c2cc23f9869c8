"""The one table of tree species names (geo/species.yaml): what it accepts and what it refuses to load."""

from __future__ import annotations

import pytest

from geo.species import SpeciesNames, fold, load_species_names
from mimamori.errors import ConfigError
from simulators.stand_register import SPECIES


def test_names_are_compared_folded():
    assert fold(" Japanese-Cedar ") == fold("japanese cedar") == fold("ｊａｐａｎｅｓｅ　ｃｅｄａｒ")


def test_the_shipped_table_knows_every_species_of_the_sample_register_by_romaji():
    names = load_species_names()
    for value, _share in SPECIES:
        assert names.register_value(value) == value
    romaji = {"sugi": "スギ", "hinoki": "ヒノキ", "koyoju": "広葉樹", "akamatsu": "アカマツ", "kunugi": "クヌギ"}
    assert {name: names.register_value(name) for name in romaji} == romaji
    assert names.register_value("take") == "竹" and names.register_value("bamboo") == "竹"
    assert names.register_value("oak tree") is None


def test_a_name_given_to_two_species_is_refused():
    with pytest.raises(ConfigError, match="'cedar' names both スギ and ヒノキ"):
        SpeciesNames.from_mapping({"species": {"スギ": ["cedar"], "ヒノキ": ["cedar"]}}, "test")


def test_another_table_is_read_from_its_file(tmp_path):
    path = tmp_path / "species.yaml"
    path.write_text("species:\n  モミ: [momi, fir]\n", "utf-8")
    names = load_species_names(str(path))
    assert names.register_value("FIR") == "モミ"
    assert names.register_value("sugi") is None
    with pytest.raises(ConfigError, match="cannot read species names"):
        load_species_names(str(tmp_path / "missing.yaml"))


def test_the_table_in_docs_geo_md_is_the_shipped_one():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "geo.md").read_text("utf-8")
    section = text.split("| register value | also accepted |", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in section.strip().splitlines()[1:]]
    documented = {value.strip(): tuple(fold(n) for n in names.split(",")) for value, names in rows}
    shipped = {value: tuple(fold(n) for n in names[1:]) for value, names in load_species_names().names.items()}
    assert documented == shipped
