"""The alerts package's pure core (issue 16, item 5): its modules reach no database, and the lifecycle's one
table of transitions allows and refuses what docs/alerts.md says. No database, no broker."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.evaluate import Change, Transition
from alerts.states import ACTIONS, ACTIVE, STATES, Action, RuleOp, RuleStep, rule_step, step_for
from mimamori.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("alerts", "mimamori", "devices", "ingest", "api", "geo", "opendata", "simulators")

PURE = [
    "alerts.binding",
    "alerts.cap",
    "alerts.cap_messages",
    "alerts.evaluate",
    "alerts.model",
    "alerts.rulefiles",  # reads rule files, never the database
    "alerts.ruleset",
    "alerts.states",
]
# the package itself counts: `from alerts import x` of a name (not a module) runs the facade, which loads all
IO_MODULES = {
    "alerts",
    "alerts.destinations",  # resolves host names
    "alerts.engine",
    "alerts.feed",
    "alerts.features",  # the alerts table as features, tiles and places
    "alerts.lifecycle",
    "alerts.manage",
    "alerts.mqtt_publish",
    "alerts.outbox",
    "alerts.queries",  # gone (split into store and outbox): it must not come back under a pure module
    "alerts.runtime",
    "alerts.sta_mqtt",  # publishes committed readings as SensorThings Observations over MQTT
    "alerts.store",
    "alerts.stream",
    "alerts.webhooks",
}
FORBIDDEN_ROOTS = ("psycopg", "psycopg_pool", "mimamori.db")


def source_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports (anywhere in it, functions included), resolved to dotted names."""
    path = source_of(module)
    assert path is not None, module
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: relative import"
            assert node.module is not None
            for a in node.names:
                # `from alerts import store` imports alerts.store; `from alerts import Action` the package
                sub = f"{node.module}.{a.name}"
                found.add(sub if source_of(sub) is not None else node.module)
    return found


def reached(module: str) -> dict[str, list[str]]:
    """Every module reachable from ``module`` through first-party modules, with one import chain to each."""
    chains: dict[str, list[str]] = {module: [module]}
    todo = [module]
    while todo:
        current = todo.pop()
        for name in sorted(imports_of(current)):
            if name in chains:
                continue
            chains[name] = [*chains[current], name]
            # the facade is forbidden, not followed: its own imports are the I/O modules themselves
            if name.split(".")[0] in FIRST_PARTY and name not in IO_MODULES and source_of(name) is not None:
                todo.append(name)
    return chains


def forbidden(name: str) -> bool:
    return name in IO_MODULES or any(name == r or name.startswith(r + ".") for r in FORBIDDEN_ROOTS)


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_reaches_no_database_and_no_io_module(module):
    bad = {name: " -> ".join(chain) for name, chain in reached(module).items() if forbidden(name)}
    assert bad == {}


def test_the_contract_sees_what_it_forbids():
    # the check itself: the engine reaches psycopg and the store, a pure module the one it is built on
    assert forbidden("psycopg.rows") and forbidden("alerts.store") and not forbidden("alerts.evaluate")
    engine = reached("alerts.engine")
    assert "psycopg" in engine and "alerts.store" in engine and "alerts.lifecycle" in engine
    assert reached("alerts.states")["alerts.ruleset"] == ["alerts.states", "alerts.evaluate", "alerts.ruleset"]
    assert imports_of("alerts.manage") >= {"alerts.store", "alerts.outbox", "psycopg"}


def test_every_alerts_module_is_classified():
    modules = {f"alerts.{p.stem}" for p in (ROOT / "alerts").glob("*.py") if p.stem != "__init__"}
    assert modules - set(PURE) - IO_MODULES == set()


# -- the one table of people's actions -----------------------------------------------------------------------


ALLOWED = {
    (Action.acknowledge, "open"): "acknowledged",
    (Action.resolve, "open"): "resolved",
    (Action.resolve, "acknowledged"): "resolved",
    (Action.close, "resolved"): "closed",
}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", STATES)
def test_each_action_from_each_state_is_allowed_or_refused(action, state):
    expected = ALLOWED.get((action, state))
    if expected is None:
        with pytest.raises(ValidationError) as refused:
            step_for(action, 7, state)
        assert f"alert 7 is {'already ' if action is Action.resolve else ''}{state}" in str(refused.value)
    else:
        assert step_for(action, 7, state).to_state == expected


def test_refusals_say_what_the_api_answered_before():
    messages = {a: str(ACTIONS[a].refused(5, "closed")) for a in Action}
    assert messages == {
        Action.acknowledge: "alert 5 is closed; only an open alert can be acknowledged",
        Action.resolve: "alert 5 is already closed",
        Action.close: "alert 5 is closed; only a resolved alert can be closed",
    }


def test_events_stamps_levels_and_cap_messages_of_each_action():
    rows = {a: (s.event, s.at_column, s.by_column, s.keeps_level, s.cap_message) for a, s in ACTIONS.items()}
    assert rows == {
        Action.acknowledge: ("acknowledged", "acknowledged_at", "acknowledged_by", True, None),
        Action.resolve: ("resolved", "resolved_at", "resolved_by", False, "Update"),  # the all-clear
        Action.close: ("closed", "closed_at", None, False, None),
    }
    assert set(ACTIONS) == set(Action)
    assert all(set(s.from_states) <= set(STATES) and s.to_state in STATES for s in ACTIONS.values())
    assert ACTIVE == ("open", "acknowledged")


# -- the evaluator's transitions against the stored alert ----------------------------------------------------

AT = datetime(2026, 7, 1, tzinfo=UTC)


def t(change: Change, previous: int, level: int) -> Transition:
    return Transition(change, level, previous, 4.2, AT)


@pytest.mark.parametrize(
    ("transition", "stored", "expected"),
    [
        (t(Change.raised, 0, 2), None, RuleStep(RuleOp.open, Change.raised)),
        (t(Change.escalated, 1, 3), 1, RuleStep(RuleOp.change, Change.escalated)),
        (t(Change.deescalated, 3, 1), 3, RuleStep(RuleOp.change, Change.deescalated)),
        (t(Change.resolved, 2, 0), 2, RuleStep(RuleOp.resolve, Change.resolved)),
        # resolved by hand while the condition held: the next change opens a new alert, whatever its kind
        (t(Change.escalated, 2, 3), None, RuleStep(RuleOp.open, Change.raised)),
        (t(Change.deescalated, 2, 1), None, RuleStep(RuleOp.open, Change.raised)),
        (t(Change.resolved, 2, 0), None, None),
        # the store holds another level than the transition starts from: stale, nothing derived from levels
        (t(Change.escalated, 2, 3), 1, RuleStep(RuleOp.stale, None)),
        (t(Change.deescalated, 3, 2), 1, RuleStep(RuleOp.stale, None)),
        (t(Change.escalated, 2, 3), 3, RuleStep(RuleOp.stale, None)),
        (t(Change.raised, 0, 2), 2, RuleStep(RuleOp.stale, None)),
        (t(Change.resolved, 3, 0), 2, RuleStep(RuleOp.stale, None)),
    ],
)
def test_the_event_kind_is_the_transitions_own(transition, stored, expected):
    assert rule_step(transition, stored) == expected
