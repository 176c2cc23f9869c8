"""A batch's liveness updates merged into one row per device: the newest of each field, as before merging in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hypothesis import given
from hypothesis import strategies as st

from ingest.pipeline import Liveness, merge_liveness

T0 = datetime(2026, 11, 1, tzinfo=UTC)
_T = TypeVar("_T")


def _pick(mine: _T | None, theirs: _T | None, mine_is_newer: bool) -> _T | None:
    return mine if mine is not None and (mine_is_newer or theirs is None) else theirs


def merged_by_copies(updates: list[Liveness]) -> list[Liveness]:
    """The merge as it was written first: a new row for every update."""
    merged: dict[str, Liveness] = {}
    for u in updates:
        old = merged.get(u.device_id)
        if old is None:
            merged[u.device_id] = u
            continue
        newer = u.seen >= old.seen
        merged[u.device_id] = Liveness(
            u.device_id,
            max(u.seen, old.seen),
            max((t for t in (u.last_reading, old.last_reading) if t is not None), default=None),
            _pick(u.online, old.online, newer),
            _pick(u.battery, old.battery, newer),
            _pick(u.signal, old.signal, newer),
        )
    return list(merged.values())


def _fields(rows: list[Liveness]) -> list[tuple[object, ...]]:
    return [(r.device_id, r.seen, r.last_reading, r.online, r.battery, r.signal) for r in rows]


minutes = st.integers(0, 5).map(lambda m: T0 + timedelta(minutes=m))
updates = st.builds(
    Liveness,
    st.sampled_from(["a", "b", "c"]),
    minutes,
    st.none() | minutes,
    st.none() | st.booleans(),
    st.none() | st.floats(0, 100),
    st.none() | st.floats(-120, 0),
)


@given(st.lists(updates, max_size=30))
def test_merging_in_place_gives_what_merging_by_copies_gave(batch: list[Liveness]) -> None:
    before = _fields(batch)
    assert _fields(merge_liveness(batch)) == _fields(merged_by_copies(batch))
    assert _fields(batch) == before  # the outcomes' own updates are left as they were (a batch may be retried)


def test_a_field_keeps_its_latest_known_value_and_the_newest_update_wins():
    old = Liveness("a", T0, T0, True, 80.0, None)
    new = Liveness("a", T0 + timedelta(minutes=1), None, None, 70.0, -60.0)
    stale = Liveness("a", T0 - timedelta(minutes=1), T0 + timedelta(minutes=2), False, 10.0, -90.0)
    (row,) = merge_liveness([old, new, stale])
    assert _fields([row]) == [("a", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), True, 70.0, -60.0)]
