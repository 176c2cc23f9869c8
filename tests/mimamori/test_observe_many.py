"""observe_many: a batch's observations in one update per bucket, the same histogram as one observe() each."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from mimamori.metrics import observe_many

BUCKETS = (0.01, 0.05, 0.1, 1, 10)


def _histogram(name: str) -> Histogram:
    return Histogram(name, "test", ["source"], buckets=BUCKETS, registry=CollectorRegistry())


def _samples(h: Histogram) -> tuple[dict[str, float], float]:
    (family,) = h.collect()
    counts = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    return counts, total


# Bounds themselves, between them, past the last, and zero: each must land where observe() puts it.
values = st.lists(st.sampled_from([0.0, *BUCKETS, 0.02, 0.5, 11.0, 3600.0]) | st.floats(0, 100), max_size=200)


@given(values)
def test_the_buckets_and_sum_are_those_of_one_observe_per_value(batch: list[float]) -> None:
    one, many = _histogram("one_by_one"), _histogram("many")
    child = one.labels("mqtt")
    for v in batch:
        child.observe(v)
    observe_many(many.labels("mqtt"), batch)
    (counts_one, sum_one), (counts_many, sum_many) = _samples(one), _samples(many)
    assert counts_many == counts_one
    assert sum_many == pytest.approx(sum_one)


def test_without_the_private_fields_each_value_goes_through_observe() -> None:
    seen: list[float] = []

    class Public:
        def observe(self, amount: float) -> None:
            seen.append(amount)

    observe_many(Public(), [0.2, 3.0])  # type: ignore[arg-type]
    assert seen == [0.2, 3.0]


def test_a_labelled_parent_is_refused_as_observe_refuses_it() -> None:
    with pytest.raises(ValueError):
        observe_many(_histogram("parent"), [1.0])
