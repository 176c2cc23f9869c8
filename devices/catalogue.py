"""The device-type catalogue: which metrics a type reports, in which unit, within which range."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from mimamori.errors import ConfigError


@dataclass(frozen=True)
class MetricSpec:
    metric: str
    unit: str
    min_value: float | None = None
    max_value: float | None = None
    alt_units: dict[str, float] = field(default_factory=dict)

    def to_canonical(self, value: float, unit: str | None) -> float | None:
        """The value in the canonical unit, or None when ``unit`` is neither canonical nor a known alternative."""
        if unit is None or unit == self.unit:
            return value
        factor = self.alt_units.get(unit)
        return None if factor is None else value * factor

    def in_range(self, value: float) -> bool:
        return (self.min_value is None or value >= self.min_value) and (
            self.max_value is None or value <= self.max_value
        )


@dataclass(frozen=True)
class DeviceType:
    id: str
    name: str
    metrics: dict[str, MetricSpec]
    name_ja: str | None = None
    description: str | None = None
    site_schema: dict[str, str] = field(default_factory=dict)


def load_catalogue(path: Path | None = None) -> dict[str, DeviceType]:
    """Read the catalogue YAML (the shipped default when ``path`` is None)."""
    text = path.read_text("utf-8") if path else resources.files("devices").joinpath("catalogue.yaml").read_text("utf-8")
    try:
        doc = yaml.safe_load(text)
        types: dict[str, DeviceType] = {}
        for entry in doc["device_types"]:
            metrics = {
                m["metric"]: MetricSpec(
                    metric=m["metric"],
                    unit=m["unit"],
                    min_value=m.get("min"),
                    max_value=m.get("max"),
                    alt_units={str(k): float(v) for k, v in (m.get("alt_units") or {}).items()},
                )
                for m in entry["metrics"]
            }
            types[entry["id"]] = DeviceType(
                id=entry["id"],
                name=entry["name"],
                name_ja=entry.get("name_ja"),
                description=entry.get("description"),
                site_schema=dict(entry.get("site_schema") or {}),
                metrics=metrics,
            )
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"device catalogue {path or 'devices/catalogue.yaml'} is invalid: {exc}") from None
    return types
