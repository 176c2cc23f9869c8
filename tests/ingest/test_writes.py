"""The batch write on its own: which readings a transaction reports as new, for the alert engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.contract import Reading
from ingest.pipeline import Liveness, Outcome
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


def test_a_reading_repeated_within_a_new_batch_is_stored_once_with_the_rest_of_the_batch(db, city):
    # Nothing stored before, so the plain INSERT is tried first; the repeat makes it fail and ON CONFLICT takes over.
    liveness = Liveness("gauge-1", T0, reading(2).time, True, None, None)
    batch = [reading(0), reading(1), reading(1, value=9.0), reading(2)]
    result, new = write_batch(db, [Outcome(readings=batch, liveness=liveness)])
    assert (result.stored, result.duplicates) == (3, 1)
    assert sorted(r.time for r in new) == [reading(i).time for i in range(3)]
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 3
    # The rest of the transaction went on after the failed attempt: latest value and liveness are there too.
    latest = db.execute("SELECT time FROM latest_readings WHERE device_id = 'gauge-1'").fetchone()[0]
    assert latest == reading(2).time
    assert db.execute("SELECT last_reading FROM device_liveness WHERE device_id = 'gauge-1'").fetchone()[0] == latest


def test_concurrent_batches_sharing_readings_store_each_once(database_url, db, city):
    import threading

    import psycopg

    batches = [[reading(i) for i in range(k, k + 300)] for k in (0, 150)]  # 150 readings in both
    barrier = threading.Barrier(2)
    results = []

    def write(batch: list[Reading]) -> None:
        with psycopg.connect(database_url) as conn:
            barrier.wait()
            results.append(write_batch(conn, [Outcome(readings=batch)]))

    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2
    assert sum(r.stored for r, _ in results) == 450 and sum(r.duplicates for r, _ in results) == 150
    assert sum(len(new) for _, new in results) == 450  # each reading handed on once, by whichever stored it
    assert db.execute("SELECT count(*), count(DISTINCT time) FROM readings").fetchone() == (450, 450)


def test_the_newest_reading_of_each_device_and_metric_is_picked_the_first_of_equal_times():
    from ingest.queries import newest_readings

    rain = Reading(T0, "rain-1", "rainfall", 2.0)
    batch = [reading(3), reading(1), rain, reading(3, value=7.0), reading(2)]
    assert newest_readings(batch) == [reading(3), rain]  # in key order: gauge-1 before rain-1
    assert newest_readings([]) == []


def test_the_delay_copied_with_a_new_batch_is_reading_delay_cs_of_the_transaction_start(db, city):
    # Halves of a hundredth round away from zero, as PostgreSQL rounds; beyond ±248 days the delay saturates.
    offsets = [timedelta(0), timedelta(milliseconds=5), timedelta(milliseconds=-5), timedelta(microseconds=4_999)]
    offsets += [timedelta(days=-3, milliseconds=125), timedelta(days=300), timedelta(days=-300)]
    with db.transaction():
        now = db.execute("SELECT now()").fetchone()[0]
        batch = [Reading(now - o, "gauge-1", "water_level", float(i)) for i, o in enumerate(offsets)]
        write_batch(db, [Outcome(readings=batch)])
        rows = db.execute(
            "SELECT r.delay_cs, reading_delay_cs(r.time, %s) FROM series_readings r ORDER BY r.value", (now,)
        ).fetchall()
    assert [stored for stored, _ in rows] == [expected for _, expected in rows]
    assert len(rows) == len(offsets) and rows[1][0] == 1 and rows[2][0] == -1 and rows[5][0] == 2147483647
