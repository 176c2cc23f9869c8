"""A message's rejections, summarised: one dead letter per message, whatever the message holds. Pure.

A hostile message can carry thousands of bad readings. Kept one row each, with the payload in every row, a 30 KB
message once became 60 MB of dead letters; summarised, it is one row holding the payload once and, per reason, a
count and the first few details (which name the positions: ``[17] …``, ``reading 17: …``). The bytes written per
message are its payload plus a bounded summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.contract import Reason, Rejection

EXAMPLES_PER_REASON = 3
_EXAMPLE_CHARS = 160  # one detail as kept in the summary
DETAIL_CHARS = 1000  # the whole human-readable detail


@dataclass(frozen=True, slots=True)
class Summary:
    reason: Reason  # the most frequent reason (the first seen among equals): what dashboards count by
    detail: str  # one line for people
    reasons: dict[str, Any]  # {reason: {"count": n, "first": [detail, ...]}}, for tools and the API
    rejected: int  # rejections in all


def summarise(rejections: list[Rejection]) -> Summary:
    """One summary of a non-empty list of rejections; its size does not grow with their number."""
    if not rejections:
        raise ValueError("nothing to summarise")
    counts: dict[Reason, int] = {}
    examples: dict[Reason, list[str]] = {}
    for rej in rejections:
        n = counts.get(rej.reason, 0)
        counts[rej.reason] = n + 1
        if n < EXAMPLES_PER_REASON:
            examples.setdefault(rej.reason, []).append(rej.detail[:_EXAMPLE_CHARS])
    order = sorted(counts, key=lambda r: -counts[r])  # stable: equal counts keep the order first seen
    top = order[0]
    if len(rejections) == 1:
        detail = rejections[0].detail
    else:
        parts = [
            f"{r} ×{counts[r]} ({'; '.join(examples[r])}{'; …' if counts[r] > len(examples[r]) else ''})" for r in order
        ]
        detail = f"{len(rejections)} rejected: " + ", ".join(parts)
    return Summary(
        reason=top,
        detail=detail[:DETAIL_CHARS],
        reasons={str(r): {"count": counts[r], "first": examples[r]} for r in order},
        rejected=len(rejections),
    )
