"""The alert's states and what may move it between them: one table for people's actions, one rule for the
evaluator's transitions. Pure: no database (alerts/lifecycle.py applies what is decided here to the store).

open -> acknowledged -> resolved -> closed. People acknowledge, resolve by hand and close (``ACTIONS``); rules
raise, escalate, de-escalate and resolve (``rule_step``), the kind taken from the evaluator's transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from alerts.cap_messages import MSG_TYPE_OF_EVENT
from alerts.evaluate import Change, Transition
from mimamori.errors import ValidationError

STATES = ("open", "acknowledged", "resolved", "closed")
ACTIVE = ("open", "acknowledged")  # an active alert is the one alert of its (rule, subject)


class Action(StrEnum):
    acknowledge = "acknowledge"
    resolve = "resolve"
    close = "close"


@dataclass(frozen=True, slots=True)
class Step:
    """One action on a stored alert: from which states, to which, what it stamps, what event it writes."""

    action: Action
    from_states: tuple[str, ...]
    to_state: str
    event: str  # alert_events.kind
    at_column: str  # alerts.<column> set to the time of the change
    by_column: str | None  # alerts.<column> set to the actor (the table has no closed_by)
    keeps_level: bool  # the event's level: the alert's own (still in force) or 0 (over)
    refusal: str  # the 4xx message when the alert is in another state; {alert_id} and {state}

    @property
    def cap_message(self) -> str | None:
        """The CAP msgType the event is, or None: decided once, in alerts/cap_messages.py."""
        return MSG_TYPE_OF_EVENT.get(self.event)

    def refused(self, alert_id: int, state: str) -> ValidationError:
        return ValidationError(self.refusal.format(alert_id=alert_id, state=state))


ACTIONS: dict[Action, Step] = {
    Action.acknowledge: Step(
        Action.acknowledge,
        ("open",),
        "acknowledged",
        "acknowledged",
        "acknowledged_at",
        "acknowledged_by",
        keeps_level=True,
        refusal="alert {alert_id} is {state}; only an open alert can be acknowledged",
    ),
    Action.resolve: Step(
        Action.resolve,
        ACTIVE,
        "resolved",
        "resolved",
        "resolved_at",
        "resolved_by",
        keeps_level=False,
        refusal="alert {alert_id} is already {state}",
    ),
    Action.close: Step(
        Action.close,
        ("resolved",),
        "closed",
        "closed",
        "closed_at",
        None,
        keeps_level=False,
        refusal="alert {alert_id} is {state}; only a resolved alert can be closed",
    ),
}


def step_for(action: Action, alert_id: int, state: str) -> Step:
    """The step ``action`` takes from ``state``; ValidationError (a 4xx) when the table does not allow it."""
    step = ACTIONS[action]
    if state not in step.from_states:
        raise step.refused(alert_id, state)
    return step


# -- the evaluator's transitions --------------------------------------------------------------------------


class RuleOp(StrEnum):
    open = "open"  # a new alert, its event 'raised'
    change = "change"  # the active alert's level moves: 'escalated' / 'deescalated'
    resolve = "resolve"  # the active alert is over: 'resolved'
    stale = "stale"  # the evaluator started from another level than the stored one: nothing stored, resync


@dataclass(frozen=True, slots=True)
class RuleStep:
    op: RuleOp
    event: Change | None  # the event kind to write (None for stale)


def rule_step(transition: Transition, stored: int | None) -> RuleStep | None:
    """What the evaluator's ``transition`` does to the stored alert of its (rule, subject), None when nothing.

    ``stored`` is the level of the active alert, None when there is none. The kind is the transition's own; the
    store only decides that an alert someone resolved by hand while the condition still held is opened anew
    ('raised') at the next change, and that a transition from a level the store does not hold is stale (the
    engine then rebuilds its state from the store instead of guessing what the change was).
    """
    if stored is None:
        if transition.level == 0:
            return None  # resolved by hand already, or never stored
        return RuleStep(RuleOp.open, Change.raised)
    if transition.previous != stored:
        return RuleStep(RuleOp.stale, None)
    match transition.change:
        case Change.resolved:
            return RuleStep(RuleOp.resolve, Change.resolved)
        case Change.escalated | Change.deescalated:
            return RuleStep(RuleOp.change, transition.change)
        case _:  # raised from 0: cannot hold with an active alert (stored > 0 == previous is false above)
            return RuleStep(RuleOp.stale, None)
