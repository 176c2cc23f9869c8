"""The ingest → alerts hand-off contract: what a committed reading is to anyone listening for them.

Ingest commits readings (``ingest.contract.Reading``) and hands them on; the alert engine, the NOTIFY forwarder
and any other listener read only these four fields. A Protocol in the ground package, so neither side imports the
other to agree on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol


class CommittedReading(Protocol):
    """One reading as stored: a device's metric at a time, in its canonical unit."""

    @property
    def time(self) -> datetime: ...
    @property
    def device_id(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def value(self) -> float: ...


CommittedListener = Callable[[Sequence[CommittedReading]], None]


class CommittedFeed(Protocol):
    """Where a process announces what it has committed (``ingest.CommittedReadings``)."""

    def subscribe(self, listener: CommittedListener) -> None: ...
