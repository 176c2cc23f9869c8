"""Pure rule evaluation: (rule, state, readings) -> (new state, transitions). No database, no clock.

Time is the devices' own time. A batch is sorted first, so readings that arrive out of order within it are
judged as if they had come in order. A late reading (older than the newest already seen for the subject) joins
the window, so sums and rates over the window include it, and the rule is judged again at the newest time; a late
reading never rewrites the past, it only corrects the present.

Flapping is held off twice: hysteresis (a level clears only below its ``clear`` value, or ``deadband`` back past
its threshold) and dwell (a higher level must hold for its ``sustain`` / the rule's ``dwell`` before it is raised,
a lower one for ``clear_dwell`` before the alert lowers or resolves).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.ruleset import (
    AccumulationRule,
    Aggregate,
    AnyRule,
    CompositeRule,
    Condition,
    Direction,
    DurationRule,
    LevelStep,
    RateRule,
    SilenceRule,
    ThresholdRule,
    lookback,
)

SeriesKey = tuple[str, str]  # (device id, metric)


@dataclass(frozen=True, slots=True)
class Sample:
    time: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Observation:
    """A committed reading as the evaluator sees it."""

    device_id: str
    metric: str
    time: datetime
    value: float


class Change(StrEnum):
    raised = "raised"
    escalated = "escalated"
    deescalated = "deescalated"
    resolved = "resolved"


@dataclass(frozen=True, slots=True)
class Transition:
    change: Change
    level: int  # level after the change (0 when resolved)
    previous: int
    value: float | None  # the judged quantity: level, rate, sum, seconds silent
    at: datetime  # device time (wall time for silence)


@dataclass(frozen=True, slots=True)
class SubjectState:
    """What the evaluator remembers of one (rule, subject): the accepted level and the window of readings."""

    level: int = 0
    value: float | None = None
    newest: datetime | None = None
    # since when the raw signal has been at or above each level (for sustain / dwell)
    above_since: Mapping[int, datetime] = field(default_factory=dict)
    # since when the raw signal has been below the accepted level (for clear_dwell)
    below_since: datetime | None = None
    series: Mapping[SeriesKey, tuple[Sample, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Evaluation:
    state: SubjectState
    transitions: list[Transition]


# -- levels ---------------------------------------------------------------------------------------


def site_levels(rule: AnyRule, metadata: Mapping[str, object]) -> tuple[LevelStep, ...]:
    """The level ladder of ``rule`` for one device: the rule's own, or read from the device's site metadata.

    Empty when the device lacks every threshold the rule needs (the rule then does not apply to it).
    """
    if isinstance(rule, ThresholdRule) and rule.levels_from_site:
        steps = []
        for level, key in sorted(rule.levels_from_site.items()):
            raw = metadata.get(key)
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                steps.append(LevelStep(level=level, at=float(raw)))
        return tuple(steps)
    if isinstance(rule, ThresholdRule | RateRule | AccumulationRule):
        return tuple(sorted(rule.levels, key=lambda s: s.level))
    if isinstance(rule, DurationRule):
        return (LevelStep(level=rule.level, at=rule.value, sustain=rule.hold),)
    if isinstance(rule, CompositeRule | SilenceRule):
        levels = {rule.level} | ({rule.nearby_level} if isinstance(rule, SilenceRule) else set())
        return tuple(LevelStep(level=lv, at=0.0) for lv in sorted(levels))
    return ()


def ladder(value: float, steps: Iterable[LevelStep], current: int, deadband: float, direction: Direction) -> int:
    """The level ``value`` stands at, with hysteresis: levels at or below ``current`` are kept down to their clear."""
    rising = direction is Direction.rising
    best = 0
    for s in steps:
        if s.level <= current:
            threshold = s.clear if s.clear is not None else (s.at - deadband if rising else s.at + deadband)
        else:
            threshold = s.at
        if (value >= threshold) if rising else (value <= threshold):
            best = max(best, s.level)
    return best


# -- window arithmetic ----------------------------------------------------------------------------


def _time(s: Sample) -> datetime:
    return s.time


def value_at(samples: tuple[Sample, ...], t: datetime) -> float | None:
    """The newest value at or before ``t``."""
    i = bisect.bisect_right(samples, t, key=_time)
    return samples[i - 1].value if i else None


def rate(samples: tuple[Sample, ...], t: datetime, window: timedelta, per: timedelta) -> float | None:
    """Change per ``per`` over the ``window`` ending at ``t`` (interpolated at the window's start).

    With less history than the window, the change since the first reading counts once that covers half of it.
    """
    i = bisect.bisect_right(samples, t, key=_time)
    if i == 0:
        return None
    now = samples[i - 1]
    start = t - window
    j = bisect.bisect_right(samples, start, key=_time)  # samples[:j] are at or before start
    if j == 0:
        first = samples[0]
        if first.time >= t or (t - first.time) < window / 2:
            return None
        return (now.value - first.value) / ((t - first.time) / per)
    before = samples[j - 1]
    if before.time == start or j >= i:
        then = before.value
    else:
        after = samples[j]
        frac = (start - before.time) / (after.time - before.time)
        then = before.value + frac * (after.value - before.value)
    return (now.value - then) / (window / per)


def window_sum(samples: tuple[Sample, ...], t: datetime, window: timedelta) -> float:
    """Sum of values in (t - window, t]."""
    lo = bisect.bisect_right(samples, t - window, key=_time)
    hi = bisect.bisect_right(samples, t, key=_time)
    return float(sum(s.value for s in samples[lo:hi]))


def event_sum(samples: tuple[Sample, ...], t: datetime, gap: timedelta) -> float:
    """Rain since the event began: back from ``t`` until a gap of ``gap`` without rain (0 once the event ended)."""
    hi = bisect.bisect_right(samples, t, key=_time)
    total = 0.0
    newer = t
    for s in reversed(samples[:hi]):
        if s.value <= 0:
            continue
        if newer - s.time >= gap:
            break
        total += s.value
        newer = s.time
    return total


# -- one rule kind each ---------------------------------------------------------------------------


def _aggregate(c: Condition, samples: tuple[Sample, ...], t: datetime) -> float | None:
    match c.aggregate:
        case Aggregate.last:
            return value_at(samples, t)
        case Aggregate.sum:
            return window_sum(samples, t, c.window) if samples else None
        case Aggregate.rate:
            return rate(samples, t, c.window, timedelta(hours=1))


def _signal(
    rule: AnyRule, steps: tuple[LevelStep, ...], series: Mapping[SeriesKey, tuple[Sample, ...]], t: datetime, level: int
) -> tuple[int, float | None]:
    """The raw level (before dwell) and the judged value at ``t``."""
    if isinstance(rule, CompositeRule):
        results = []
        first_value: float | None = None
        for c in rule.conditions:
            best: float | None = None
            held = False
            for (_device, metric), samples in series.items():
                if metric != c.metric:
                    continue
                v = _aggregate(c, samples, t)
                if v is None:
                    continue
                best = v if best is None else max(best, v)
                held = held or c.op.holds(v, c.value)
            results.append(held)
            if first_value is None:
                first_value = best
        met = all(results) if rule.all else any(results)
        return (rule.level if met else 0), first_value

    samples = next((s for (_d, m), s in series.items() if m in rule.metrics), ())
    value: float | None
    if isinstance(rule, ThresholdRule):
        value = value_at(samples, t)
    elif isinstance(rule, RateRule):
        value = rate(samples, t, rule.window, rule.per)
        if value is not None and rule.absolute:
            value = abs(value)
    elif isinstance(rule, AccumulationRule):
        value = event_sum(samples, t, rule.event_gap) if rule.window == "event" else window_sum(samples, t, rule.window)
    elif isinstance(rule, DurationRule):
        value = value_at(samples, t)
        if value is None:
            return 0, None
        return (rule.level if rule.op.holds(value, rule.value) else 0), value
    else:
        return 0, None
    if value is None:
        return 0, None
    return ladder(value, steps, level, rule.deadband, rule.direction), value


# -- dwell and transitions ------------------------------------------------------------------------


def _sustain(rule: AnyRule, step: LevelStep) -> timedelta:
    return max(rule.dwell, step.sustain)


def advance(
    rule: AnyRule, steps: tuple[LevelStep, ...], state: SubjectState, raw: int, value: float | None, t: datetime
) -> tuple[SubjectState, Transition | None]:
    """Apply dwell to one raw judgement at ``t`` and say whether the accepted level changes."""
    above = {lv: since for lv, since in state.above_since.items() if raw >= lv}
    for s in steps:
        if raw >= s.level:
            above.setdefault(s.level, t)
    up = max((s.level for s in steps if s.level in above and t - above[s.level] >= _sustain(rule, s)), default=0)
    below_since = state.below_since
    new_level = state.level
    if up > state.level:
        new_level, below_since = up, None
    elif raw < state.level:
        below_since = below_since or t
        if t - below_since >= rule.clear_dwell:
            new_level, below_since = raw, None
    else:
        below_since = None
    transition = None
    if new_level != state.level:
        if state.level == 0:
            change = Change.raised
        elif new_level == 0:
            change = Change.resolved
        else:
            change = Change.escalated if new_level > state.level else Change.deescalated
        transition = Transition(change, new_level, state.level, value, t)
    new_state = replace(state, level=new_level, value=value, above_since=above, below_since=below_since)
    return new_state, transition


def _merge(
    series: Mapping[SeriesKey, tuple[Sample, ...]], observations: list[Observation], keep_from: datetime | None
) -> dict[SeriesKey, tuple[Sample, ...]]:
    merged = dict(series)
    touched: dict[SeriesKey, list[Sample]] = {}
    for o in observations:
        key = (o.device_id, o.metric)
        if key not in touched:
            touched[key] = list(merged.get(key, ()))
        bucket = touched[key]
        i = bisect.bisect_left(bucket, o.time, key=_time)
        if i < len(bucket) and bucket[i].time == o.time:
            bucket[i] = Sample(o.time, o.value)  # the same reading again: stored once, judged once
        else:
            bucket.insert(i, Sample(o.time, o.value))
    for key, bucket in touched.items():
        merged[key] = tuple(bucket)
    if keep_from is not None:
        for key, samples in merged.items():
            i = bisect.bisect_left(samples, keep_from, key=_time)
            if i:
                # keep one sample before the window so rates can interpolate at its start
                merged[key] = samples[i - 1 :]
    return merged


def evaluate(
    rule: AnyRule, steps: tuple[LevelStep, ...], state: SubjectState, observations: Iterable[Observation]
) -> Evaluation:
    """Judge new readings of one subject (a device, or a composite rule's group) against ``rule``."""
    relevant = sorted((o for o in observations if o.metric in rule.metrics), key=lambda o: o.time)
    if not relevant or not steps:
        return Evaluation(state, [])
    old_newest = state.newest
    newest = max(relevant[-1].time, old_newest) if old_newest else relevant[-1].time
    instants = sorted({o.time for o in relevant if old_newest is None or o.time > old_newest})
    if not instants:
        instants = [newest]  # only late readings: the present is judged again with them in the window
    span = lookback(rule)
    # Trimmed to the oldest instant's window while judging: a backlog spanning hours is judged reading by
    # reading, each with its own history; then to the newest's, so memory stays bounded.
    series = _merge(state.series, relevant, instants[0] - span)
    state = replace(state, series=series, newest=newest)
    transitions = []
    for t in instants:
        raw, value = _signal(rule, steps, series, t, state.level)
        state, transition = advance(rule, steps, state, raw, value, t)
        if transition:
            transitions.append(transition)
    return Evaluation(replace(state, series=_merge(series, [], newest - span)), transitions)


def evaluate_silence(
    rule: SilenceRule,
    state: SubjectState,
    last_reading: datetime | None,
    expected_interval: timedelta,
    now: datetime,
    nearby_active: bool,
) -> Evaluation:
    """Silence of one device at ``now``: silent after ``factor`` x its interval, worse near an active alert."""
    if last_reading is None:
        return Evaluation(state, [])  # never reported: a device being installed, not a lost one
    silent_for = now - last_reading
    raw = 0
    if silent_for >= expected_interval * rule.factor:
        raw = max(rule.level, rule.nearby_level) if nearby_active else rule.level
    steps = site_levels(rule, {})
    new_state, transition = advance(rule, steps, state, raw, silent_for.total_seconds(), now)
    return Evaluation(replace(new_state, newest=last_reading), [transition] if transition else [])


def rebuild(rule: AnyRule, steps: tuple[LevelStep, ...], level: int, observations: Iterable[Observation]) -> Evaluation:
    """State after a restart: the stored alert's ``level`` and the readings of the rule's look-back window.

    The accepted level starts at the stored one (its dwell counts as served), the window is replayed, and at most
    one transition comes out: from the stored level to where the readings now stand. So an alert that was due
    while the process was down is raised, and one already raised is not raised again.
    """
    obs = sorted(observations, key=lambda o: o.time)
    start = obs[0].time if obs else None
    seeded = SubjectState(
        level=level,
        above_since={s.level: start for s in steps if s.level <= level and start is not None},
    )
    result = evaluate(rule, steps, seeded, obs)
    final = result.state
    if final.level == level or final.newest is None:
        return Evaluation(final, [])
    if level == 0:
        change = Change.raised
    elif final.level == 0:
        change = Change.resolved
    else:
        change = Change.escalated if final.level > level else Change.deescalated
    return Evaluation(final, [Transition(change, final.level, level, final.value, final.newest)])
