"""Simulator physics and determinism, checked lightly but honestly on whole scenario runs (no broker needed)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import load_catalogue
from ingest.codecs import decode_telemetry
from ingest.validation import Limits, validate_readings
from simulators import SENML, SimClock, Simulation, city_devices, load_scenario, sized_fleet, warning_level
from simulators.hydrology import SoilParams, SoilStore

START = datetime(2025, 9, 1, 0, 0, tzinfo=UTC)  # 09:00 JST


def run(name: str, *, seed: int | None = None, fmt: str = "native", devices=None):
    scenario = load_scenario(name)
    sim = Simulation(scenario, devices or city_devices(), START, seed=seed, fmt=fmt)
    return sim, sim.advance(START + timedelta(hours=scenario.duration_h))


def series(messages) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
    out: dict[tuple[str, str], list[tuple[datetime, float]]] = defaultdict(list)
    for m in messages:
        for r in decode_telemetry(m.payload, m.content_type, m.time).readings:
            out[(m.device_id, r.metric)].append((r.time, r.value))
    return out


def hourly(points: list[tuple[datetime, float]], how=sum) -> list[float]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, v in points:
        buckets[int((t - START).total_seconds() // 3600)].append(v)
    return [how(buckets[h]) if buckets[h] else 0.0 for h in range(max(buckets) + 1)]


@pytest.fixture(scope="module")
def typhoon():
    return run("typhoon")


@pytest.fixture(scope="module")
def calm():
    return run("calm")


def test_typhoon_river_peak_lags_the_rain_peak(typhoon):
    _, msgs = typhoon
    s = series(msgs)
    rain = hourly(s[("rain-asahi", "rainfall")])
    level = hourly(s[("yahagi-takahashi", "water_level")], max)
    rain_peak, level_peak = rain.index(max(rain)), level.index(max(level))
    assert 2 <= level_peak - rain_peak <= 8, (rain_peak, level_peak)


def test_typhoon_crosses_the_documented_levels_of_the_takahashi_gauge(typhoon):
    _, msgs = typhoon
    meta = next(d for d in city_devices() if d.id == "yahagi-takahashi").metadata
    peak = max(v for _, v in series(msgs)[("yahagi-takahashi", "water_level")])
    assert peak > meta["danger_m"] > meta["evacuation_m"] > meta["caution_m"]
    assert peak < 7.93 + 0.5  # not far beyond the 岩津 record (domain.md §1)


@pytest.mark.parametrize(("name", "reached"), [("typhoon", 4), ("calm", 0)])
def test_every_city_gauge_reaches_danger_in_the_typhoon_and_stays_below_standby_when_calm(name, reached, calm, typhoon):
    sim, msgs = {"calm": calm, "typhoon": typhoon}[name]
    gauges = {d.id: d for d in sim.devices if d.device_type.startswith("river_gauge")}
    peaks = {
        device: max(warning_level(v, gauges[device].metadata) for _, v in points)
        for (device, metric), points in series(msgs).items()
        if metric == "water_level"
    }
    assert set(peaks) == set(gauges)
    assert all(level == reached for level in peaks.values()), peaks


def fastest_rise_m_per_h(points: list[tuple[datetime, float]]) -> float:
    """The steepest rise over any 30 minutes, per hour."""
    rises = []
    for i, (t, v) in enumerate(points):
        earlier = [w for u, w in points[max(0, i - 30) : i] if t - u >= timedelta(minutes=30)]
        if earlier:
            rises.append((v - earlier[-1]) * 2)
    return max(rises)


def test_small_rivers_rise_faster_than_the_yahagi(typhoon):
    s = series(typhoon[1])
    yahagi = fastest_rise_m_per_h(s[("yahagi-takahashi", "water_level")])
    kago = fastest_rise_m_per_h(s[("kago-fujioka", "water_level")])
    assert yahagi <= 2.0  # large rivers: at most 1–2 m/h (domain.md §1)
    # The stream at Fujioka has a third of the Yahagi's depth to danger, yet rises faster.
    assert kago > yahagi, (kago, yahagi)


def test_the_extensometer_accelerates_only_after_rain(typhoon):
    s = series(typhoon[1])
    disp = s[("ext-asahi-1", "displacement")]
    rain = s[("rain-asahi", "rainfall")]
    rate = [(t, (v - disp[i - 6][1])) for i, (t, v) in enumerate(disp) if i >= 6]  # mm per hour
    fast = [t for t, r in rate if r > 1.0]
    assert fast, "the unstable slope never moved faster than 1 mm/h"
    rain_before = sum(v for t, v in rain if t < fast[0])
    assert rain_before >= 150, rain_before  # the slope waits for the soil to fill
    assert max(r for _, r in rate) >= 4.0  # reaches the evacuation criterion (domain.md §2)
    assert max(abs(r) for t, r in rate if t < START + timedelta(hours=4)) < 0.1  # creep only before the rain


def test_calm_slopes_only_creep(calm):
    disp = series(calm[1])[("ext-asahi-1", "displacement")]
    assert disp[-1][1] - disp[0][1] < 1.0  # < 1 mm/day: no active movement (domain.md §2)


def test_soil_moisture_rises_within_minutes_and_drains_over_days():
    soil = SoilStore(SoilParams())  # dry ground
    before = soil.water_content
    soil.step(rain_mm=15, dt_h=10 / 60)  # a heavy 10 minutes
    wet = soil.water_content
    assert wet - before > 0.03
    for _ in range(24):
        soil.step(0, 1)
    one_day = soil.water_content
    for _ in range(48):
        soil.step(0, 1)
    three_days = soil.water_content
    assert wet > one_day > three_days > before + 0.01  # drains, but not back to dry within three days
    assert before >= 0.15 and wet <= 0.45


def test_dendrometer_shrinks_and_swells_daily_within_the_documented_range(calm):
    points = series(calm[1])[("dendro-inabu-1", "stem_radius_change")]
    values = [v for _, v in points]
    assert 20 <= max(values) - min(values) <= 110  # 20–100 µm a day plus noise (domain.md §3)


def test_the_crisis_gauge_reports_daily_below_its_start_level_and_often_above_it(calm, typhoon):
    calm_count = sum(1 for m in calm[1] if m.device_id == "kago-fujioka")
    storm_count = sum(1 for m in typhoon[1] if m.device_id == "kago-fujioka")
    assert calm_count == 1
    assert storm_count > 100  # every 2 min while above its observation-start level


@pytest.mark.parametrize("name", ["calm", "typhoon"])
def test_fault_free_readings_all_pass_the_hub_catalogue(name, calm, typhoon):
    sim, msgs = {"calm": calm, "typhoon": typhoon}[name]
    catalogue = load_catalogue()
    types = {d.id: d.device_type for d in sim.devices}
    limits = Limits(max_future=timedelta(minutes=5), max_past=timedelta(days=365))
    counted = 0
    for m in msgs:
        decoded = decode_telemetry(m.payload, m.content_type, m.time)
        assert not decoded.rejections
        _, rejected = validate_readings(
            m.device_id, decoded.readings, catalogue[types[m.device_id]].metrics, m.time, limits
        )
        assert not rejected, (m.device_id, rejected)
        counted += len(decoded.readings)
    assert counted > 5000


def test_a_seed_repeats_a_run_exactly_and_another_seed_does_not():
    fleet = sized_fleet(city_devices(), 40, seed=3)
    _, a = run("typhoon", devices=fleet)
    _, b = run("typhoon", devices=fleet)
    _, c = run("typhoon", devices=fleet, seed=9)
    assert [(m.topic, m.payload) for m in a] == [(m.topic, m.payload) for m in b]
    assert [m.payload for m in a] != [m.payload for m in c]


def test_a_run_is_the_same_however_it_is_sliced():
    scenario = load_scenario("typhoon")
    whole = Simulation(scenario, city_devices(), START).advance(START + timedelta(hours=6))
    sliced_sim = Simulation(scenario, city_devices(), START)
    sliced = []
    for minutes in range(7, 6 * 60 + 1, 7):
        sliced += sliced_sim.advance(START + timedelta(minutes=minutes))
    sliced += sliced_sim.advance(START + timedelta(hours=6))
    assert [m.payload for m in whole] == [m.payload for m in sliced]


def test_senml_carries_the_same_readings_as_native_json():
    _, native = run("calm")
    _, senml = run("calm", fmt=SENML)
    assert all(m.content_type == "application/senml+json" for m in senml)
    assert series(native) == series(senml)


def test_generated_fleets_are_seeded_and_cover_every_device_type():
    a, b = sized_fleet([], 200, seed=5), sized_fleet([], 200, seed=5)
    assert a == b and len({d.id for d in a}) == 200
    assert {d.device_type for d in a} == set(load_catalogue())
    assert all(34.9 < d.lat < 35.4 and 137.0 < d.lon < 137.7 for d in a)  # over Toyota City


@given(
    speed=st.floats(min_value=1, max_value=10_000),
    hours=st.floats(min_value=0.1, max_value=72),
    offsets=st.lists(st.floats(min_value=0, max_value=100_000), min_size=1, max_size=20),
)
def test_accelerated_time_never_runs_ahead_of_the_wall_clock_and_ends_at_it(speed, hours, offsets):
    wall0 = START
    clock = SimClock.anchored(wall0, speed, timedelta(hours=hours))
    assert clock.sim_at(clock.wall_end) == clock.wall_end
    rounding = timedelta(microseconds=speed)  # datetimes hold microseconds; acceleration multiplies the rounding
    for offset in sorted(offsets):
        wall = wall0 + timedelta(seconds=offset)
        assert clock.sim_at(wall) <= wall + rounding
        assert abs(clock.wall_at(clock.sim_at(wall)) - wall) <= rounding
