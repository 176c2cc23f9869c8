"""Garbage-collector settings for a process that streams readings.

An ingestor holds up to Receive Maximum messages decoded and waiting for their commit, some fifteen
GC-tracked objects each. With CPython's default thresholds (700, 10, 10) that window is traversed again and
again while it waits, and each full collection walks all of it: on `python -m bench.ingest` at ten readings per
message the collector took 15–20 % of the ingestor's time, in pauses of about 100 ms. Objects made at start-up
(modules, the registry) are frozen out of collection, and the youngest generation is collected after tens of
thousands of allocations instead of 700. The hub makes few reference cycles, so garbage waits little longer.
"""

from __future__ import annotations

import gc


def tune_for_streaming(gen0_threshold: int) -> None:
    """Freeze what exists now and collect generation 0 every ``gen0_threshold`` allocations (0: leave as is)."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
