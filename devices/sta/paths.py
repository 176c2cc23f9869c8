"""Resource paths of the STA service (``Things('gauge-1')/Datastreams``, ``Observations('3.17…')/result/$value``),
parsed into steps. Pure; whether each step exists is the entity model's to say (api/ walks them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.sta.ids import IdError, parse_key
from devices.sta.options import StaError

_SEGMENT = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)(?:\((.*)\))?$")
MAX_SEGMENTS = 12


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    key: int | str | None = None


@dataclass(frozen=True, slots=True)
class ResourcePath:
    steps: tuple[Step, ...]
    value: bool = False  # ends in /$value (a property's raw value)
    ref: bool = False  # ends in /$ref (links only)


def parse_path(text: str) -> ResourcePath:
    parts = [p for p in text.strip("/").split("/") if p != ""]
    if not parts:
        raise StaError("empty resource path")
    if len(parts) > MAX_SEGMENTS:
        raise StaError(f"a resource path has at most {MAX_SEGMENTS} segments")
    value = ref = False
    if parts[-1] == "$value":
        value, parts = True, parts[:-1]
    elif parts[-1] == "$ref":
        ref, parts = True, parts[:-1]
    steps = []
    for part in parts:
        match = _SEGMENT.match(part)
        if match is None:
            raise StaError(f"{part[:80]!r} is not a resource path segment")
        key = None
        if match[2] is not None:
            try:
                key = parse_key(match[2])
            except IdError as exc:
                raise StaError(str(exc)) from None
        steps.append(Step(match[1], key))
    if not steps:
        raise StaError("empty resource path")
    return ResourcePath(tuple(steps), value, ref)
