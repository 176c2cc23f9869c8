"""Hazard rules, their pure evaluation, the alert store and lifecycle, and distribution (SSE, MQTT, webhooks, CAP)."""

from alerts.evaluate import (
    Change,
    Evaluation,
    Observation,
    SubjectState,
    Transition,
    evaluate,
    evaluate_silence,
    rebuild,
    site_levels,
)
from alerts.rulefiles import (
    RuleFileError,
    RuleProblem,
    default_rules_dir,
    load_rule_dir,
    load_rule_file,
    parse_rule,
    parse_rules,
    rules_directory,
)
from alerts.ruleset import AnyRule, Hazard, lookback

__all__ = [
    "AnyRule",
    "Change",
    "Evaluation",
    "Hazard",
    "Observation",
    "RuleFileError",
    "RuleProblem",
    "SubjectState",
    "Transition",
    "default_rules_dir",
    "evaluate",
    "evaluate_silence",
    "load_rule_dir",
    "load_rule_file",
    "lookback",
    "parse_rule",
    "parse_rules",
    "rebuild",
    "rules_directory",
    "site_levels",
]
