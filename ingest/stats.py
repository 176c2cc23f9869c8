"""Counters of the ingest path (readings received, stored, dead-lettered by reason)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class IngestStats:
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_by_reason: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    connected: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_batch(self, messages: int, stored: int, duplicates: int, reasons: list[str]) -> None:
        with self._lock:
            self.messages += messages
            self.stored += stored
            self.duplicates += duplicates
            self.dead_by_reason.update(reasons)
            self.batches += 1

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "messages": self.messages,
                "stored": self.stored,
                "duplicates": self.duplicates,
                "dead_letters": dict(self.dead_by_reason),
                "batches": self.batches,
                "broker_connected": self.connected,
            }
