"""The pure evaluator, rule kind by rule kind, on synthetic series (tables of readings -> transitions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.evaluate import (
    Observation,
    Sample,
    SubjectState,
    evaluate,
    evaluate_silence,
    event_sum,
    ladder,
    rate,
    rebuild,
    site_levels,
    window_sum,
)
from alerts.rulefiles import parse_rule
from alerts.ruleset import Direction, LevelStep

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
SITE = {"standby_m": 3.5, "caution_m": 4.5, "evacuation_m": 6.0, "danger_m": 6.8}

RIVER = parse_rule(
    {
        "id": "river",
        "kind": "threshold",
        "title": {"en": "River"},
        "metric": "water_level",
        "levels_from_site": {1: "standby_m", 2: "caution_m", 3: "evacuation_m", 4: "danger_m"},
        "deadband": 0.1,
        "clear_dwell": "20m",
    }
)


def series(values, *, metric="water_level", device="g", step=timedelta(minutes=10), start=T0):
    return [Observation(device, metric, start + i * step, v) for i, v in enumerate(values) if v is not None]


def run(rule, steps, observations, *, one_by_one=True, state=None):
    """Feed readings one batch each (as the ingestor would) and collect (change, level) pairs."""
    state = state or SubjectState()
    out = []
    batches = [[o] for o in observations] if one_by_one else [observations]
    for batch in batches:
        result = evaluate(rule, steps, state, batch)
        state = result.state
        out += [(t.change.value, t.level) for t in result.transitions]
    return out, state


# -- multi-level threshold ------------------------------------------------------------------------

THRESHOLD_CASES = [
    ("quiet river", [1.0, 1.2, 1.1], []),
    ("raise at standby", [3.0, 3.5], [("raised", 1)]),
    (
        "escalate step by step",
        [3.6, 4.6, 6.1, 6.9],
        [("raised", 1), ("escalated", 2), ("escalated", 3), ("escalated", 4)],
    ),
    ("jump straight to danger", [2.0, 7.0], [("raised", 4)]),
    # around 4.5 with a 0.1 m deadband and a 20 min clear dwell: one escalation, no flapping
    ("hysteresis holds", [4.6, 4.45, 4.52, 4.41, 4.55, 4.48], [("raised", 2)]),
    # below the clear level (4.4) for 20 min de-escalates once; below standby - deadband resolves
    (
        "de-escalate then resolve",
        [4.6, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0],
        [("raised", 2), ("deescalated", 1), ("resolved", 0)],
    ),
    ("dip shorter than clear dwell", [4.6, 4.0, 4.6, 4.0, 4.6], [("raised", 2)]),
]


@pytest.mark.parametrize(("name", "values", "expected"), THRESHOLD_CASES, ids=[c[0] for c in THRESHOLD_CASES])
def test_threshold_levels_from_site(name, values, expected):
    steps = site_levels(RIVER, SITE)
    assert run(RIVER, steps, series(values))[0] == expected


def test_threshold_uses_each_device_own_levels():
    low_gauge = site_levels(RIVER, {"standby_m": 1.2, "caution_m": 1.6})
    assert [s.level for s in low_gauge] == [1, 2]
    assert run(RIVER, low_gauge, series([1.7]))[0] == [("raised", 2)]
    assert site_levels(RIVER, {}) == ()


def test_threshold_dwell_delays_raise():
    rule = RIVER.model_copy(update={"dwell": timedelta(minutes=20)})
    steps = site_levels(rule, SITE)
    # 4.6 at 0, 10, 20 min: raised at level 2 only when held 20 min; the level-1 rung held as long
    assert run(rule, steps, series([4.6, 4.6, 4.6]))[0] == [("raised", 2)]
    assert run(rule, steps, series([4.6, 3.0, 4.6]))[0] == []


def test_falling_direction_for_low_values():
    rule = parse_rule(
        {
            "id": "battery",
            "kind": "threshold",
            "title": {"en": "Battery"},
            "metric": "battery",
            "direction": "falling",
            "levels": [{"level": 1, "at": 3.4}, {"level": 2, "at": 3.2}],
            "deadband": 0.05,
        }
    )
    steps = site_levels(rule, {})
    obs = series([3.6, 3.3, 3.1, 3.22, 3.3, 3.5], metric="battery")
    assert run(rule, steps, obs)[0] == [("raised", 1), ("escalated", 2), ("deescalated", 1), ("resolved", 0)]


@settings(deadline=None)
@given(st.floats(-5, 10), st.integers(0, 4))
def test_ladder_never_lowers_a_level_whose_value_still_holds(value, current):
    steps = [
        LevelStep(level=1, at=3.5),
        LevelStep(level=2, at=4.5),
        LevelStep(level=3, at=6.0),
        LevelStep(level=4, at=6.8),
    ]
    with_memory = ladder(value, steps, current, 0.1, Direction.rising)
    fresh = ladder(value, steps, 0, 0.1, Direction.rising)
    assert fresh <= with_memory <= max(fresh, current)


# -- rate of change --------------------------------------------------------------------------------

EXTENSOMETER = parse_rule(
    {
        "id": "ext",
        "kind": "rate",
        "title": {"en": "Extensometer"},
        "metric": "displacement",
        "window": "1h",
        "levels": [{"level": 3, "at": 2.0, "sustain": "2h"}, {"level": 4, "at": 4.0}],
        "deadband": 0.5,
        "clear_dwell": "1h",
    }
)


def displacement(rates_mm_h, step_min=10):
    """Cumulative displacement whose hourly rate follows ``rates_mm_h`` (one rate per reading)."""
    out, value = [], 100.0
    for r in rates_mm_h:
        out.append(value)
        value += r * step_min / 60
    return series(out, metric="displacement", step=timedelta(minutes=step_min))


def test_rate_sustained_two_hours_raises_level_3_only_after_two_hours():
    steps = site_levels(EXTENSOMETER, {})
    transitions, _ = run(EXTENSOMETER, steps, displacement([2.5] * 16))
    assert transitions == [("raised", 3)]
    # the rate is measurable from 30 min (half a window); 2 h later, at 150 min, the level is raised
    result, state = SubjectState(), SubjectState()
    times = []
    for o in displacement([2.5] * 16):
        result = evaluate(EXTENSOMETER, steps, state, [o])
        state = result.state
        times += [t.at for t in result.transitions]
    assert times == [T0 + timedelta(minutes=150)]


def test_rate_short_burst_is_not_sustained():
    steps = site_levels(EXTENSOMETER, {})
    assert run(EXTENSOMETER, steps, displacement([0.1] * 6 + [2.5] * 6 + [0.1] * 12))[0] == []


def test_rate_above_evacuation_raises_at_once_and_de_escalates():
    steps = site_levels(EXTENSOMETER, {})
    got = run(EXTENSOMETER, steps, displacement([5.0] * 12 + [0.0] * 24))[0]
    assert got == [("raised", 4), ("resolved", 0)]


def test_rate_interpolates_at_window_start():
    samples = tuple(Sample(T0 + timedelta(minutes=m), v) for m, v in [(0, 0.0), (40, 4.0), (70, 7.0)])
    # value at 10 min interpolates to 1.0; rate over the hour to 70 min is 6/h
    assert rate(samples, T0 + timedelta(minutes=70), timedelta(hours=1), timedelta(hours=1)) == pytest.approx(6.0)
    assert rate(samples[:1], T0, timedelta(hours=1), timedelta(hours=1)) is None


# -- accumulation ----------------------------------------------------------------------------------

RAIN60 = parse_rule(
    {
        "id": "rain60",
        "kind": "accumulation",
        "title": {"en": "Rain 60 min"},
        "metric": "rainfall",
        "window": "60m",
        "levels": [{"level": 2, "at": 20}, {"level": 3, "at": 50}],
        "deadband": 2,
        "clear_dwell": "30m",
    }
)
RAIN_EVENT = parse_rule(
    {
        "id": "event",
        "kind": "accumulation",
        "title": {"en": "Since the rain began"},
        "metric": "rainfall",
        "window": "event",
        "event_gap": "24h",
        "levels": [{"level": 2, "at": 100}],
    }
)

ACCUMULATION_CASES = [
    ("drizzle", [0.5] * 12, []),
    ("20 mm in an hour", [3.5] * 6, [("raised", 2)]),
    ("downpour escalates", [5, 5, 5, 5, 10, 10, 10, 10], [("raised", 2), ("escalated", 3)]),
    # 6 x 4 = 24 mm, then dry: the hour's sum falls below 18 mm after 3 dry readings, resolved 30 min later
    ("rain stops", [4] * 6 + [0] * 8, [("raised", 2), ("resolved", 0)]),
]


@pytest.mark.parametrize(("name", "values", "expected"), ACCUMULATION_CASES, ids=[c[0] for c in ACCUMULATION_CASES])
def test_accumulation_60_min(name, values, expected):
    assert run(RAIN60, site_levels(RAIN60, {}), series(values, metric="rainfall"))[0] == expected


def test_rain_event_sums_since_the_rain_began_and_a_24h_gap_ends_it():
    hourly = timedelta(hours=1)
    # 60 mm, a 10 h pause (same event), 50 mm more: 110 mm since the event began
    obs = series([10] * 6 + [0] * 10 + [10] * 5, metric="rainfall", step=hourly)
    assert run(RAIN_EVENT, site_levels(RAIN_EVENT, {}), obs)[0] == [("raised", 2)]
    samples = tuple(Sample(o.time, o.value) for o in obs)
    assert event_sum(samples, obs[-1].time, timedelta(hours=24)) == 110
    # after a 24 h pause, a new event starts from zero
    later = obs[-1].time + timedelta(hours=30)
    assert event_sum((*samples, Sample(later, 5.0)), later, timedelta(hours=24)) == 5


def test_window_sum_is_half_open():
    samples = tuple(Sample(T0 + timedelta(minutes=10 * i), 1.0) for i in range(7))
    assert window_sum(samples, T0 + timedelta(minutes=60), timedelta(minutes=60)) == 6


# -- late and out-of-order readings ------------------------------------------------------------------


def test_out_of_order_batch_is_judged_as_if_in_order():
    obs = series([3.6, 4.6, 6.1, 6.9])
    steps = site_levels(RIVER, SITE)
    in_order, s1 = run(RIVER, steps, obs, one_by_one=False)
    shuffled, s2 = run(RIVER, steps, [obs[2], obs[0], obs[3], obs[1]], one_by_one=False)
    assert in_order == shuffled == [("raised", 1), ("escalated", 2), ("escalated", 3), ("escalated", 4)]
    assert s1.level == s2.level == 4


def test_late_reading_completes_an_accumulation():
    obs = series([4, 4, 4, 4, 4, 3], metric="rainfall")  # 23 mm, but the 4th reading comes late
    steps = site_levels(RAIN60, {})
    early, state = run(RAIN60, steps, obs[:3] + obs[4:])
    assert early == []  # 15 mm without it (the 3 mm reading is at 50 min)
    result = evaluate(RAIN60, steps, state, [obs[3]])
    assert [(t.change.value, t.level, t.at) for t in result.transitions] == [("raised", 2, obs[-1].time)]


def test_late_reading_does_not_rewrite_the_present_level():
    steps = site_levels(RIVER, SITE)
    _, state = run(RIVER, steps, series([3.0, 3.1]))
    late_peak = Observation("g", "water_level", T0 + timedelta(minutes=5), 7.0)
    assert evaluate(RIVER, steps, state, [late_peak]).transitions == []


def test_duplicate_reading_is_judged_once():
    steps = site_levels(RAIN60, {})
    obs = series([10, 10], metric="rainfall")
    transitions, state = run(RAIN60, steps, obs + obs)
    assert transitions == [("raised", 2)]
    assert len(state.series[("g", "rainfall")]) == 2


# -- duration ----------------------------------------------------------------------------------------

SOIL = parse_rule(
    {
        "id": "soil",
        "kind": "duration",
        "title": {"en": "Saturated soil"},
        "metric": "soil_moisture",
        "op": ">=",
        "value": 0.42,
        "for": "30m",
        "level": 2,
    }
)

DURATION_CASES = [
    ("held 30 min", [0.43, 0.44, 0.45, 0.44], [("raised", 2)]),
    ("not long enough", [0.43, 0.44, 0.41, 0.44, 0.45], []),
    ("held then dries", [0.43] * 4 + [0.30], [("raised", 2), ("resolved", 0)]),
]


@pytest.mark.parametrize(("name", "values", "expected"), DURATION_CASES, ids=[c[0] for c in DURATION_CASES])
def test_duration(name, values, expected):
    assert run(SOIL, site_levels(SOIL, {}), series(values, metric="soil_moisture"))[0] == expected


# -- composite -----------------------------------------------------------------------------------------

SEDIMENT = parse_rule(
    {
        "id": "sediment",
        "kind": "composite",
        "title": {"en": "Sediment"},
        "all": [
            {"metric": "rainfall", "aggregate": "sum", "window": "60m", "op": ">=", "value": 20},
            {"metric": "soil_moisture", "aggregate": "last", "op": ">=", "value": 0.40},
        ],
        "level": 3,
    }
)


def test_composite_needs_rain_and_wet_soil_across_devices():
    steps = site_levels(SEDIMENT, {})
    rain = series([5, 5, 5, 5, 5], metric="rainfall", device="rain-1")
    dry_soil = series([0.30] * 5, metric="soil_moisture", device="soil-1")
    wet_soil = series([0.30, 0.35, 0.41, 0.42, 0.43], metric="soil_moisture", device="soil-2")
    assert run(SEDIMENT, steps, sorted(rain + dry_soil, key=lambda o: o.time))[0] == []
    got, _state = run(SEDIMENT, steps, sorted(rain + dry_soil + wet_soil, key=lambda o: o.time))
    assert got == [("raised", 3)]
    either = SEDIMENT.model_copy(update={"any": SEDIMENT.all, "all": None})
    assert run(either, steps, sorted(rain + dry_soil, key=lambda o: o.time))[0] == [("raised", 3)]


# -- silence ---------------------------------------------------------------------------------------------

SILENCE = parse_rule(
    {"id": "silent", "kind": "silence", "title": {"en": "Silent"}, "factor": 3, "level": 1, "nearby_level": 3}
)

SILENCE_CASES = [
    # (minutes since the last reading at each check, another alert nearby?) -> transitions
    ("reporting", [(5, False), (25, False)], []),
    ("silent after 3 intervals", [(29, False), (30, False)], [("raised", 1)]),
    ("worse near a flood", [(31, False), (40, True)], [("raised", 1), ("escalated", 3)]),
    ("back to normal nearby", [(40, True), (50, False)], [("raised", 3), ("deescalated", 1)]),
]


@pytest.mark.parametrize(("name", "checks", "expected"), SILENCE_CASES, ids=[c[0] for c in SILENCE_CASES])
def test_silence(name, checks, expected):
    state, got = SubjectState(), []
    for minutes, nearby in checks:
        result = evaluate_silence(SILENCE, state, T0, timedelta(minutes=10), T0 + timedelta(minutes=minutes), nearby)
        state = result.state
        got += [(t.change.value, t.level) for t in result.transitions]
    assert got == expected


def test_silence_resolves_when_the_device_reports_again():
    silent = evaluate_silence(SILENCE, SubjectState(), T0, timedelta(minutes=10), T0 + timedelta(hours=1), False)
    back = evaluate_silence(
        SILENCE, silent.state, T0 + timedelta(minutes=61), timedelta(minutes=10), T0 + timedelta(minutes=61), False
    )
    assert [(t.change.value, t.level) for t in back.transitions] == [("resolved", 0)]
    assert evaluate_silence(SILENCE, SubjectState(), None, timedelta(minutes=10), T0, True).transitions == []


# -- restart in the middle of a window ----------------------------------------------------------------


def test_restart_mid_window_neither_misses_nor_repeats():
    steps = site_levels(EXTENSOMETER, {})
    obs = displacement([2.5] * 16)
    # the process stops after 10 readings (100 min: the level is not due yet) and restarts: the window is
    # rebuilt from the stored readings and the next readings raise the alert at the same moment as without
    # the restart (150 min)
    before, _ = run(EXTENSOMETER, steps, obs[:10])
    assert before == []
    rebuilt = rebuild(EXTENSOMETER, steps, 0, obs[:10])
    assert rebuilt.transitions == []
    after_state, times = rebuilt.state, []
    for o in obs[10:]:
        r = evaluate(EXTENSOMETER, steps, after_state, [o])
        after_state = r.state
        times += [(t.change.value, t.at) for t in r.transitions]
    assert times == [("raised", T0 + timedelta(minutes=150))]


def test_restart_does_not_raise_again_an_alert_already_stored():
    steps = site_levels(RIVER, SITE)
    obs = series([4.6, 4.7, 4.8])
    assert rebuild(RIVER, steps, 2, obs).transitions == []


def test_restart_raises_an_alert_missed_while_down():
    steps = site_levels(RIVER, SITE)
    obs = series([4.6, 6.2])  # stored, but the process died before judging the second reading
    got = rebuild(RIVER, steps, 2, obs).transitions
    assert [(t.change.value, t.previous, t.level) for t in got] == [("escalated", 2, 3)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 8, allow_nan=False), min_size=1, max_size=30), st.randoms())
def test_batches_in_any_order_end_at_the_level_of_the_newest_reading(values, rnd):
    """Whatever the arrival order, the final level equals that of the in-order run (no dwell rules)."""
    rule = RIVER.model_copy(update={"clear_dwell": timedelta(0)})
    steps = site_levels(rule, SITE)
    obs = series(values)
    _, in_order = run(rule, steps, obs, one_by_one=False)
    shuffled = obs[:]
    rnd.shuffle(shuffled)
    _, any_order = run(rule, steps, shuffled, one_by_one=False)
    assert any_order.level == in_order.level


def test_a_batch_longer_than_the_look_back_is_judged_reading_by_reading():
    """A store-and-forward backlog (or an engine catching up) spans hours: its early readings still count."""
    steps = site_levels(RIVER, SITE)
    high = series([4.6] * 19)
    raised, state = run(RIVER, steps, high[:1])
    assert raised == [("raised", 2)]
    # three hours above caution, in one message: the alert stays as it is (no resolve and raise again)
    assert run(RIVER, steps, high[1:], one_by_one=False, state=state)[0] == []


@pytest.mark.parametrize(
    ("rule", "metric", "site"),
    [(RIVER, "water_level", SITE), (EXTENSOMETER, "displacement", {}), (RAIN60, "rainfall", {})],
    ids=["threshold", "rate", "accumulation"],
)
@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.floats(0, 30, allow_nan=False), min_size=1, max_size=40))
def test_one_batch_makes_the_same_transitions_as_reading_by_reading(rule, metric, site, values):
    steps = site_levels(rule, site)
    obs = series(values, metric=metric)
    one_by_one, s1 = run(rule, steps, obs)
    at_once, s2 = run(rule, steps, obs, one_by_one=False)
    assert at_once == one_by_one
    assert s1.level == s2.level
