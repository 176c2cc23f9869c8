"""The ingestor's collector settings: applied when asked, left alone at 0, and undone by the test."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ingest.gc_tuning import tune_for_streaming
from mimamori.settings import Settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tuning_freezes_start_up_objects_and_raises_the_young_threshold(restored_gc: None) -> None:
    before = gc.get_threshold()
    tune_for_streaming(50_000)
    assert gc.get_threshold() == (50_000, before[1], before[2])
    assert gc.get_freeze_count() > 1000  # the interpreter and every imported module


def test_zero_leaves_the_collector_as_it_was(restored_gc: None) -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    tune_for_streaming(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_the_threshold_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIMAMORI_INGEST_GC_GEN0", "0")
    assert Settings().ingest_gc_gen0 == 0
    monkeypatch.setenv("MIMAMORI_INGEST_GC_GEN0", "-1")
    with pytest.raises(ValueError, match="ingest_gc_gen0"):
        Settings()
