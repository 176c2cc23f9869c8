"""Rule models: what a hazard rule says, validated at the boundary (YAML files and the API).

Six kinds share one frame (id, hazard, titles, target, dwell): ``threshold`` (multi-level, levels from the rule or
from the device's site metadata), ``rate`` (change per hour over a window, optionally sustained), ``accumulation``
(sum over a window or since the rain event began), ``duration`` (a condition held for a while), ``composite``
(AND / OR of conditions across metrics and devices of a group) and ``silence`` (no reading for k x the expected
interval). Levels are the national 5-level warning scale (警戒レベル) 1-5.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"1d"``, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=float(m[1]) * _UNIT_SECONDS[m[2]])
    if isinstance(value, str) and value.startswith("P"):  # ISO 8601, as rules stored through the API are dumped
        try:
            return TypeAdapter(timedelta).validate_python(value)
        except PydanticValidationError:
            pass
    raise ValueError(f"not a duration: {value!r} (write e.g. 30s, 10m, 2h, 1d)")


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Hazard(StrEnum):
    flood = "flood"
    landslide = "landslide"
    rain = "rain"
    sediment = "sediment"  # 土砂災害: rain and soil together
    equipment = "equipment"  # a silent or failing sensor
    other = "other"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Title(_Strict):
    en: str
    ja: str = ""


class Area(_Strict):
    """An affected area: a polygon (GeoJSON order, [lon, lat]) or a circle around a point."""

    name: str = ""
    polygon: list[tuple[float, float]] | None = None
    center: tuple[float, float] | None = None
    radius_m: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_shape(self) -> Area:
        if (self.polygon is None) == (self.center is None):
            raise ValueError("give either polygon or center + radius_m")
        if self.center is not None and self.radius_m is None:
            raise ValueError("a circle needs radius_m")
        if self.polygon is not None:
            if len(self.polygon) < 3:
                raise ValueError("a polygon needs at least 3 corners")
            for lon, lat in self.polygon:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise ValueError(f"corner ({lon}, {lat}) is not [lon, lat] in degrees")
        return self


class Target(_Strict):
    """Which devices a rule watches. Every criterion given must hold; none given means every device."""

    device: list[str] | None = None
    device_type: list[str] | None = None
    tag: list[str] | None = Field(
        None, description="'name' (listed in metadata.tags) or 'key=value' (a metadata field), e.g. 'river=Yahagi'"
    )
    area: Area | None = None

    @field_validator("device", "device_type", "tag", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class LevelStep(_Strict):
    """One rung: ``level`` is reached at ``at``; it clears below ``clear`` (default: at - the rule's deadband)."""

    level: int = Field(ge=1, le=5)
    at: float
    clear: float | None = None
    sustain: timedelta = timedelta(0)

    @field_validator("sustain", mode="before")
    @classmethod
    def _dur(cls, value: object) -> timedelta:
        return parse_duration(value)


class _RuleBase(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    hazard: Hazard = Hazard.other
    title: Title
    description: str = ""
    enabled: bool = True
    target: Target = Target()
    dwell: timedelta = Field(timedelta(0), description="A higher level must hold this long before it is raised.")
    clear_dwell: timedelta = Field(
        timedelta(0), description="A lower level (or clear) must hold this long before the alert lowers or resolves."
    )
    area_buffer_m: float = Field(0, ge=0, description="Affected area: a buffer around the device, when no area.")
    area: Area | None = None

    @field_validator("dwell", "clear_dwell", mode="before")
    @classmethod
    def _dur(cls, value: object) -> timedelta:
        return parse_duration(value)

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset()


class Direction(StrEnum):
    rising = "rising"  # a level is reached when the value is at or above it
    falling = "falling"  # ... at or below it (low battery, falling reservoir)


class _Levelled(_RuleBase):
    levels: list[LevelStep] = Field(default_factory=list)
    direction: Direction = Direction.rising
    deadband: float = Field(0, ge=0, description="Hysteresis: a level clears only this far back past its value.")

    @model_validator(mode="after")
    def _levels_ordered(self) -> _Levelled:
        seen = [s.level for s in self.levels]
        if len(set(seen)) != len(seen):
            raise ValueError("each level may appear once")
        ordered = sorted(self.levels, key=lambda s: s.level)
        values = [s.at for s in ordered]
        monotone = values == sorted(values) if self.direction is Direction.rising else values == sorted(values)[::-1]
        if not monotone:
            raise ValueError(f"higher levels must have {'higher' if self.direction == 'rising' else 'lower'} values")
        return self


class ThresholdRule(_Levelled):
    """Multi-level threshold on one metric; levels may come from the device's site metadata."""

    kind: Literal["threshold"]
    metric: str
    levels_from_site: dict[int, str] | None = Field(
        None, description="level -> site metadata key, e.g. {2: caution_m}; used instead of levels when present"
    )

    @model_validator(mode="after")
    def _has_levels(self) -> ThresholdRule:
        if not self.levels and not self.levels_from_site:
            raise ValueError("give levels or levels_from_site")
        for level in self.levels_from_site or {}:
            if not 1 <= level <= 5:
                raise ValueError(f"levels_from_site: level {level} is not 1-5")
        return self

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset({self.metric})


class RateRule(_Levelled):
    """Change per ``per`` over ``window`` (extensometer mm/h, river rise m/h); ``sustain`` per level."""

    kind: Literal["rate"]
    metric: str
    window: timedelta = timedelta(hours=1)
    per: timedelta = Field(timedelta(hours=1), description="The rate's time unit: 1h for mm/h, 1d for mm/day.")
    absolute: bool = Field(False, description="Judge the size of the change either way (tilt).")

    @field_validator("window", "per", mode="before")
    @classmethod
    def _win(cls, value: object) -> timedelta:
        return parse_duration(value)

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset({self.metric})


class AccumulationRule(_Levelled):
    """Sum of a metric over a window, or since the rain event began (``window: event``)."""

    kind: Literal["accumulation"]
    metric: str
    window: timedelta | Literal["event"] = timedelta(hours=1)
    event_gap: timedelta = Field(timedelta(hours=24), description="This long without rain ends an event.")
    max_event: timedelta = Field(timedelta(days=7), description="Events are summed at most this far back.")

    @field_validator("window", mode="before")
    @classmethod
    def _win(cls, value: object) -> timedelta | str:
        return "event" if value == "event" else parse_duration(value)

    @field_validator("event_gap", "max_event", mode="before")
    @classmethod
    def _dur2(cls, value: object) -> timedelta:
        return parse_duration(value)

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset({self.metric})


class Op(StrEnum):
    ge = ">="
    gt = ">"
    le = "<="
    lt = "<"

    def holds(self, value: float, ref: float) -> bool:
        match self:
            case Op.ge:
                return value >= ref
            case Op.gt:
                return value > ref
            case Op.le:
                return value <= ref
            case Op.lt:
                return value < ref


class DurationRule(_RuleBase):
    """``metric op value`` held for ``for`` (device time)."""

    kind: Literal["duration"]
    metric: str
    op: Op = Op.ge
    value: float
    hold: timedelta = Field(alias="for")
    level: int = Field(2, ge=1, le=5)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("hold", mode="before")
    @classmethod
    def _hold(cls, value: object) -> timedelta:
        return parse_duration(value)

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset({self.metric})


class Aggregate(StrEnum):
    last = "last"
    sum = "sum"
    rate = "rate"  # change per hour over the window


class Condition(_Strict):
    """One condition of a composite: some device of the group whose type reports ``metric`` satisfies it."""

    metric: str
    aggregate: Aggregate = Aggregate.last
    window: timedelta = timedelta(hours=1)
    op: Op = Op.ge
    value: float

    @field_validator("window", mode="before")
    @classmethod
    def _win(cls, value: object) -> timedelta:
        return parse_duration(value)


class CompositeRule(_RuleBase):
    """AND (``all``) or OR (``any``) of conditions across metrics and devices of one group.

    The group is the devices sharing a metadata value (``group_by: slope_id``), or, without ``group_by``, every
    device the target selects (typically an area). One alert per group.
    """

    kind: Literal["composite"]
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    group_by: str | None = None
    level: int = Field(3, ge=1, le=5)

    @model_validator(mode="after")
    def _one_list(self) -> CompositeRule:
        if bool(self.all) == bool(self.any):
            raise ValueError("give exactly one of all: or any: with at least one condition")
        return self

    @property
    def conditions(self) -> list[Condition]:
        return list(self.all or self.any or [])

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(c.metric for c in self.conditions)


class SilenceRule(_RuleBase):
    """No reading for ``factor`` x the device's expected interval; ``nearby_level`` while another alert is active
    within ``nearby_m`` (a gauge lost in a flood is itself a warning)."""

    kind: Literal["silence"]
    factor: float = Field(3, gt=0)
    level: int = Field(1, ge=1, le=5)
    nearby_level: int = Field(3, ge=1, le=5)
    nearby_m: float = Field(5000, ge=0)
    hazard: Hazard = Hazard.equipment


Rule = Annotated[
    ThresholdRule | RateRule | AccumulationRule | DurationRule | CompositeRule | SilenceRule,
    Field(discriminator="kind"),
]


class RuleFile(_Strict):
    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids: {', '.join(dupes)}")
        return self


AnyRule = ThresholdRule | RateRule | AccumulationRule | DurationRule | CompositeRule | SilenceRule


def lookback(rule: AnyRule) -> timedelta:
    """How much history a rule's evaluation needs (window state is rebuilt from this much on start)."""
    span = max(rule.dwell, rule.clear_dwell)
    if isinstance(rule, ThresholdRule | RateRule | AccumulationRule):
        span = max([span, *(s.sustain for s in rule.levels)])
    if isinstance(rule, RateRule):
        span += rule.window
    elif isinstance(rule, AccumulationRule):
        span += rule.max_event + rule.event_gap if rule.window == "event" else rule.window
    elif isinstance(rule, DurationRule):
        span += rule.hold
    elif isinstance(rule, CompositeRule):
        span += max(c.window for c in rule.conditions)
    return span + timedelta(minutes=10)
