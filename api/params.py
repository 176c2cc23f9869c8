"""Query parameter types shared by the routers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

# Instants a request may name. Python's datetime ends at years 1 and 9999, and a default range or a bucket
# reaching past them was an OverflowError (a 500); no reading, alert or stand history lies outside these.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _in_range(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)  # a missing zone is the route's to refuse
    if not EARLIEST <= aware <= LATEST:
        raise ValueError(f"must lie between {EARLIEST.date()} and {LATEST.date()}")
    return value


Instant = Annotated[datetime, AfterValidator(_in_range)]
"""A datetime query parameter within EARLIEST..LATEST (422 otherwise)."""
