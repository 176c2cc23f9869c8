"""Rule files: the shipped defaults load, and mistakes are explained with their line numbers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.rulefiles import RuleFileError, default_rules_dir, load_rule_dir, parse_rules
from alerts.ruleset import AccumulationRule, ThresholdRule, lookback, parse_duration
from hub.cli import main


def test_shipped_rules_cover_every_kind():
    rules = load_rule_dir(default_rules_dir())
    assert {r.kind for r in rules} == {"threshold", "rate", "accumulation", "duration", "composite", "silence"}
    river = next(r for r in rules if r.id == "river-level")
    assert isinstance(river, ThresholdRule)
    assert river.levels_from_site == {1: "standby_m", 2: "caution_m", 3: "evacuation_m", 4: "danger_m"}
    event = next(r for r in rules if r.id == "rain-event")
    assert isinstance(event, AccumulationRule) and event.window == "event"
    assert lookback(event) >= timedelta(days=7)


BAD = """\
rules:
  - id: river
    kind: threshold
    title: {en: River}
    metric: water_level
    levels:
      - {level: 2, at: 4.5}
      - {level: 7, at: 6.0}
  - id: rain
    kind: accumulation
    title: {en: Rain}
    metric: rainfall
    window: soon
    levels: [{level: 2, at: 20}]
    colour: red
"""


def test_problems_carry_line_numbers():
    with pytest.raises(RuleFileError) as caught:
        parse_rules(BAD, "bad.yaml")
    found = {(p.line, p.path) for p in caught.value.problems}
    assert (8, "rules.0.levels.1.level") in found
    assert (13, "rules.1.window") in found
    assert (15, "rules.1.colour") in found


def test_yaml_syntax_error_has_its_line():
    with pytest.raises(RuleFileError) as caught:
        parse_rules("rules:\n  - id: x\n    kind: [threshold\n", "broken.yaml")
    assert caught.value.problems[0].line is not None
    assert "not valid YAML" in caught.value.problems[0].message


def test_unknown_kind_and_duplicate_ids_are_refused():
    with pytest.raises(RuleFileError, match="kind"):
        parse_rules("rules:\n  - {id: a, kind: vibes, title: {en: A}}\n")
    dup = "rules:\n" + "  - {id: a, kind: silence, title: {en: A}}\n" * 2
    with pytest.raises(RuleFileError, match="duplicate rule ids: a"):
        parse_rules(dup)


def test_levels_must_rise_with_their_values():
    text = (
        "rules:\n  - {id: a, kind: threshold, title: {en: A}, metric: m,"
        " levels: [{level: 1, at: 5}, {level: 2, at: 3}]}\n"
    )
    with pytest.raises(RuleFileError, match="higher levels must have higher values"):
        parse_rules(text)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), (30, 30)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


def test_rules_check_command(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text((default_rules_dir() / "flood.yaml").read_text("utf-8"))
    main(["rules", "check", str(good)])
    assert "2 rule(s) OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    with pytest.raises(SystemExit) as failed:
        main(["rules", "check", str(bad)])
    assert failed.value.code == 1
    printed = capsys.readouterr().out
    assert "line 8" in printed and "line 13" in printed and "line 15" in printed
