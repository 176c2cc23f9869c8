"""The batch write on its own: which readings a transaction reports as new, for the alert engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.contract import Reading
from ingest.pipeline import Outcome
from ingest.writer import write_batch

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def reading(i: int, value: float = 1.0) -> Reading:
    return Reading(T0 + timedelta(minutes=i), "gauge-1", "water_level", value)


def test_a_batch_of_new_readings_is_handed_on_whole(db, city):
    batch = [reading(i) for i in range(5)]
    result, new = write_batch(db, [Outcome(readings=batch)])
    assert (result.stored, result.duplicates) == (5, 0)
    assert sorted(r.time for r in new) == [r.time for r in batch]


def test_only_the_readings_this_batch_stored_are_handed_on(db, city):
    write_batch(db, [Outcome(readings=[reading(0), reading(1)])])
    # two stored before, one new reading sent twice in the batch, and one other new one
    batch = [reading(0), reading(1), reading(2), reading(2), reading(3)]
    result, new = write_batch(db, [Outcome(readings=batch[:3]), Outcome(readings=batch[3:])])
    assert (result.stored, result.duplicates) == (2, 3)
    assert sorted((r.time, r.value) for r in new) == [(reading(2).time, 1.0), (reading(3).time, 1.0)]
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 4


def test_a_batch_of_repeats_hands_nothing_on(db, city):
    write_batch(db, [Outcome(readings=[reading(0)])])
    result, new = write_batch(db, [Outcome(readings=[reading(0)])])
    assert (result.stored, result.duplicates, new) == (0, 1, [])


def test_inside_an_outer_transaction_only_the_new_readings_are_handed_on_too(db, city):
    write_batch(db, [Outcome(readings=[reading(0)])])
    with db.transaction():  # write_batch's own transaction is then a savepoint
        result, new = write_batch(db, [Outcome(readings=[reading(0), reading(1), reading(1)])])
    assert (result.stored, result.duplicates) == (1, 2)
    assert [r.time for r in new] == [reading(1).time]
